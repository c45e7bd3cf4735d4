"""Sharded safetensors checkpoints for :class:`~lumos.models.hybrid.HybridLM`, in both key layouts.

A checkpoint directory holds ``config.json`` (either format) and either ``model.safetensors`` or shards listed in
``model.safetensors.index.json`` (``{"metadata": {"total_size": N}, "weight_map": {key: shard}}``).

Loading never holds two copies of the weights: the model is built on the ``meta`` device, given uninitialised
storage with ``to_empty`` in the target dtype, and filled tensor by tensor from the shards (safetensors reads
each tensor lazily). Before any data is read, every key and shape is checked against the config; missing,
unexpected and mis-shaped keys are reported together in one error. Unreadable shards are a clear error too.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from lumos.core.errors import LumosError
from lumos.core.io import atomic_write_json, read_json, save_tensors
from lumos.core.progress import track
from lumos.core.validation import check_positive_int
from lumos.models.config import CONFIG_FORMATS, MiniMaxConfig, detect_format
from lumos.models.convert import SourceSpec, detect_moe_style, export_tensors, source_spec
from lumos.models.hybrid import HybridLM

__all__ = ["load_pretrained", "save_pretrained", "read_checkpoint_keys", "inspect_checkpoint", "INDEX_NAME",
           "SINGLE_NAME", "default_dtype"]

INDEX_NAME = "model.safetensors.index.json"
SINGLE_NAME = "model.safetensors"
_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16, "float64": torch.float64}


def default_dtype(config: MiniMaxConfig) -> torch.dtype:
    """The dtype a checkpoint's config.json names (``torch_dtype``), float32 if none."""
    return _DTYPES.get(config.torch_dtype or "float32", torch.float32)


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
        dtype: cast the weights on the way out (default: keep the model's dtype).

    Returns the directory as a Path.
    """
    path = Path(path)
    if format not in CONFIG_FORMATS:
        raise LumosError(f"The 'format' parameter of save_pretrained must be one of {CONFIG_FORMATS}. Got {format!r} "
                         "instead.")
    check_positive_int(max_shard_size, "max_shard_size", owner="save_pretrained")
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


def read_checkpoint_keys(path: Path) -> tuple[dict[str, str], dict[str, tuple[int, ...]]]:
    """(key → shard file name, key → shape) from the index or the single file; headers only, no tensor data."""
    from safetensors import safe_open

    index = path / INDEX_NAME
    if index.is_file():
        data = read_json(index)
        weight_map = data.get("weight_map") if isinstance(data, dict) else None
        if not isinstance(weight_map, dict) or not weight_map:
            raise LumosError(f"{index} has no 'weight_map'; re-create the checkpoint index.")
    elif (path / SINGLE_NAME).is_file():
        weight_map = None
    else:
        raise LumosError(f"No weights in {path}: expected {SINGLE_NAME} or {INDEX_NAME} with its shards.")
    shard_names = sorted(set(weight_map.values())) if weight_map else [SINGLE_NAME]
    shapes: dict[str, tuple[int, ...]] = {}
    where: dict[str, str] = {}
    for name in shard_names:
        f = path / name
        if not f.is_file():
            raise LumosError(f"Shard {name} listed in {INDEX_NAME} is missing from {path}; re-download or re-save it.")
        try:
            with safe_open(str(f), framework="pt") as fh:
                for k in fh.keys():
                    shapes[k] = tuple(fh.get_slice(k).get_shape())
                    where[k] = name
        except Exception as exc:  # noqa: BLE001 - safetensors raises several types for bad files
            msg = " ".join(str(exc).split())[:120]
            raise LumosError(f"Shard {f} is corrupt or not a safetensors file ({msg}); re-download or re-save it.") from None
    if weight_map:
        wrong = [k for k, s in weight_map.items() if where.get(k) != s]
        if wrong:
            raise LumosError(f"{INDEX_NAME} in {path} lists {len(wrong)} key(s) not found in their shard "
                             f"(e.g. {wrong[:3]}); the index and shards do not belong together.")
    return where, shapes


def _check_keys(spec: dict[str, SourceSpec], shapes: dict[str, tuple[int, ...]], path: Path, fmt: str) -> None:
    missing = [k for k, s in spec.items() if not s.optional and k not in shapes]
    unexpected = [k for k in shapes if k not in spec]
    misshaped = [f"{k} {shapes[k]} (expected {spec[k].shape})" for k in shapes
                 if k in spec and spec[k].shape is not None and tuple(spec[k].shape) != shapes[k]]
    if not (missing or unexpected or misshaped):
        return

    def show(items: list[str]) -> str:
        return ", ".join(items[:6]) + (f", ... ({len(items)} in all)" if len(items) > 6 else "")

    parts = []
    if missing:
        parts.append(f"missing keys: {show(missing)}")
    if unexpected:
        parts.append(f"unexpected keys: {show(unexpected)}")
    if misshaped:
        parts.append(f"mis-shaped keys: {show(misshaped)}")
    raise LumosError(f"Checkpoint {path} does not match its config.json ({fmt} format): " + "; ".join(parts)
                     + ". Check that config.json belongs to these weights.")


def inspect_checkpoint(path: Path, format: str | None = None
                       ) -> tuple[MiniMaxConfig, dict[str, str], dict[str, tuple[int, ...]], dict[str, SourceSpec]]:
    """(config, key → shard, key → shape, key → :class:`SourceSpec`) of a checkpoint directory, every key and
    shape checked against config.json (headers only, no tensor data). ``format`` None = detect."""
    if not path.is_dir():
        raise LumosError(f"Model directory not found: {path}. Pass a directory with config.json and safetensors.")
    raw = read_json(path / "config.json")
    fmt = detect_format(raw) if isinstance(raw, dict) else "minimax_m1"
    if format is not None and format != fmt:
        raise LumosError(f"{path} holds a {fmt!r} checkpoint, not {format!r} as requested; drop the format or "
                         f"ask for {fmt!r}.")
    config = MiniMaxConfig.from_json(path / "config.json")
    where, shapes = read_checkpoint_keys(path)
    spec = source_spec(config, fmt, detect_moe_style(shapes))
    _check_keys(spec, shapes, path, fmt)
    return config, where, shapes, spec


def load_pretrained(path: str | os.PathLike[str], dtype: torch.dtype | None = None, device: str | torch.device = "cpu",
                    format: str | None = None, device_mesh: object = None, expert_parallel: bool = False) -> HybridLM:
    """Build a :class:`HybridLM` from a checkpoint directory of either format (see module docstring).

    ``format`` (None = detect from config.json) names the expected format; a different one is an error;
    ``dtype`` default: the checkpoint's. With ``device_mesh`` (:func:`lumos.models.parallel.make_mesh`) the model
    is sharded with FSDP2 (and ``expert_parallel``) and each rank reads only its own slices
    (:func:`lumos.models.sharded_loading.load_sharded`)."""
    from safetensors import safe_open

    if device_mesh is not None:
        from lumos.models.sharded_loading import load_sharded

        return load_sharded(Path(path), device_mesh, dtype=dtype, expert_parallel=expert_parallel, format=format,
                            device=device)
    path = Path(path)
    config, where, shapes, spec = inspect_checkpoint(path, format)
    dtype = dtype or default_dtype(config)
    with torch.device("meta"):
        model = HybridLM(config)
    model = model.to(dtype).to_empty(device=device)
    model.reset_buffers()
    params = dict(model.named_parameters())
    by_shard: dict[str, list[str]] = {}
    for k in shapes:
        by_shard.setdefault(where[k], []).append(k)
    with torch.no_grad():
        for shard in track(sorted(by_shard), description="Loading shards", total=len(by_shard)):
            with safe_open(str(path / shard), framework="pt", device=str(device)) as fh:
                for key in by_shard[shard]:
                    _place(model, params, spec[key], key, fh.get_tensor(key), path)
    if config.tie_word_embeddings:
        model.lm_head.weight = model.model.embed_tokens.weight
    return model.eval()


def check_finite(t: torch.Tensor, key: str, path: Path) -> None:
    """A damaged checkpoint: NaN or inf in a floating-point weight is an error naming the key."""
    if t.is_floating_point() and not bool(torch.isfinite(t).all()):
        n = int((~torch.isfinite(t)).sum())
        raise LumosError(f"{path}: weight {key} holds {n} non-finite value(s) (NaN or inf); the checkpoint is damaged. "
                         "Re-download or re-save it.")


def _place(model: HybridLM, params: dict[str, torch.nn.Parameter], s: SourceSpec, key: str, t: torch.Tensor,
           path: Path) -> None:
    check_finite(t, key, path)
    if s.check_slope_layer is not None:
        ours = model.model.layers[s.check_slope_layer].self_attn.slope_rate
        theirs = t.reshape(-1).to(ours)
        if theirs.shape != ours.shape or not torch.allclose(theirs, ours, rtol=1e-4, atol=0):
            raise LumosError(f"{path}: {key} {theirs.tolist()} differs from the slopes the config implies "
                             f"({ours.tolist()}, lightning_slope_variant={model.config.lightning_slope_variant!r}); "
                             "the config does not match these weights.")
    for p in s.placements:
        src = p.transform(t) if p.transform is not None else t
        dst = params[p.param] if p.index is None else params[p.param][p.index]
        dst.copy_(src)


def checkpoint_size(path: str | os.PathLike[str]) -> int:
    """Total bytes of the safetensors files of a checkpoint directory."""
    p = Path(path)
    return sum(f.stat().st_size for f in p.glob("*.safetensors"))
