"""Atomic training checkpoints: model (safetensors), optimizer and RNG (weights-only torch files), trainer state.

Layout under ``<run>/checkpoints/``::

    step_000010/model.safetensors  optimizer.pt  rng.pt  state.json  config.json (a lumos HybridLM's, for export)
    latest                          # text file naming the newest complete checkpoint directory

For a transformers model (or a peft adapter on one) the step directory is a Hugging Face directory
instead: ``save_pretrained``'s ``config.json`` + ``model.safetensors`` (a peft model: ``adapter_config.json`` +
``adapter_model.safetensors``) and the tokenizer files with the chat template, which
``AutoModelForCausalLM.from_pretrained`` / ``AutoTokenizer`` (peft: ``AutoPeftModelForCausalLM``) and
``lumos generate`` open; the resume state (``optimizer.pt``, ``rng.pt``, ``state.json``) sits beside them.

A checkpoint directory is written under a temporary name and renamed into place, then ``latest`` is
replaced atomically, so a crash at any moment leaves the previous checkpoint intact and ``latest``
pointing at a complete one. Nothing is unpickled on load (safetensors, ``weights_only=True``).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Protocol, cast

import torch
from torch import nn

from lumos.core.errors import LumosError
from lumos.core.io import (
    atomic_write_json,
    atomic_write_text,
    load_tensors,
    make_temp_dir,
    read_json,
    save_tensors,
    torch_load,
    torch_save,
)
from lumos.core.seed import get_rng_state, set_rng_state

__all__ = ["save_checkpoint", "load_checkpoint", "latest_checkpoint", "is_hf_model", "save_hf_model", "load_hf_weights"]


class HFModel(Protocol):
    """What lumos calls on a transformers ``PreTrainedModel`` or a peft model (both optional dependencies)."""

    config: Any

    def save_pretrained(self, save_directory: str, **kwargs: Any) -> Any: ...


def is_peft_model(model: nn.Module) -> bool:
    """Whether ``model`` is a ``peft`` model (an adapter over a transformers model)."""
    return any(c.__module__.startswith("peft.") for c in type(model).__mro__)


def is_hf_model(model: nn.Module) -> bool:
    """Whether ``model`` is a transformers ``PreTrainedModel`` or a peft model over one."""
    if is_peft_model(model):
        return True
    try:
        from transformers import PreTrainedModel
    except ImportError:  # pragma: no cover
        return False
    return isinstance(model, PreTrainedModel)


def save_hf_model(model: nn.Module, tokenizer: Any, directory: Path) -> None:
    """``model.save_pretrained`` (safetensors; a peft model writes its adapter) and the tokenizer into ``directory``."""
    from lumos.models.transformers_lm import quiet_transformers

    with quiet_transformers():
        cast(HFModel, model).save_pretrained(str(directory), safe_serialization=True)
    tok = getattr(tokenizer, "tok", tokenizer)
    if tok is not None and hasattr(tok, "save_pretrained"):
        tok.save_pretrained(str(directory))
    for f in directory.iterdir():        # files 0644 like every lumos output
        if f.is_file():
            f.chmod(0o644)


def load_hf_weights(directory: Path, model: nn.Module) -> None:
    """Load the weights :func:`save_hf_model` wrote back into ``model`` (in place, so an optimizer keeps its
    parameters). A peft model gets its adapter; a transformers model every weight (tied ones included)."""
    if is_peft_model(model):
        from peft import set_peft_model_state_dict

        adapter = directory / "adapter_model.safetensors"
        result = set_peft_model_state_dict(model, load_tensors(adapter))
        unexpected = list(getattr(result, "unexpected_keys", []) or [])
        if unexpected:
            raise RuntimeError(f"unexpected adapter keys {unexpected[:3]}")
        return
    from transformers import AutoModelForCausalLM

    from lumos.models.transformers_lm import quiet_transformers

    with quiet_transformers():
        fresh = AutoModelForCausalLM.from_pretrained(str(directory), use_safetensors=True, local_files_only=True,
                                                     dtype=next(model.parameters()).dtype)
    model.load_state_dict(fresh.state_dict(), strict=True)


def _model_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    # clone: tied weights share storage, which safetensors refuses to save twice
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def save_checkpoint(root: str | os.PathLike[str], step: int, model: nn.Module, optimizer: torch.optim.Optimizer,
                    state: dict[str, Any], keep: int = 2, tokenizer: Any = None) -> Path:
    """Write ``root/step_{step:06d}`` atomically, point ``root/latest`` at it, keep the newest ``keep``.

    A transformers / peft model is written with its own ``save_pretrained`` (safetensors) and ``tokenizer``
    (a :class:`~lumos.models.tokenizer.TransformersTokenizer`, or anything with ``save_pretrained``) beside it."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step_{step:06d}"
    tmp = make_temp_dir(final)
    try:
        if is_hf_model(model):
            save_hf_model(model, tokenizer, tmp)
        else:
            save_tensors(tmp / "model.safetensors", _model_tensors(model))
            _write_model_config(model, tmp)
        torch_save(tmp / "optimizer.pt", optimizer.state_dict())
        torch_save(tmp / "rng.pt", get_rng_state())
        atomic_write_json(tmp / "state.json", {"step": step, **state})
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    atomic_write_text(root / "latest", final.name + "\n")
    done = sorted(p for p in root.glob("step_*") if p.is_dir())
    for old in done[:-keep] if keep > 0 else []:
        if old != final:
            shutil.rmtree(old, ignore_errors=True)
    return final


