"""Helpers shared by subcommand modules."""

from __future__ import annotations

import argparse
from typing import Any

from lumos.core.errors import LumosError

__all__ = ["add_run_options", "parse_csv_list", "print_table", "LumosArgumentParser"]


class LumosArgumentParser(argparse.ArgumentParser):
    """argparse with one-line errors (exit status 2, no usage dump)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def add_run_options(parser: argparse.ArgumentParser, seed: int = 0) -> None:
    """``--out DIR`` and ``--seed N``, which every computing command takes."""
    parser.add_argument("--out", default=None, help="run directory (default: runs/<command>-<timestamp>)")
    parser.add_argument("--seed", type=int, default=seed, help=f"random seed (default: {seed})")


def parse_csv_list(value: str, choices: list[str] | tuple[str, ...] | None = None, what: str = "value") -> list[str]:
    """Split ``a,b,c``; with ``choices``, unknown names are a clear error."""
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items:
        raise LumosError(f"Expected a comma-separated list of {what}s; got {value!r}.")
    if choices is not None:
        unknown = [v for v in items if v not in choices]
        if unknown:
            raise LumosError(f"Unknown {what}(s) {', '.join(unknown)}; choose from {', '.join(choices)}.")
    return items


def print_table(rows: list[dict[str, Any]]) -> None:
    """Print dict rows as right-aligned columns (floats to 4 significant digits)."""
    if not rows:
        return
    keys = list(dict.fromkeys(k for r in rows for k in r))
    cells = [[_fmt(r.get(k, "")) for k in keys] for r in rows]
    widths = [max(len(k), *(len(c[i]) for c in cells)) for i, k in enumerate(keys)]
    print("  ".join(k.rjust(w) for k, w in zip(keys, widths)))
    for c in cells:
        print("  ".join(v.rjust(w) for v, w in zip(c, widths)))


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1e5 else f"{v:.3e}"
    return str(v)
