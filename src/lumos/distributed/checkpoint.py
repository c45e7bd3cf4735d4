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

No pickle from outside is run. ``torch.distributed.checkpoint`` reads ``.metadata`` with ``pickle.load`` and
non-tensor entries (the optimizer's param groups) with ``torch.load(weights_only=False)``; lumos reads both
through :class:`SafeFileSystemReader` (a restricted unpickler admitting only the classes DCP's metadata is
made of) and :class:`SafeLoadPlanner` (``weights_only=True``), so a crafted checkpoint is a one-line
:class:`LumosError` that ran nothing. Every other loader failure (a missing ``__0_0.distcp`` shard, a truncated
file: torch's ``CheckpointException`` derives from ``BaseException``) is one :class:`LumosError` line too.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import pickle
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lumos.core.errors import LumosError, one_line
from lumos.core.io import atomic_write_json, atomic_write_text, read_json, torch_load, torch_save
from lumos.core.seed import get_rng_state, set_rng_state
from lumos.distributed import process_group as dist

__all__ = ["save_distributed", "load_distributed", "latest_distributed", "export_checkpoint", "is_distributed_checkpoint",
           "read_metadata", "SafeFileSystemReader", "SafeLoadPlanner"]

_LATEST = "latest"

#: The globals a ``.metadata`` pickle written by torch.distributed.checkpoint may name (torch 2.4 - 2.x):
#: metadata dataclasses, the per-entry storage record, torch.Size / dtypes / layouts, and the checkpoint
#: id's path class. Anything else (``os.system``, ``builtins.eval``, ...) is refused before it is called.
_METADATA_GLOBALS = frozenset({
    ("torch.distributed.checkpoint.metadata", name) for name in (
        "Metadata", "MetadataIndex", "ChunkStorageMetadata", "TensorProperties", "TensorStorageMetadata",
        "BytesStorageMetadata", "StorageMeta", "_MEM_FORMAT_ENCODING")
} | {
    ("torch.distributed.checkpoint.filesystem", "_StorageInfo"),
    ("torch.distributed.checkpoint.filesystem", "_StoragePrefix"),
    ("torch", "Size"),
    ("torch.serialization", "_get_layout"),
    ("pathlib", "PosixPath"), ("pathlib", "PurePosixPath"), ("pathlib", "WindowsPath"), ("pathlib", "PureWindowsPath"),
    ("pathlib", "Path"),
    ("collections", "OrderedDict"),
})


class _MetadataUnpickler(pickle.Unpickler):
    """Unpickles DCP metadata only: :data:`_METADATA_GLOBALS` and ``torch.<dtype>``; any other global is refused."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _METADATA_GLOBALS:
            return super().find_class(module, name)
        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        raise pickle.UnpicklingError(f"it names {module}.{name}, which a checkpoint's metadata never holds")


def read_metadata(path: str | os.PathLike[str]) -> Any:
    """The ``Metadata`` of the DCP checkpoint directory ``path`` (or of a ``.metadata`` file), read with a
    restricted unpickler and checked (every storage record a plain file name in the directory). A crafted or
    damaged file is a :class:`LumosError` and runs nothing."""
    from torch.distributed.checkpoint.filesystem import _StorageInfo
    from torch.distributed.checkpoint.metadata import Metadata

    f = Path(path)
    if f.is_dir():
        f = f / ".metadata"
    try:
        with open(f, "rb") as fh:
            md = _MetadataUnpickler(fh).load()
    except FileNotFoundError:
        raise LumosError(f"{f} not found: {f.parent} is not a distributed checkpoint.") from None
    except Exception as exc:  # noqa: BLE001 - pickle raises many types on crafted or damaged input
        raise LumosError(f"{f} is not distributed-checkpoint metadata lumos can read safely ({one_line(exc, 160)}); "
                         "nothing in it was run. Use a checkpoint written by torch.distributed.checkpoint.") from None
    if not isinstance(md, Metadata) or not isinstance(md.state_dict_metadata, dict):
        raise LumosError(f"{f} does not hold a checkpoint Metadata object (got {type(md).__name__}); the checkpoint "
                         "is damaged or not a distributed checkpoint.")
    storage = md.storage_data if md.storage_data is not None else {}
    bad = [v for v in (storage.values() if isinstance(storage, dict) else [storage])
           if not isinstance(v, _StorageInfo) or not isinstance(v.relative_path, str)
           or Path(v.relative_path).name != v.relative_path or v.relative_path in ("", ".", "..")
           or not isinstance(v.offset, int) or not isinstance(v.length, int) or v.offset < 0 or v.length < 0
           or getattr(v, "transform_descriptors", None)]
    if bad or not isinstance(storage, dict):
        raise LumosError(f"{f} lists storage outside the checkpoint directory or with an unsupported layout "
                         f"({one_line(repr(bad[:1]), 120) if bad else type(storage).__name__}); refusing to read it.")
    return md


def _reader_class() -> type:
    from torch.distributed.checkpoint.filesystem import FileSystemReader
    from torch.distributed.checkpoint.metadata import StorageMeta

    class _SafeFileSystemReader(FileSystemReader):
        """``FileSystemReader`` whose ``.metadata`` goes through :func:`read_metadata` (no arbitrary pickle)."""

        def read_metadata(self, *args: Any, **kwargs: Any) -> Any:
            rank = kwargs.get("rank")
            md = read_metadata(Path(self._get_metadata_path(rank)))
            if getattr(md, "storage_meta", None) is None:
                md.storage_meta = StorageMeta()
            md.storage_meta.load_id = self.load_id
            return md

    return _SafeFileSystemReader


def _planner_class() -> type:
    from torch.distributed.checkpoint.default_planner import DefaultLoadPlanner

    class _SafeLoadPlanner(DefaultLoadPlanner):
        """``DefaultLoadPlanner`` that reads non-tensor entries with ``torch.load(weights_only=True)`` (torch's
        own uses ``weights_only=False``). The checked object is re-serialised for the parent to place."""

        def load_bytes(self, read_item: Any, value: io.BytesIO) -> None:
            obj = torch.load(value, weights_only=True)
            buf = io.BytesIO()
            torch.save(obj, buf)
            buf.seek(0)
            super().load_bytes(read_item, buf)

    return _SafeLoadPlanner


def SafeFileSystemReader(path: str | os.PathLike[str]) -> Any:  # noqa: N802 - a class factory (torch imported lazily)
    """A ``torch.distributed.checkpoint.FileSystemReader`` for ``path`` that unpickles only DCP metadata."""
    return _reader_class()(str(path))


def SafeLoadPlanner() -> Any:  # noqa: N802 - a class factory (torch imported lazily)
    """A ``DefaultLoadPlanner`` that loads non-tensor entries with ``weights_only=True``."""
    return _planner_class()()


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
    path = follow_latest(pointer)
    if not is_distributed_checkpoint(path):
        if (path / "state.json").is_file():
            raise LumosError(f"{path} is a single-process training checkpoint, not a distributed one; load it with "
                             "lumos.models.checkpoint.open_checkpoint (lumos export / generate read both).")
        raise LumosError(f"{pointer} names {path.name}, which is incomplete (no .metadata / state.json); point "
                         f"{pointer} at a complete step_* directory ({_steps_listing(root)}).")
    return path


def _steps_listing(root: Path) -> str:
    steps = sorted(p.name for p in root.glob("step_*") if p.is_dir())
    return "existing: " + ", ".join(steps[-3:]) if steps else "none exists"


def follow_latest(pointer: Path) -> Path:
    """The step directory a ``latest`` file names: a plain ``step_*`` name in the same directory that exists."""
    try:
        name = pointer.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise LumosError(f"Cannot read {pointer} ({one_line(exc, 100)}); it should name a step_* directory.") from None
    if not name or Path(name).name != name or name in (".", ".."):
        raise LumosError(f"{pointer} holds {name[:60]!r}, not the name of a step_* directory beside it; write the "
                         f"name of a complete checkpoint into it ({_steps_listing(pointer.parent)}).")
    path = pointer.parent / name
    if not path.is_dir():
        raise LumosError(f"{pointer} names {name}, which does not exist; write the name of a complete checkpoint "
                         f"into it ({_steps_listing(pointer.parent)}).")
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
    from torch.distributed.checkpoint.api import CheckpointException

    _check_files(path, read_metadata(path))     # refused before torch touches the files
    sd = _state_dicts(model, optimizer)
    try:
        with _single_process_quiet():
            dcp.state_dict_loader.load(sd, checkpoint_id=str(path), storage_reader=SafeFileSystemReader(path),
                     planner=SafeLoadPlanner(), no_dist=not dist.is_distributed())
    except LumosError:
        raise
    except (Exception, CheckpointException) as exc:  # noqa: BLE001 - CheckpointException is a BaseException
        raise LumosError(_load_failure(path, exc)) from None
    if optimizer is None:
        set_model_state_dict(model, sd["model"])
    else:
        set_state_dict(model, optimizer, model_state_dict=sd["model"], optim_state_dict=sd["optim"])
    state = read_json(path / "state.json")
    if not isinstance(state, dict) or not isinstance(state.get("step"), int):
        raise LumosError(f"{path / 'state.json'} is damaged (no integer 'step'); use an earlier checkpoint.")
    rng = path / "rng" / f"rank_{dist.rank():05d}.pt"
    if restore_rng and state.get("world_size") == dist.world_size() and rng.is_file():
        set_rng_state(torch_load(rng))
    return state


def _check_files(path: Path, md: Any) -> None:
    """Every shard the metadata names exists and is long enough for the records in it."""
    need: dict[str, int] = {}
    for info in md.storage_data.values():
        need[info.relative_path] = max(need.get(info.relative_path, 0), info.offset + info.length)
    missing = sorted(n for n in need if not (path / n).is_file())
    if missing:
        raise LumosError(f"Checkpoint {path} is incomplete: {', '.join(missing[:3])} "
                         f"{'is' if len(missing) == 1 else 'are'} missing. Copy the whole step directory (every "
                         "__*_*.distcp file), or use an earlier checkpoint.")
    short = sorted(n for n, size in need.items() if (path / n).stat().st_size < size)
    if short:
        raise LumosError(f"Checkpoint {path} is truncated: {', '.join(short[:3])} is shorter than its metadata says. "
                         "Copy it again, or use an earlier checkpoint.")


def _load_failure(path: Path, exc: BaseException) -> str:
    """One line for a failed ``dcp.load``: a damaged shard, or a model that does not fit."""
    causes: list[BaseException] = []
    failures = getattr(exc, "failures", None)
    if isinstance(failures, dict):     # rank -> (exception, traceback summary)
        for v in failures.values():
            causes += [x for x in (v if isinstance(v, tuple) else (v,)) if isinstance(x, BaseException)]
    text = one_line("; ".join(f"{type(c).__name__}: {c}" for c in causes) if causes else exc, 200)
    if any(w in text for w in ("size", "shape", "Missing key", "missing", "Unexpected", "mismatch")):
        return f"Checkpoint {path} does not fit this model ({text}). Load it with the same model configuration."
    return (f"Checkpoint {path} cannot be read ({text}); a shard is truncated or damaged. Use an earlier checkpoint "
            "or copy it again.")


def export_checkpoint(path: str | os.PathLike[str], out: str | os.PathLike[str], format: str = "minimax_m1",
                      dtype: torch.dtype | None = None, max_shard_size: int = 2 * 1024**3, overwrite: bool = False
                      ) -> Path:
    """Any checkpoint lumos reads → release safetensors in ``format``: see
    :func:`lumos.models.checkpoint.export.export_checkpoint` (kept here for the distributed-checkpoint API)."""
    from lumos.models.checkpoint.export import export_checkpoint as export

    return export(path, out, format=format, dtype=dtype, max_shard_size=max_shard_size, overwrite=overwrite)
