"""Sharded loading: every rank reads from the safetensors shards only the slices of the parameters it owns.

The model is built on the meta device, sharded by :func:`lumos.distributed.parallel.shard_model` (FSDP2, optionally
expert parallel), given storage for its *local* shards only (``to_empty``), and filled key by key with
``safe_open(...).get_slice(key)[a:b]`` where [a, b) is the rank's row range of dim 0 (FSDP2 and expert
parallelism both shard dim 0). Per-expert release keys are read only by the rank owning that expert; the
transformers format's fused ``gate_up_proj`` is sliced by expert rows before it is split; its q/k row
permutation (proportional RoPE) acts within a head, so those reads are widened to whole heads and cut back.
Keys, shapes and the format are checked from the headers before any tensor data is read (one error for all
missing / unexpected / mis-shaped keys, as for the single-process load).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from lumos.core.errors import LumosError
from lumos.models.checkpoint.format import check_finite, default_dtype, inspect_checkpoint, place_tensor
from lumos.models.minimax.convert import SourceSpec

__all__ = ["load_sharded", "local_rows"]


def local_rows(p: torch.Tensor) -> tuple[torch.Tensor, int, int]:
    """(local tensor, a, b): this rank's rows [a, b) of dim 0 of a (DTensor) parameter; other dims are whole."""
    from torch.distributed.tensor import DTensor
    from torch.distributed.tensor._utils import compute_local_shape_and_global_offset

    if not isinstance(p, DTensor):
        return p.data, 0, p.shape[0]
    shape, offset = compute_local_shape_and_global_offset(p.shape, p.device_mesh, p.placements)
    if tuple(shape[1:]) != tuple(p.shape[1:]):
        raise LumosError(f"sharded loading expects parameters sharded on dim 0; got local shape {tuple(shape)} of "
                         f"{tuple(p.shape)}.")
    local = p.to_local()
    return local, int(offset[0]) if shape[0] else 0, (int(offset[0]) + shape[0]) if shape[0] else 0


def load_sharded(path: Path, mesh: Any, *, dtype: torch.dtype | None = None, expert_parallel: bool = False,
                 format: str | None = None, device: str | torch.device = "cpu", **shard_kwargs: Any) -> Any:
    """A sharded :class:`~lumos.models.minimax.modeling.HybridLM` from a checkpoint directory of either format.

    Args:
        path: checkpoint directory (config.json + safetensors, release or transformers layout).
        mesh: device mesh (:func:`lumos.distributed.parallel.make_mesh`).
        dtype: parameter dtype (default: the checkpoint's ``torch_dtype``).
        expert_parallel: spread the experts over the mesh's "ep" dimension.
        format: expected format (None = detect from config.json).
        device: where the local shards live.
        shard_kwargs: passed to :func:`~lumos.distributed.parallel.shard_model` (``reshard_after_forward``, ...).

    ``model.load_stats`` afterwards: ``{"local_param_bytes", "max_read_bytes", "read_bytes"}`` of this rank.
    """
    from safetensors import safe_open

    from lumos.distributed.parallel import shard_model
    from lumos.models.minimax.modeling import HybridLM

    path = Path(path)
    config, where, shapes, spec = inspect_checkpoint(path, format)
    # FSDP2 owns the parameters once sharded, so they are not re-tied (a reassigned one would leave its FSDPParam)
    model = HybridLM.empty(config, dtype=dtype or default_dtype(config), device=device, retie=False,
                           prepare=lambda m: shard_model(m, mesh, expert_parallel=expert_parallel, **shard_kwargs))
    params = dict(model.named_parameters())
    rows = {name: local_rows(p) for name, p in params.items()}
    by_shard: dict[str, list[str]] = {}
    for k in shapes:
        by_shard.setdefault(where[k], []).append(k)
    stats = {"read_bytes": 0, "max_read_bytes": 0}
    with torch.no_grad():
        for shard in sorted(by_shard):
            with safe_open(str(path / shard), framework="pt", device=str(device)) as fh:
                for key in by_shard[shard]:
                    _read_into(model, params, rows, spec[key], key, fh, path, stats)
    model.load_stats = {"local_param_bytes": sum(t.numel() * t.element_size() for t, _, _ in rows.values()), **stats}
    return model.eval()


def _read_into(model: Any, params: dict[str, Any], rows: dict[str, tuple[torch.Tensor, int, int]], s: SourceSpec,
               key: str, fh: Any, path: Path, stats: dict[str, int]) -> None:
    def note(t: torch.Tensor) -> torch.Tensor:
        check_finite(t, key, path)
        n = t.numel() * t.element_size()
        stats["read_bytes"] += n
        stats["max_read_bytes"] = max(stats["max_read_bytes"], n)
        return t

    if s.check_slope_layer is not None:        # a small transformers buffer: verify it against the config
        place_tensor(model, params, s, key, note(fh.get_tensor(key)), path)
        return
    read: dict[tuple[int, int], torch.Tensor] = {}    # one read per row range (gate_up_proj feeds w1 and w3)

    def rows_of(a0: int, b0: int) -> torch.Tensor:
        if (a0, b0) not in read:
            read[(a0, b0)] = note(fh.get_slice(key)[a0:b0])
        return read[(a0, b0)]

    for p in s.placements:
        local, a, b = rows[p.param]
        if p.index is not None:                # one expert of a stacked (E, ...) parameter
            if a <= p.index < b:
                t = note(fh.get_tensor(key))
                local[p.index - a].copy_(p.transform(t) if p.transform is not None else t)
            continue
        if b <= a:
            continue
        blk = p.row_block
        a0, b0 = (a // blk) * blk, -(-b // blk) * blk
        t = rows_of(a0, b0)
        if p.transform is not None:
            t = p.transform(t)
        local.copy_(t[a - a0:b - a0])
