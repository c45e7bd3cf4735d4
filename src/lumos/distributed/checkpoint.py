"""Distributed checkpoints through ``torch.distributed.checkpoint`` (DCP): each rank writes its own shards.

Layout under ``root``::

    step_000010/.metadata  __0_0.distcp  __1_0.distcp ...   # DCP: {"model": ..., "optim": ...}
                config.json  state.json  rng/rank_00000.pt ...
    latest                                                 # names the newest complete step directory

Atomic at the directory level: every rank writes into ``.step_000010.partial``; after a barrier rank 0 adds
``state.json`` and renames the directory into place, then replaces ``latest``. A save killed at any moment
leaves ``latest`` on the previous complete checkpoint (the next save removes the partial directory).

The state dicts come from ``torch.distributed.checkpoint.state_dict.get_state_dict``: FSDP2 shards and
expert-parallel DTensors are saved as slices of global tensors under the unsharded parameter names, so a
checkpoint loads on any world size (2 → 1, 1 → 2, ...) and into an unsharded model. :func:`export_checkpoint`
turns one into release safetensors (``minimax_m1`` or ``transformers`` layout) in a single process.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lumos.core.errors import LumosError
from lumos.core.io import atomic_write_json, atomic_write_text, read_json, torch_load, torch_save
from lumos.core.seed import get_rng_state, set_rng_state
from lumos.distributed import process_group as dist

__all__ = ["save_distributed", "load_distributed", "latest_distributed", "export_checkpoint", "is_distributed_checkpoint"]

_LATEST = "latest"


@contextlib.contextmanager
def _single_process_quiet() -> Iterator[None]:
    """DCP warns that it 'assumes a single process' whenever no process group exists; that is the intent here."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="torch.distributed is disabled, unavailable or uninitialized")
        yield


def is_distributed_checkpoint(path: str | os.PathLike[str]) -> bool:
    """True for a complete DCP checkpoint directory (``.metadata`` and ``state.json``)."""
    p = Path(path)
    return (p / ".metadata").is_file() and (p / "state.json").is_file()


def _state_dicts(model: nn.Module, optimizer: torch.optim.Optimizer | None) -> dict[str, Any]:
    from torch.distributed.checkpoint.state_dict import get_model_state_dict, get_state_dict

    if optimizer is None:
        return {"model": get_model_state_dict(model)}
    msd, osd = get_state_dict(model, optimizer)
    return {"model": msd, "optim": osd}


def save_distributed(root: str | os.PathLike[str], step: int, model: nn.Module,
                     optimizer: torch.optim.Optimizer | None, state: dict[str, Any], keep: int = 2) -> Path:
    """Every rank calls this; writes ``root/step_{step:06d}`` atomically and points ``root/latest`` at it."""
    import torch.distributed.checkpoint as dcp

    root = Path(root)
    final = root / f"step_{step:06d}"
    tmp = root / f".{final.name}.partial"
    if dist.is_main():
        root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)          # left by a killed save
        tmp.mkdir()
    dist.barrier()
    with _single_process_quiet():
        dcp.state_dict_saver.save(_state_dicts(model, optimizer), checkpoint_id=str(tmp), no_dist=not dist.is_distributed())
    torch_save(tmp / "rng" / f"rank_{dist.rank():05d}.pt", get_rng_state())
    dist.barrier()
    if dist.is_main():
        config = getattr(model, "config", None)
        if config is not None and hasattr(config, "to_json"):      # for export_checkpoint
            dtype = str(next(model.parameters()).dtype).replace("torch.", "")
            dataclasses.replace(config, torch_dtype=dtype).to_json(tmp / "config.json", format="minimax_m1")
        atomic_write_json(tmp / "state.json", {"step": step, "world_size": dist.world_size(), **state})
        _finalize(tmp, final)
        atomic_write_text(root / _LATEST, final.name + "\n")
        done = sorted(p for p in root.glob("step_*") if p.is_dir())
        for old in done[:-keep] if keep > 0 else []:
            if old != final:
                shutil.rmtree(old, ignore_errors=True)
    dist.barrier()
    return final


def _finalize(tmp: Path, final: Path) -> None:
    """The commit point of a save: the complete directory takes its final name."""
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)


def latest_distributed(root: str | os.PathLike[str]) -> Path | None:
    """The checkpoint ``root/latest`` names (or ``root`` itself when it is one), else None."""
    root = Path(root)
    if is_distributed_checkpoint(root):
        return root
    if (root / "checkpoints").is_dir():
        root = root / "checkpoints"
    pointer = root / _LATEST
    if not pointer.is_file():
        return None
    path = root / pointer.read_text().strip()
    if not is_distributed_checkpoint(path):
        raise LumosError(f"{pointer} names {path.name}, which is missing or incomplete. Delete {pointer} to start "
                         "over, or point it at an existing step_* directory.")
    return path


def load_distributed(path: str | os.PathLike[str], model: nn.Module, optimizer: torch.optim.Optimizer | None = None,
                     restore_rng: bool = True) -> dict[str, Any]:
    """Load a DCP checkpoint into ``model`` (sharded or not, any world size) and ``optimizer``; returns
    ``state.json``. RNG states are restored only on the world size they were saved with."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import set_model_state_dict, set_state_dict

    path = Path(path)
    if not is_distributed_checkpoint(path):
        raise LumosError(f"{path} is not a complete distributed checkpoint (no .metadata / state.json).")
    sd = _state_dicts(model, optimizer)
    try:
        with _single_process_quiet():
            dcp.state_dict_loader.load(sd, checkpoint_id=str(path), no_dist=not dist.is_distributed())
    except Exception as exc:  # noqa: BLE001 - DCP raises CheckpointException / RuntimeError on mismatches
        msg = " ".join(str(exc).split())[:200]
        raise LumosError(f"Checkpoint {path} does not fit this model ({msg}). Load it with the same model "
                         "configuration.") from None
    if optimizer is None:
        set_model_state_dict(model, sd["model"])
    else:
        set_state_dict(model, optimizer, model_state_dict=sd["model"], optim_state_dict=sd["optim"])
    state = read_json(path / "state.json")
    rng = path / "rng" / f"rank_{dist.rank():05d}.pt"
    if restore_rng and state.get("world_size") == dist.world_size() and rng.is_file():
        set_rng_state(torch_load(rng))
    return state


def export_checkpoint(path: str | os.PathLike[str], out: str | os.PathLike[str], format: str = "minimax_m1",
                      dtype: torch.dtype | None = None, max_shard_size: int = 2 * 1024**3) -> Path:
    """A distributed checkpoint (any world size) → release safetensors shards in ``format``, in one process."""
    from lumos.models.checkpoint.pretrained import default_dtype, save_pretrained
    from lumos.models.minimax.config import MiniMaxConfig
    from lumos.models.minimax.modeling import HybridLM

    src = latest_distributed(path)
    if src is None:
        raise LumosError(f"No distributed checkpoint found at {path} (expected step_*/.metadata or a 'latest' file).")
    if not (src / "config.json").is_file():
        raise LumosError(f"{src} has no config.json; only checkpoints of lumos HybridLM models can be exported.")
    config = MiniMaxConfig.from_json(src / "config.json")
    model = HybridLM.empty(config, dtype=default_dtype(config), device="cpu")
    load_distributed(src, model, restore_rng=False)
    return save_pretrained(model, out, format=format, dtype=dtype, max_shard_size=max_shard_size)
