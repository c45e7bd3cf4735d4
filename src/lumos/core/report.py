"""Self-contained offline HTML reports: sections, paragraphs, tables, figures embedded as PNG.

One builder for every system::

    report = Report("lumos demo")
    sec = report.section("CHG Shapley")
    sec.text("Noisy-label detection on digits.")
    sec.table([{"method": "chg", "auc": 0.97}])
    sec.figure(fig)            # a matplotlib Figure, embedded as base64 PNG
    report.save(run.path / "report.html")

The file has no external references (no scripts, fonts or images from the network).
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lumos.core.io import atomic_write_text

__all__ = ["Report", "Section", "figure_to_png"]

_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{border-bottom:2px solid #444;padding-bottom:.3em}h2{margin-top:2em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:1em 0;font-size:.9em}th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}
th{background:#f0f0f0}td:first-child,th:first-child{text-align:left}img{max-width:100%;margin:.5em 0}
.meta{color:#666;font-size:.85em}pre{background:#f6f6f6;padding:.6em;overflow-x:auto}.note{color:#555}
.caption{color:#555;font-size:.85em;margin-top:-.3em}
"""


def figure_to_png(fig: Any, dpi: int = 110) -> bytes:
    """Render a matplotlib figure to PNG bytes and close it."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if value != value:  # NaN
            return "nan"
        if value == 0 or 1e-3 <= abs(value) < 1e5:
            return f"{value:.4g}"
        return f"{value:.3e}"
    return str(value)


@dataclass
class Section:
    """A titled part of a report; blocks are rendered in the order added."""

    title: str
    blocks: list[str] = field(default_factory=list)

    def text(self, text: str) -> Section:
        """Add a paragraph (plain text, escaped)."""
        self.blocks.append(f"<p>{html.escape(text)}</p>")
        return self

    def note(self, text: str) -> Section:
        """Add a small grey note."""
        self.blocks.append(f'<p class="note">{html.escape(text)}</p>')
        return self

    def code(self, text: str) -> Section:
        """Add preformatted text."""
        self.blocks.append(f"<pre>{html.escape(text)}</pre>")
        return self

    def table(self, rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None, caption: str | None = None) -> Section:
        """Add a table from a list of dicts (columns default to the union of keys, in first-seen order)."""
        if columns is None:
            seen: dict[str, None] = {}
            for row in rows:
                for k in row:
                    seen.setdefault(k, None)
            columns = list(seen)
        head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(_fmt(row.get(c, '')))}</td>" for c in columns) + "</tr>" for row in rows
        )
        cap = f'<div class="caption">{html.escape(caption)}</div>' if caption else ""
        self.blocks.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{cap}")
        return self

    def image(self, png: bytes, caption: str | None = None, width: int | None = None) -> Section:
        """Embed PNG bytes."""
        data = base64.b64encode(png).decode("ascii")
        w = f' width="{int(width)}"' if width else ""
        cap = f'<div class="caption">{html.escape(caption)}</div>' if caption else ""
        self.blocks.append(f'<img{w} src="data:image/png;base64,{data}" alt="{html.escape(caption or self.title)}"/>{cap}')
        return self

    def figure(self, fig: Any, caption: str | None = None, save_to: str | os.PathLike[str] | None = None) -> Section:
        """Embed a matplotlib figure (closed afterwards); optionally also write the PNG to ``save_to``."""
        png = figure_to_png(fig)
        if save_to is not None:
            from lumos.core.io import atomic_write_bytes

            atomic_write_bytes(save_to, png)
        return self.image(png, caption)

    def render(self) -> str:
        anchor = html.escape(self.title.lower().replace(" ", "-"))
        return f'<h2 id="{anchor}">{html.escape(self.title)}</h2>\n' + "\n".join(self.blocks)


class Report:
    """An HTML report made of sections; :meth:`save` writes one self-contained file atomically."""

    def __init__(self, title: str, subtitle: str | None = None, meta: Mapping[str, Any] | None = None) -> None:
        self.title = title
        self.subtitle = subtitle
        self.meta = dict(meta or {})
        self.sections: list[Section] = []

    def section(self, title: str) -> Section:
        """Create, append and return a new section."""
        sec = Section(title)
        self.sections.append(sec)
        return sec

    def to_html(self) -> str:
        meta = dict(self.meta)
        meta.setdefault("generated", _dt.datetime.now().isoformat(timespec="seconds"))
        meta_html = " · ".join(f"{html.escape(str(k))}: {html.escape(str(v))}" for k, v in meta.items())
        toc = "".join(
            f'<li><a href="#{html.escape(s.title.lower().replace(" ", "-"))}">{html.escape(s.title)}</a></li>' for s in self.sections
        )
        sub = f"<p>{html.escape(self.subtitle)}</p>" if self.subtitle else ""
        body = "\n".join(s.render() for s in self.sections)
        return (
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"/>"
            f"<title>{html.escape(self.title)}</title><style>{_CSS}</style></head><body>"
            f"<h1>{html.escape(self.title)}</h1>{sub}<p class=\"meta\">{meta_html}</p>"
            f"<ul>{toc}</ul>\n{body}\n</body></html>\n"
        )

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the report atomically and return its path."""
        return atomic_write_text(path, self.to_html())
