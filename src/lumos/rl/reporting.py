"""Where an RL run's metrics go besides ``metrics.jsonl`` (always written): ``--report-to tensorboard`` (scalars
under ``<run>/tensorboard``) and ``--report-to wandb`` (a Weights & Biases run whose files live under
``<run>/wandb``), as TRL's ``report_to``.

W&B needs credentials (``WANDB_API_KEY`` or ``wandb login``) unless ``WANDB_MODE=offline`` (log locally, ``wandb
sync`` later) or ``disabled``; that is checked before any work. The W&B run takes the run directory's name, its
``config.json`` as config, the project ``$WANDB_PROJECT`` (default ``lumos``) and an id derived from the run
directory, so ``--resume`` continues the same W&B run.
"""

from __future__ import annotations

import hashlib
import math
import netrc
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from lumos.core.errors import LumosError, one_line
from lumos.core.rundir import RunDir

__all__ = ["REPORT_TO", "Board", "check_report_to", "open_board"]

#: the sinks ``--report-to`` accepts (besides ``none``)
REPORT_TO = ("tensorboard", "wandb")


class Board:
    """Metrics rows → TensorBoard scalars (``writer``) and/or a W&B run (``wandb_run``), each metric as
    ``rl/<key>`` at the row's ``step``, the logged sample as text; a no-op with neither."""

    def __init__(self, writer: Any = None, wandb_run: Any = None) -> None:
        self.writer, self.wandb_run = writer, wandb_run

    def __call__(self, row: dict[str, Any]) -> None:
        step = int(row.get("step", 0))
        scalars = {f"rl/{k}": float(v) for k, v in row.items()
                   if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}
        sample = row.get("sample") if isinstance(row.get("sample"), str) else None
        if self.writer is not None:
            for key, value in scalars.items():
                self.writer.add_scalar(key, value, step)
            if sample is not None:
                self.writer.add_text("rl/sample", sample, step)
            self.writer.flush()
        if self.wandb_run is not None:
            self.wandb_run.log({**scalars, **({"rl/sample": sample} if sample is not None else {})}, step=step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if self.wandb_run is not None:
            self.wandb_run.finish()


def _wandb_credentials() -> bool:
    """Whether W&B can log: offline/disabled mode, an API key in the environment, or a ``wandb login`` entry."""
    if os.environ.get("WANDB_MODE", "").lower() in ("offline", "disabled", "dryrun") or os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai").hostname or "api.wandb.ai"
    try:
        return netrc.netrc(os.environ.get("NETRC")).authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def check_report_to(report_to: Any) -> tuple[str, ...]:
    """The sinks of ``report_to`` (``none`` dropped), each checked usable here: a one-line error otherwise."""
    items = tuple(report_to or ())
    bad = [r for r in items if r not in REPORT_TO and r != "none"]
    if bad:
        raise LumosError(f"--report-to {bad[0]!r}: choose from {', '.join(REPORT_TO)} or none (metrics.jsonl is "
                         "always written).")
    if "tensorboard" in items:
        try:
            import tensorboard  # noqa: F401  (torch.utils.tensorboard needs it)
        except ImportError:
            raise LumosError("--report-to tensorboard needs the tensorboard package: pip install 'lumos[rl]'.") from None
    if "wandb" in items:
        try:
            import wandb  # noqa: F401
        except ImportError:
            raise LumosError("--report-to wandb needs the wandb package: pip install wandb.") from None
        if not _wandb_credentials():
            raise LumosError("--report-to wandb: no W&B credentials (WANDB_API_KEY, or the entry 'wandb login' "
                             "writes to ~/.netrc or $NETRC). Log in, or set WANDB_MODE=offline to log under "
                             "<run>/wandb and 'wandb sync' it later.")
    return tuple(r for r in items if r != "none")


def _run_id(path: Path) -> str:
    """A W&B run id fixed by the run directory (a resumed run logs to the same W&B run)."""
    return "lumos-" + hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]


def open_board(run: RunDir | None, report_to: tuple[str, ...]) -> Board:
    """The :class:`Board` of ``run`` for the checked ``report_to`` (:func:`check_report_to`); a no-op without a run
    directory (a non-main process)."""
    if run is None or not report_to:
        return Board()
    writer = wandb_run = None
    if "tensorboard" in report_to:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(log_dir=str(run.path / "tensorboard"))
    if "wandb" in report_to:
        import wandb

        try:
            wandb_run = wandb.init(project=os.environ.get("WANDB_PROJECT", "lumos"), name=run.path.name,
                                   id=_run_id(run.path), resume="allow", dir=str(run.path), config=run.config)
        except Exception as exc:  # noqa: BLE001 - W&B's own errors (network, credentials) are one line here
            if writer is not None:
                writer.close()
            raise LumosError(f"--report-to wandb: W&B could not start a run ({one_line(exc, 200)}). Check the "
                             "login or network, or set WANDB_MODE=offline.") from None
    return Board(writer, wandb_run)