def _write_model_config(model: nn.Module, directory: Path) -> None:
    """A lumos HybridLM's config.json (release format, its dtype) beside the weights: `lumos export` and
    `lumos generate` open the checkpoint without knowing how the run built its model."""
    import dataclasses

    from lumos.models.minimax.config import MiniMaxConfig

    config = getattr(model, "config", None)
    if isinstance(config, MiniMaxConfig):
        dtype = str(next(model.parameters()).dtype).replace("torch.", "")
        dataclasses.replace(config, torch_dtype=dtype).to_json(directory / "config.json", format="minimax_m1")


def latest_checkpoint(root: str | os.PathLike[str]) -> Path | None:
    """The directory named by ``root/latest`` (or ``root`` itself if it is a checkpoint), else None."""
    root = Path(root)
    if (root / "state.json").is_file():
        return root
    if (root / "checkpoints").is_dir():
        root = root / "checkpoints"
    pointer = root / "latest"
    if not pointer.is_file():
        return None
    from lumos.distributed.checkpoint import follow_latest

    path = follow_latest(pointer)
    if not (path / "state.json").is_file():
        steps = sorted(p.name for p in root.glob("step_*") if (p / "state.json").is_file())
        listing = "existing: " + ", ".join(steps[-3:]) if steps else "none exists"
        raise LumosError(f"{pointer} names {path.name}, which is incomplete (no state.json); write the name of a "
                         f"complete checkpoint into {pointer} ({listing}).")
    return path


def load_checkpoint(path: str | os.PathLike[str], model: nn.Module, optimizer: torch.optim.Optimizer | None = None,
                    restore_rng: bool = True) -> dict[str, Any]:
    """Restore model (strict), optimizer and RNG from a checkpoint directory; returns ``state.json``."""
    path = Path(path)
    try:
        if is_hf_model(model):
            load_hf_weights(path, model)
        else:
            model.load_state_dict(load_tensors(path / "model.safetensors"), strict=True)
    except RuntimeError as exc:
        raise LumosError(f"Checkpoint {path} does not fit this model ({str(exc).splitlines()[0][:160]}). "
                         "Resume with the same model configuration.") from None
    if optimizer is not None:
        optimizer.load_state_dict(torch_load(path / "optimizer.pt"))
    if restore_rng:
        set_rng_state(torch_load(path / "rng.pt"))
    return read_json(path / "state.json")
