"""The safetensors checkpoint format shared by single-process and sharded loading: names, the key/shape check
against config.json, and placing one source tensor into the model (see :mod:`lumos.models.checkpoint.pretrained`)."""

from __future__ import annotations

from pathlib import Path

import torch

from lumos.core.errors import LumosError
from lumos.core.io import read_json
from lumos.layers.lightning_attention import LightningAttention
from lumos.models.minimax.config import MiniMaxConfig, detect_format
from lumos.models.minimax.convert import SourceSpec, detect_moe_style, source_spec
from lumos.models.minimax.modeling import HybridLM

__all__ = ["INDEX_NAME", "SINGLE_NAME", "default_dtype", "read_checkpoint_keys", "inspect_checkpoint", "check_finite",
           "place_tensor"]

INDEX_NAME = "model.safetensors.index.json"
SINGLE_NAME = "model.safetensors"
_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16, "float64": torch.float64}


def default_dtype(config: MiniMaxConfig) -> torch.dtype:
    """The dtype a checkpoint's config.json names (``torch_dtype``), float32 if none."""
    return _DTYPES.get(config.torch_dtype or "float32", torch.float32)


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
                 if k in spec and (want := spec[k].shape) is not None and tuple(want) != shapes[k]]
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


def check_finite(t: torch.Tensor, key: str, path: Path) -> None:
    """A damaged checkpoint: NaN or inf in a floating-point weight is an error naming the key."""
    if t.is_floating_point() and not bool(torch.isfinite(t).all()):
        n = int((~torch.isfinite(t)).sum())
        raise LumosError(f"{path}: weight {key} holds {n} non-finite value(s) (NaN or inf); the checkpoint is damaged. "
                         "Re-download or re-save it.")


def place_tensor(model: HybridLM, params: dict[str, torch.nn.Parameter], s: SourceSpec, key: str, t: torch.Tensor,
           path: Path) -> None:
    check_finite(t, key, path)
    if s.check_slope_layer is not None:
        attn = model.model.decoder_layers()[s.check_slope_layer].self_attn
        if not isinstance(attn, LightningAttention):
            raise LumosError(f"{path}: {key} holds lightning slopes, but layer {s.check_slope_layer} is a softmax "
                             "layer in the config; the config does not match these weights.")
        ours = attn.slope_rate
        theirs = t.reshape(-1).to(ours)
        if theirs.shape != ours.shape or not torch.allclose(theirs, ours, rtol=1e-4, atol=0):
            raise LumosError(f"{path}: {key} {theirs.tolist()} differs from the slopes the config implies "
                             f"({ours.tolist()}, lightning_slope_variant={model.config.lightning_slope_variant!r}); "
                             "the config does not match these weights.")
    for p in s.placements:
        src = p.transform(t) if p.transform is not None else t
        dst = params[p.param] if p.index is None else params[p.param][p.index]
        dst.copy_(src)
