"""Run directories: every command that computes something writes one.

Layout of ``runs/<command>-<timestamp>/`` (or ``--out DIR``)::

    config.json     resolved options
    manifest.json   seed, versions (lumos, torch, python), git commit, host, start/end time, status
    metrics.jsonl   one JSON row per logged step
    plots/          PNG figures
    report.html     the self-contained report

All writes are atomic.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import os
import platform
import socket
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lumos.core.io import append_jsonl, atomic_write_json, read_json
from lumos.core.report import Report
from lumos.core.seed import seed_everything

__all__ = ["RunDir", "environment_info", "git_commit"]


def git_commit() -> str | None:
    """The git commit of the lumos source tree, if it is a git checkout."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def environment_info() -> dict[str, Any]:
    """Versions and host facts recorded in every manifest."""
    import numpy
    import torch

    import lumos

    return {
        "lumos": lumos.__version__,
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "host": socket.gethostname(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.is_available(),
        "git_commit": git_commit(),
        "argv": sys.argv,
    }


def _now() -> str:
    return _dt.datetime.now().isoformat(timespec="seconds")


def _plain(config: Any) -> Any:
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return dataclasses.asdict(config)
    if isinstance(config, Mapping):
        return {str(k): _plain(v) for k, v in config.items()}
    return config


class RunDir:
    """A run directory. Create with :meth:`create`; use as a context manager to record the end status.

    Example::

        with RunDir.create("value", config=cfg, seed=0) as run:
            run.log({"step": 1, "loss": 0.3})
            run.report.section("Results").table(rows)
        # report.html and manifest.json (status "ok" or "failed") are written on exit
    """

    def __init__(self, path: Path, command: str, config: Mapping[str, Any], seed: int | None, title: str | None = None) -> None:
        self.path = path
        self.command = command
        self.config = dict(config)
        self.seed = seed
        self.report = Report(title or f"lumos {command}", meta={"run": path.name, "seed": seed})
        self.manifest: dict[str, Any] = {"command": command, "seed": seed, "start": _now(), "end": None, "status": "running"}
        self.manifest.update(environment_info())

    @classmethod
    def create(
        cls,
        command: str,
        config: Any = None,
        *,
        out: str | os.PathLike[str] | None = None,
        seed: int | None = 0,
        root: str | os.PathLike[str] = "runs",
        title: str | None = None,
        resume: bool = False,
    ) -> RunDir:
        """Make the directory, write ``config.json`` and ``manifest.json``, and seed everything.

        ``out`` picks the directory (default ``runs/<command>-<timestamp>``); with ``resume=True`` an existing
        directory is reused (its metrics are kept).
        """
        if out is None:
            stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
            path = Path(root) / f"{command.replace(' ', '-')}-{stamp}"
        else:
            path = Path(out)
        path.mkdir(parents=True, exist_ok=True)
        (path / "plots").mkdir(exist_ok=True)
        if not resume or not (path / "metrics.jsonl").exists():
            (path / "metrics.jsonl").write_text("")
        cfg = _plain(config) if config is not None else {}
        run = cls(path, command, cfg, seed, title)
        atomic_write_json(path / "config.json", cfg)
        run._write_manifest()
        if seed is not None:
            seed_everything(seed)
        return run

    @property
    def plots(self) -> Path:
        return self.path / "plots"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.jsonl"

    def log(self, row: Mapping[str, Any]) -> None:
        """Append one row to ``metrics.jsonl``."""
        append_jsonl(self.metrics_path, row)

    def save_figure(self, fig: Any, name: str) -> Path:
        """Save a matplotlib figure as ``plots/<name>.png`` (atomic) and return the path; the figure stays open."""
        import io

        from lumos.core.io import atomic_write_bytes

        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
        return atomic_write_bytes(self.plots / f"{name}.png", buf.getvalue())

    def update_manifest(self, **fields: Any) -> None:
        self.manifest.update(fields)
        self._write_manifest()

    def _write_manifest(self) -> None:
        atomic_write_json(self.path / "manifest.json", self.manifest)

    def finish(self, status: str = "ok") -> Path:
        """Write ``report.html`` and close the manifest. Returns the report path."""
        report_path = self.report.save(self.path / "report.html")
        self.manifest["end"] = _now()
        self.manifest["status"] = status
        self._write_manifest()
        return report_path

    def __enter__(self) -> RunDir:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.finish("ok" if exc_type is None else f"failed: {exc_type.__name__}")

    @staticmethod
    def read_config(path: str | os.PathLike[str]) -> dict[str, Any]:
        """Read back ``config.json`` of an existing run (for resume)."""
        return read_json(Path(path) / "config.json")
