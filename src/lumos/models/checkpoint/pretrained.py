"""Sharded safetensors checkpoints for :class:`~lumos.models.minimax.modeling.HybridLM`, in both key layouts.

A checkpoint directory holds ``config.json`` (either format) and either ``model.safetensors`` or shards listed in
``model.safetensors.index.json`` (``{"metadata": {"total_size": N}, "weight_map": {key: shard}}``).

Loading never holds two copies of the weights: the model is built on the ``meta`` device, given uninitialised
storage with ``to_empty`` in the target dtype, and filled tensor by tensor from the shards (safetensors reads
each tensor lazily). Before any data is read, every key and shape is checked against the config; missing,
unexpected and mis-shaped keys are reported together in one error. Unreadable shards are a clear error too.

Layering: the format (names, key check, tensor placement) is :mod:`lumos.models.checkpoint.format`, which this
module and :mod:`lumos.models.checkpoint.sharded` both build on; :func:`load_pretrained` is the front door of both.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from lumos.core.errors import LumosError, bad_param
from lumos.core.io import atomic_write_json, save_tensors
from lumos.core.progress import track
from lumos.core.validation import check_positive_int
from lumos.models.checkpoint.format import (
    INDEX_NAME,
    SINGLE_NAME,
    default_dtype,
    inspect_checkpoint,
    place_tensor,
)
from lumos.models.checkpoint.sharded import load_sharded
from lumos.models.minimax.config import CONFIG_FORMATS, MiniMaxConfig
from lumos.models.minimax.convert import export_tensors
from lumos.models.minimax.modeling import HybridLM

__all__ = ["load_pretrained", "save_pretrained", "inspect_checkpoint", "INDEX_NAME", "SINGLE_NAME", "default_dtype",
           "check_dtype"]

#: dtype names save_pretrained / load_pretrained / export accept besides torch dtypes
DTYPE_NAMES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
               "float16": torch.float16, "fp16": torch.float16, "half": torch.float16}


def check_dtype(dtype: object, owner: str) -> torch.dtype | None:
    """None, a floating torch dtype, or one of :data:`DTYPE_NAMES` (→ the torch dtype); anything else is an error."""
    if dtype is None:
        return None
    if isinstance(dtype, str) and dtype.lower().removeprefix("torch.") in DTYPE_NAMES:
        return DTYPE_NAMES[dtype.lower().removeprefix("torch.")]
    if isinstance(dtype, torch.dtype) and dtype.is_floating_point and dtype.itemsize >= 2:
        return dtype
    raise bad_param("dtype", "None, a floating torch dtype (torch.bfloat16, ...) or one of the names "
                    + ", ".join(repr(k) for k in DTYPE_NAMES), dtype, owner=owner, type_error=True)


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


def save_pretrained(model: HybridLM, path: str | os.PathLike[str], format: str = "minimax_m1", max_shard_size: int = 2 * 1024**3,
                    dtype: torch.dtype | None = None) -> Path:
    """Write ``config.json`` in ``format`` and the weights as safetensors shards plus the index (all atomic).

    Args:
        model: the model to save.
        path: directory (created).
        format: "minimax_m1" (release names) or "transformers" (``MiniMaxForCausalLM`` names and packing).
        max_shard_size: bytes per shard (a tensor larger than this gets a shard of its own).
        dtype: cast the weights on the way out (default: keep the model's dtype): a torch dtype or its name
            ("bfloat16", "bf16", "float16", "float32", ...).

    Returns the directory as a Path.
    """
    path = Path(path)
    if format not in CONFIG_FORMATS:
        raise LumosError(f"The 'format' parameter of save_pretrained must be one of {CONFIG_FORMATS}. Got {format!r} "
                         "instead.")
    check_positive_int(max_shard_size, "max_shard_size", owner="save_pretrained")
    dtype = check_dtype(dtype, "save_pretrained")
    if not isinstance(model, HybridLM):
        raise bad_param("model", "a lumos HybridLM", type(model).__name__, owner="save_pretrained", type_error=True)
    if path.exists() and not path.is_dir():
        raise LumosError(f"save_pretrained writes a directory, but {path} is a file; choose a directory path.")
    for parent in path.parents:
        if parent.exists() and not parent.is_dir():
            raise LumosError(f"Cannot create {path}: {parent} is a file. Choose another path.")
    path.mkdir(parents=True, exist_ok=True)
    shards: list[dict[str, torch.Tensor]] = [{}]
    sizes = [0]
    for key, t in export_tensors(model, format, dtype=dtype):
        nbytes = t.numel() * t.element_size()
        if shards[-1] and sizes[-1] + nbytes > max_shard_size:
            shards.append({})
            sizes.append(0)
        shards[-1][key] = t
        sizes[-1] += nbytes
    n = len(shards)
    weight_map: dict[str, str] = {}
    for i, shard in enumerate(track(shards, description="Writing shards", total=n)):
        name = f"model-{i + 1:05d}-of-{n:05d}.safetensors"
        save_tensors(path / name, shard, metadata={"format": "pt"})
        weight_map.update({k: name for k in shard})
    config = MiniMaxConfig(**{**model.config.to_dict(), "torch_dtype": _dtype_name(dtype or model.dtype)})
    config.to_json(path / "config.json", format=format)
    atomic_write_json(path / INDEX_NAME, {"metadata": {"total_size": sum(sizes), "format": format},
                                          "weight_map": weight_map})
    written = set(weight_map.values())
    for stale in [*path.glob("model-?????-of-?????.safetensors"), path / SINGLE_NAME]:
        if stale.is_file() and stale.name not in written:  # shards of an earlier save into this directory
            stale.unlink()
    return path


def load_pretrained(path: str | os.PathLike[str], dtype: torch.dtype | None = None, device: str | torch.device = "cpu",
                    format: str | None = None, device_mesh: object = None, expert_parallel: bool = False) -> HybridLM:
    """Build a :class:`HybridLM` from a checkpoint directory of either format (see module docstring).

    ``format`` (None = detect from config.json) names the expected format; a different one is an error;
    ``dtype`` default: the checkpoint's. With ``device_mesh`` (:func:`lumos.distributed.parallel.make_mesh`) the model
    is sharded with FSDP2 (and ``expert_parallel``) and each rank reads only its own slices
    (:func:`lumos.models.checkpoint.sharded.load_sharded`). A run directory or a training step directory is
    opened through :func:`lumos.models.checkpoint.resolve.open_checkpoint` (unsharded)."""
    from safetensors import safe_open

    dtype = check_dtype(dtype, "load_pretrained")
    if not isinstance(expert_parallel, bool):
        raise bad_param("expert_parallel", "True or False", expert_parallel, owner="load_pretrained", type_error=True)
    if device_mesh is not None:
        from lumos.distributed.parallel import check_mesh

        check_mesh(device_mesh, "load_pretrained")
        return load_sharded(Path(path), device_mesh, dtype=dtype, expert_parallel=expert_parallel, format=format,
                            device=device)
    if expert_parallel:
        raise bad_param("expert_parallel", "False without a device_mesh", True, owner="load_pretrained",
                        fix="Expert parallelism spreads experts over the mesh's 'ep' ranks: pass "
                        "device_mesh=make_mesh(ep, num_experts=...) as well, or drop expert_parallel.")
    path = Path(path)
    if path.is_dir() and any((path / n).exists() for n in ("state.json", "latest", "checkpoints", "manifest.json")):
        from lumos.models.checkpoint.resolve import open_checkpoint, resolve_checkpoint

        src = resolve_checkpoint(path)     # one rule for what a directory is (a release directory stays here)
        if src.kind != "pretrained":
            return open_checkpoint(src, dtype=dtype, device=device, format=format)
    config, where, shapes, spec = inspect_checkpoint(path, format)
    dtype = dtype or default_dtype(config)
    model = HybridLM.empty(config, dtype=dtype, device=device)
    params = dict(model.named_parameters())
    by_shard: dict[str, list[str]] = {}
    for k in shapes:
        by_shard.setdefault(where[k], []).append(k)
    with torch.no_grad():
        for shard in track(sorted(by_shard), description="Loading shards", total=len(by_shard)):
            with safe_open(str(path / shard), framework="pt", device=str(device)) as fh:
                for key in by_shard[shard]:
                    place_tensor(model, params, spec[key], key, fh.get_tensor(key), path)
    return model.eval()


def checkpoint_size(path: str | os.PathLike[str]) -> int:
    """Total bytes of the safetensors files of a checkpoint directory."""
    p = Path(path)
    return sum(f.stat().st_size for f in p.glob("*.safetensors"))
