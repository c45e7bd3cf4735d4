"""Any transformers causal LM directory (or a peft adapter directory over one) for ``lumos generate``.

:func:`is_transformers_dir` tells such a directory from a lumos/MiniMax checkpoint; :func:`load_transformers` loads
the model (safetensors only) with the tokenizer saved beside it (:func:`lumos.models.tokenizer.model_tokenizer`);
:func:`generate_transformers` samples with transformers' own ``model.generate`` and returns a
:class:`~lumos.models.generation.GenerationOutput` with the same meaning as lumos's :func:`generate`:
``logprobs`` are log softmax(logits / temperature) of the chosen tokens over the full vocabulary (before
top-k / top-p filtering), and a sequence finishes at the tokenizer's EOS, at a stop string, or at the limit.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, cast

import torch

from lumos.core.errors import LumosError, one_line
from lumos.core.io import read_json
from lumos.models.generation import GenerationOutput, left_pad
from lumos.models.minimax.config import is_minimax_model_type

__all__ = ["is_transformers_dir", "is_adapter_dir", "load_transformers", "generate_transformers", "quiet_transformers",
           "resolve_device"]


def resolve_device(device: str, flag: str = "--device") -> str:
    """``auto`` → ``cuda`` when present, else ``cpu``; ``cpu``, ``cuda``, ``cuda:N``, ``mps`` as given. A CUDA
    device on a machine without one, or anything else, is one clear error."""
    ok = isinstance(device, str) and (device in ("auto", "cpu", "cuda", "mps") or (
        device.startswith("cuda:") and device[5:].isdigit()))
    if not ok:
        raise LumosError(f"{flag} must be auto, cpu, cuda or cuda:N; got {device!r}.")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise LumosError(f"{flag} {device}: CUDA is not available on this machine. Use {flag} cpu (or auto).")
    if device.startswith("cuda:") and int(device[5:]) >= torch.cuda.device_count():
        raise LumosError(f"{flag} {device}: this machine has {torch.cuda.device_count()} CUDA device(s).")
    return device


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """transformers' own progress bars off (lumos shows its own), restored afterwards."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:  # pragma: no cover
        yield
        return
    was = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was:
            hf_logging.enable_progress_bar()


def is_adapter_dir(path: str | os.PathLike[str]) -> bool:
    """A peft adapter directory (``adapter_config.json``, no ``config.json``)."""
    p = Path(path)
    return (p / "adapter_config.json").is_file() and not (p / "config.json").is_file()


def is_transformers_dir(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` holds a transformers model that is not a MiniMax checkpoint (or a peft adapter)."""
    p = Path(path)
    if is_adapter_dir(p):
        return True
    if not (p / "config.json").is_file():
        return False
    raw = read_json(p / "config.json")
    model_type = str(raw.get("model_type", "")) if isinstance(raw, dict) else ""
    return bool(model_type) and not is_minimax_model_type(model_type)


def load_transformers(path: str | os.PathLike[str], *, dtype: torch.dtype | None = None, device: str = "cpu",
                      chat_template: bool = True) -> tuple[Any, Any]:
    """``(model, tokenizer)`` of a transformers (or peft adapter) directory; safetensors only, local files only."""
    p = Path(path)
    if not any(p.glob("*.safetensors")):
        raise LumosError(f"{p} holds no safetensors weights; lumos loads safetensors only (pickles can run code). "
                         "Save with save_pretrained(..., safe_serialization=True).")
    try:
        with quiet_transformers():
            if is_adapter_dir(p):
                from peft import AutoPeftModelForCausalLM

                model = AutoPeftModelForCausalLM.from_pretrained(str(p), dtype=dtype or torch.float32,
                                                                 local_files_only=True)
            else:
                from transformers import AutoModelForCausalLM

                model = AutoModelForCausalLM.from_pretrained(str(p), dtype=dtype or torch.float32,
                                                             use_safetensors=True, local_files_only=True)
    except ImportError as exc:
        raise LumosError(f"Loading {p} needs {exc.name}: pip install 'lumos[rl]'.") from None
    except (OSError, ValueError, KeyError) as exc:
        raise LumosError(f"Cannot load the model in {p} ({one_line(exc, 200)}).") from None
    from lumos.models.tokenizer import model_tokenizer

    tokenizer = model_tokenizer(p, model, chat_template=chat_template)
    # the class comes from the directory's config; transformers' wrapped ``to`` hides its ``self`` from pyright
    return cast(torch.nn.Module, model).to(device).eval(), tokenizer


@torch.no_grad()
def generate_transformers(model: Any, tokenizer: Any, prompts: Sequence[Any], *, max_new_tokens: int = 64,
                          do_sample: bool = False, temperature: float = 1.0, top_k: int | None = None,
                          top_p: float | None = None, stop_strings: Sequence[str] | None = None,
                          seed: int | None = None) -> GenerationOutput:
    """Generate for ``prompts`` (text or chat messages, encoded with :func:`~lumos.models.tokenizer.encode_prompt`,
    left-padded) with ``model.generate``; see the module docstring for the returned values."""
    from lumos.models.tokenizer import encode_prompt

    ids, mask = left_pad([encode_prompt(tokenizer, p) for p in prompts], tokenizer.pad_token_id)
    device = next(model.parameters()).device
    if seed is not None:
        torch.manual_seed(int(seed))
    kw: dict[str, Any] = {"do_sample": do_sample, "max_new_tokens": max_new_tokens,
                          "eos_token_id": tokenizer.eos_token_id, "pad_token_id": tokenizer.pad_token_id,
                          "return_dict_in_generate": True, "output_logits": True}
    if do_sample:
        kw.update(temperature=temperature, top_k=top_k or 0, top_p=top_p if top_p is not None else 1.0)
    else:
        kw.update(temperature=None, top_k=None, top_p=None)
    if stop_strings:
        kw.update(stop_strings=list(stop_strings), tokenizer=getattr(tokenizer, "tok", tokenizer))
    out = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device), **kw)
    tokens = out.sequences[:, ids.shape[1]:].cpu()                                      # (B, T)
    logits = torch.stack(out.logits, dim=1).float().cpu() if out.logits else torch.zeros(len(prompts), 0, 1)
    lp = torch.log_softmax(logits / temperature, dim=-1).gather(-1, tokens[..., None])[..., 0]
    eos_id, pad_id = tokenizer.eos_token_id, tokenizer.pad_token_id
    real = torch.zeros_like(tokens, dtype=torch.bool)
    reasons = []
    for i, row in enumerate(tokens.tolist()):
        if eos_id in row:                        # EOS kept, the padding after it dropped
            n, why = row.index(eos_id) + 1, "eos"
        else:
            n, why = len(row), "length"
            if stop_strings:                     # a row stopped by a stop string is padded to the batch's length
                while n and row[n - 1] == pad_id:
                    n -= 1
                if n < len(row) or any(s in tokenizer.decode(row[:n]) for s in stop_strings):
                    why = "stop"
        real[i, :n] = True
        reasons.append(why)
    tokens = torch.where(real, tokens, torch.full_like(tokens, tokenizer.pad_token_id))
    lp = torch.where(real, lp, torch.zeros_like(lp))
    sequences = torch.cat([ids, tokens], dim=1)
    return GenerationOutput(sequences=sequences, tokens=tokens, logprobs=lp, mask=real, finish_reasons=reasons)
