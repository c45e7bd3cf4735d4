"""Run directories: every command that computes something writes one.

Layout of ``runs/<command>-<timestamp>/`` (or ``--out DIR``)::

    config.json     resolved options
    manifest.json   seed, versions (lumos, torch, python), git commit, host, start/end time, status
    metrics.jsonl   one JSON row per logged step
    plots/          PNG figures
    report.html     the self-contained report

All writes are atomic, with the modes a plain ``open`` would give under the umask (0644 / 0755).

Runs are never silently reused: :meth:`RunDir.create` refuses an ``--out`` that already holds a run unless
``resume`` (continue it; config.json, metrics and the manifest's history are kept) or ``overwrite`` (replace
it) is asked for. Temporary files of writes killed half-way are swept when a run (re)starts. A run that a
failure leaves open is closed as failed by the CLI's error boundary (:func:`close_open_runs`).
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

from lumos.core.errors import LumosError
from lumos.core.io import append_jsonl, atomic_write_json, read_json, sweep_temp_files
from lumos.core.report import Report
from lumos.core.seed import seed_everything

__all__ = ["RunDir", "environment_info", "git_commit", "check_out_dir", "is_run_dir", "close_open_runs"]

#: runs created by this process and not yet finished (closed as failed by :func:`close_open_runs`)
_OPEN_RUNS: list[RunDir] = []
#: run directories the user allowed to be replaced (``--overwrite``; see :func:`allow_overwrite`)
_OVERWRITE_ALLOWED: set[Path] = set()


def allow_overwrite(out: str | os.PathLike[str]) -> None:
    """Let :meth:`RunDir.create` (with ``overwrite=None``) replace the run in ``out`` (the CLI's ``--overwrite``)."""
    _OVERWRITE_ALLOWED.add(Path(out).absolute())


def is_run_dir(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a lumos run directory (it has a manifest.json or config.json + metrics.jsonl)."""
    p = Path(path)
    return (p / "manifest.json").is_file() or ((p / "config.json").is_file() and (p / "metrics.jsonl").is_file())


def _nearest_existing(p: Path) -> Path:
    p = p.absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def check_out_dir(out: str | os.PathLike[str], *, resume: bool = False, overwrite: bool = False,
                  has_resume: bool = True) -> Path:
    """Check ``--out`` before any work: a file, an unwritable place, an existing run without ``--resume`` /
    ``--overwrite``, or a non-empty directory that is not a run are errors; ``--resume`` needs an existing run."""
    path = Path(out)
    if str(out).strip() == "":
        raise LumosError("--out is empty; pass a directory path.")
    if path.exists() and not path.is_dir():
        raise LumosError(f"--out {path} exists and is not a directory; choose a directory path.")
    base = _nearest_existing(path)
    if not base.is_dir():
        raise LumosError(f"--out {path}: {base} is a file, not a directory; choose another path.")
    if not os.access(base, os.W_OK | os.X_OK):
        raise LumosError(f"--out {path}: {base} is not writable; choose a directory you can write to.")
    if resume and overwrite:
        raise LumosError("--resume and --overwrite contradict each other; pass one of them.")
    if resume:
        if not is_run_dir(path):
            raise LumosError(f"--resume: {path} is not a run directory (no manifest.json); check --out, or drop "
                             "--resume to start a new run.")
        return path
    if path.is_dir() and any(path.iterdir()):
        if is_run_dir(path):
            if overwrite:
                return path
            hint = "--resume to continue it, " if has_resume else ""
            raise LumosError(f"--out {path} already holds a run; pass {hint}--overwrite to replace it, or choose a "
                             "new --out.")
        raise LumosError(f"--out {path} is a non-empty directory that is not a lumos run; choose a new or empty "
                         "directory.")
    return path


def close_open_runs(status: str) -> None:
    """Close every run this process left open (manifest ``running``) with ``status``."""
    while _OPEN_RUNS:
        run = _OPEN_RUNS.pop()
        try:
            run.finish(status)
        except Exception:  # noqa: BLE001 - best effort while another error is being reported
            pass


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


def _prior_manifest(path: Path, command: str) -> dict[str, Any]:
    """The manifest of the run ``command`` is about to resume ({} when unreadable); a run of another command is
    refused here, before anything is written (its config.json and status stay as they are)."""
    try:
        prior = read_json(path / "manifest.json") if (path / "manifest.json").is_file() else {}
    except LumosError:
        return {}
    if not isinstance(prior, dict):
        return {}
    other = prior.get("command")
    if isinstance(other, str) and other != command:
        raise LumosError(f"--resume: {path} is a run of 'lumos {other}', not of 'lumos {command}'; resume it with "
                         f"'lumos {other}', or choose another --out for this command.")
    return prior


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
        overwrite: bool | None = None,
        overrides: Mapping[str, Any] | None = None,
    ) -> RunDir:
        """Make the directory, write ``config.json`` and ``manifest.json``, and seed everything.

        ``out`` picks the directory (default ``runs/<command>-<timestamp>``). An existing run there is an error
        unless ``resume=True`` (continue it: metrics kept, the manifest records the resume and ``overrides``)
        or ``overwrite=True`` (delete it and start afresh; ``None``: as the CLI's ``--overwrite`` said).
        """
        if overwrite is None:
            overwrite = out is not None and Path(out).absolute() in _OVERWRITE_ALLOWED
        if out is None:
            stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
            path = Path(root) / f"{command.replace(' ', '-')}-{stamp}"
        else:
            path = check_out_dir(out, resume=resume, overwrite=overwrite)
        prior = _prior_manifest(path, command) if resume else {}  # before any write: a refusal changes nothing
        if overwrite and not resume and is_run_dir(path):
            import shutil

            shutil.rmtree(path)
        path.mkdir(parents=True, exist_ok=True)
        sweep_temp_files(path)
        (path / "plots").mkdir(exist_ok=True)
        if not resume or not (path / "metrics.jsonl").exists():
            (path / "metrics.jsonl").write_text("")
        cfg = _plain(config) if config is not None else {}
        run = cls(path, command, cfg, seed, title)
        if resume and prior:
            run.manifest["start"] = prior.get("start", run.manifest["start"])
            run.manifest["resumes"] = [*prior.get("resumes", []), {"time": _now(), "overrides": dict(overrides or {})}]
        atomic_write_json(path / "config.json", cfg)
        run._write_manifest()
        _OPEN_RUNS.append(run)
        if seed is not None:
            seed_everything(seed)
        return run

    @property
    def plots(self) -> Path:
        """The run's plots/ directory."""
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
        if self in _OPEN_RUNS:
            _OPEN_RUNS.remove(self)
        self.manifest["end"] = _now()
        self.manifest["status"] = status
        try:
            report_path = self.report.save(self.path / "report.html")
        finally:
            self._write_manifest()
        return report_path

    def __enter__(self) -> RunDir:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.finish("ok" if exc_type is None else f"failed: {exc_type.__name__}")

    @staticmethod
    def read_config(path: str | os.PathLike[str]) -> dict[str, Any]:
        """Read back ``config.json`` of an existing run (for resume); a clear error if missing or not an object."""
        cfg = read_json(Path(path) / "config.json")
        if not isinstance(cfg, dict):
            raise LumosError(f"{Path(path) / 'config.json'} must hold a JSON object; got {type(cfg).__name__}. "
                             "The run directory is damaged; start a new run.")
        return cfg
