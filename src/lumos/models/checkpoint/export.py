"""``lumos export``: any checkpoint lumos reads → a release (``minimax_m1``) or transformers directory.

The output is written into a temporary directory beside the destination and renamed into place, so a killed
export leaves no half-written checkpoint. The destination is checked before anything is read or written:

* never the source, inside it, or around it (a run directory, its ``checkpoints`` or a step directory);
* never over an existing checkpoint unless ``overwrite=True``, and never over a run directory or a non-empty
  directory that is not a checkpoint (its files would be lost), whatever ``overwrite`` says.

Tokenizer files (``tokenizer.json`` and companions) found with the source are copied along.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

import torch

from lumos.core.errors import LumosError
from lumos.core.io import atomic_write_bytes, make_temp_dir
from lumos.models.checkpoint.resolve import CheckpointSource, open_checkpoint, resolve_checkpoint
from lumos.models.minimax.config import CONFIG_FORMATS, MiniMaxConfig

__all__ = ["export_checkpoint", "check_destination"]


def _inside(a: Path, b: Path) -> bool:
    """True when ``a`` is ``b`` or lies under it."""
    return a == b or b in a.parents


def check_destination(dst: str | os.PathLike[str], src: CheckpointSource, overwrite: bool = False) -> Path:
    """Refuse a destination that overlaps the source or holds something ``overwrite`` does not cover."""
    out = Path(dst)
    real = out.resolve()
    for p in src.protected:
        q = p.resolve()
        if _inside(real, q) or _inside(q, real):
            raise LumosError(f"Refusing to export into {out}: it overlaps the source, the {src.describe()}. "
                             "Choose a new directory outside it.")
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise LumosError(f"{out} exists and is not a directory; choose a new directory for the checkpoint.")
    for parent in real.parents:
        if parent.exists() and not parent.is_dir():
            raise LumosError(f"Cannot create {out}: {parent} is a file. Choose another path.")
    if out.is_dir() and any(out.iterdir()):
        if (out / "manifest.json").is_file():
            raise LumosError(f"{out} is a lumos run directory; export into a new directory instead.")
        is_ckpt = (out / "config.json").is_file() and (any(out.glob("*.safetensors"))
                                                         or (out / "model.safetensors.index.json").is_file())
        if not is_ckpt:
            raise LumosError(f"{out} is not empty and holds no checkpoint; export into a new or empty directory.")
        if not overwrite:
            raise LumosError(f"{out} already holds a checkpoint; pass --overwrite (overwrite=True) to replace it, or "
                             "choose another directory.")
    return out


def export_checkpoint(src: str | os.PathLike[str], dst: str | os.PathLike[str], format: str = "minimax_m1", *,
                      dtype: torch.dtype | str | None = None, max_shard_size: int = 2 * 1024**3,
                      overwrite: bool = False, config: MiniMaxConfig | str | os.PathLike[str] | None = None) -> Path:
    """Write the model of the checkpoint ``src`` (any kind :func:`resolve_checkpoint` accepts) to ``dst``.

    Args:
        src: a release / transformers directory, a run directory (its latest checkpoint), a ``checkpoints``
            directory, or a step directory (distributed or single-process).
        dst: the new checkpoint directory (see the module docstring for what is refused).
        format: "minimax_m1" (release keys, per-expert) or "transformers" (``MiniMaxForCausalLM``).
        dtype: weights dtype of the output (default: the source's).
        max_shard_size: bytes per safetensors shard.
        overwrite: replace a checkpoint already at ``dst``.
        config: the model configuration for an old run checkpoint without ``config.json``.

    Returns ``dst`` as a Path.
    """
    from lumos.models.checkpoint.pretrained import check_dtype, save_pretrained

    if format not in CONFIG_FORMATS:
        raise LumosError(f"The 'format' parameter of export_checkpoint must be one of {CONFIG_FORMATS}. Got "
                         f"{format!r} instead.")
    dtype = check_dtype(dtype, "export_checkpoint")
    source = resolve_checkpoint(src)
    out = check_destination(dst, source, overwrite)
    model = open_checkpoint(source, config=config)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = make_temp_dir(out)
    try:
        save_pretrained(model, tmp, format=format, dtype=dtype, max_shard_size=max_shard_size)
        for f in source.tokenizer_files():
            atomic_write_bytes(tmp / f.name, f.read_bytes())
        _commit(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _commit(tmp: Path, out: Path) -> None:
    """Rename ``tmp`` to ``out``; an existing ``out`` (already allowed by :func:`check_destination`) is moved
    aside first and removed after, so ``out`` is always either the old or the new checkpoint."""
    if out.is_dir() and any(out.iterdir()):
        old = make_temp_dir(out)
        os.replace(out, old / "old")
        try:
            os.replace(tmp, out)
        except BaseException:
            os.replace(old / "old", out)
            raise
        finally:
            shutil.rmtree(old, ignore_errors=True)
        return
    with contextlib.suppress(FileNotFoundError):
        out.rmdir()                 # an empty directory the user made for it
    os.replace(tmp, out)
