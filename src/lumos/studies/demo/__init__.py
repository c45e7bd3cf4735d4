"""``lumos demo``: the tour of all three systems on built-in data, one report.

Sections register themselves with :func:`demo_section` in their own system's module; the modules listed in
:data:`SECTION_MODULES` are imported by :func:`run_demo`. A section receives a :class:`DemoContext` and fills
its report section. Each section must finish within its budget on 2 CPU cores (the whole demo < 10 min);
``quick=True`` is the smoke-test size used by the test suite.
"""

from __future__ import annotations

import importlib
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lumos.core.registry import Registry
from lumos.core.report import Section
from lumos.core.rundir import RunDir
from lumos.core.seed import seed_everything

__all__ = ["DemoContext", "SECTIONS", "demo_section", "run_demo", "SECTION_MODULES", "registered_sections"]

#: System modules that contribute demo sections (each calls :func:`demo_section` at import).
SECTION_MODULES: tuple[str, ...] = ("lumos.studies.demo.lightning", "lumos.studies.demo.valuation", "lumos.studies.demo.sandbox", "lumos.studies.demo.models",
                                     "lumos.studies.demo.explain", "lumos.studies.demo.rl")


@dataclass
class DemoContext:
    """What a section gets: its report section, the run directory, the size flag and the seed."""

    run: RunDir
    section: Section
    quick: bool
    seed: int

    @property
    def workdir(self) -> Path:
        """A per-section scratch directory inside the run (cached models, data)."""
        d = self.run.path / "work" / self.section.title.lower().replace(" ", "_")
        d.mkdir(parents=True, exist_ok=True)
        return d

    def log(self, **row: Any) -> None:
        """Log a metrics row tagged with the section name."""
        self.run.log({"section": self.section.title, **row})


#: the sections: title → ``fn(ctx)``, with the ``order`` they run in as metadata
SECTIONS: Registry[Callable[[DemoContext], None]] = Registry("demo section", param="section", expects=callable)


def demo_section(title: str, order: int = 100) -> Callable[[Callable[[DemoContext], None]], Callable[[DemoContext], None]]:
    """Register ``fn(ctx)`` as the demo section ``title``; sections run in ascending ``order``."""
    return SECTIONS.register(title, order=order)


def registered_sections() -> list[str]:
    """Titles of all sections, after importing :data:`SECTION_MODULES`."""
    for name in SECTION_MODULES:
        importlib.import_module(name)
    return sorted(SECTIONS.names(), key=lambda t: (SECTIONS.entry(t).meta["order"], t))


def run_demo(out: str | Path | None = None, quick: bool = False, seed: int = 0, only: list[str] | None = None,
             overwrite: bool | None = None) -> tuple[RunDir, list[str]]:
    """Run every registered section into one report. Returns the run and the titles of failed sections.

    A failing section is recorded in the report (with its error) and does not stop the others.
    """
    titles = registered_sections()
    if only:
        wanted = {o.lower() for o in only}
        matched = [t for t in titles if t.lower() in wanted or any(w in t.lower() for w in wanted)]
        if not matched:
            raise SECTIONS.unknown(", ".join(only))
        titles = matched
    run = RunDir.create("demo", {"quick": quick, "seed": seed, "sections": titles}, out=out, seed=seed,
                        title="Lumos — a tour of the three systems", overwrite=overwrite)
    intro = run.report.section("About this report")
    intro.text(
        "Lumos implements MiniMax-M1 (lightning attention, the hybrid MoE model, CISPO RL), ShapleyCAM "
        "(CAMs as Shapley-value explainers with the ReST target and faithfulness metrics) and CHG Shapley "
        "(closed-form data valuation and selection). Every number below was computed by this run, on built-in "
        "data, on this machine."
    )
    timings: list[dict[str, Any]] = []
    failed: list[str] = []
    for title in titles:
        section = run.report.section(title)
        ctx = DemoContext(run=run, section=section, quick=quick, seed=seed)
        seed_everything(seed)
        t0 = time.perf_counter()
        status = "ok"
        try:
            SECTIONS.get(title)(ctx)
        except Exception as exc:  # noqa: BLE001 - recorded in the report, and the demo exits non-zero
            status = f"failed: {type(exc).__name__}: {exc}"
            section.note("This section failed: " + status)
            section.code(traceback.format_exc())
            failed.append(title)
        seconds = time.perf_counter() - t0
        timings.append({"section": title, "seconds": round(seconds, 1), "status": status})
        run.log({"section": title, "seconds": seconds, "status": status})
    intro.table(timings, caption="Wall time per section on this machine.")
    run.finish("ok" if not failed else "failed")
    return run, failed
