"""FP32 LM head study: does computing the LM head in float32 align rollout and training probabilities?

MiniMax-M1 (§3.1 of the reference) found the per-token probabilities of the rollout engine and the training
forward correlated only ≈0.9x, and ≈0.99x once the LM head ran in FP32. Here the *training* forward is the
float32 model and the *rollout* model is a copy in reduced precision (bf16 by default), either entirely
(``fp32 head: no``) or with the LM head kept in float32 weights and computed in float32 on up-cast hidden
states (``fp32 head: yes``; lumos: ``model.lm_head_fp32 = True``, transformers: the output embedding replaced by
:class:`FP32Head`). Rollouts are sampled from the reduced-precision model; both models then score the same tokens.
Works with a lumos ``HybridLM`` and with any transformers causal LM whose output embedding is a linear layer.
"""

from __future__ import annotations

from typing import Any, Protocol, cast

import torch
import torch.nn.functional as F
from torch import nn

from lumos.core.errors import LumosTypeError
from lumos.models import HybridLM
from lumos.rl.policy import HybridPolicy, clone_model, make_policy
from lumos.rl.tasks.base import Task
from lumos.rl.trainer import encode_prompts

__all__ = ["fp32_head_study", "pearson", "rollout_copy", "FP32Head"]


def pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    """Pearson correlation of two 1-D tensors (float64)."""
    a, b = a.double() - a.double().mean(), b.double() - b.double().mean()
    return float((a * b).sum() / (a.norm() * b.norm()).clamp_min(1e-300))


class FP32Head(nn.Module):
    """An LM head computed in float32: float32 copies of a linear head's weights, applied to up-cast hidden states."""

    def __init__(self, head: nn.Linear) -> None:
        super().__init__()
        self.weight = nn.Parameter(head.weight.detach().float().clone(), requires_grad=False)
        self.bias = None if head.bias is None else nn.Parameter(head.bias.detach().float().clone(), requires_grad=False)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return F.linear(hidden.float(), self.weight, self.bias)


def rollout_copy(model: nn.Module, dtype: torch.dtype, fp32_head: bool) -> nn.Module:
    """A reduced-precision copy of ``model`` (a lumos HybridLM or a transformers causal LM); with ``fp32_head`` its
    LM head keeps float32 weights (an untied copy: a tied input embedding stays in ``dtype``) and computes in float32.
    The original model is untouched."""
    if hasattr(model, "lm_head_fp32"):  # a lumos HybridLM (FSDP2 subclasses its class)
        low_lm = cast(HybridLM, clone_model(model).to(dtype).eval())
        if fp32_head:
            weight = cast(HybridLM, model).lm_head.weight
            low_lm.lm_head.weight = nn.Parameter(weight.detach().float().clone(), requires_grad=False)
        low_lm.lm_head_fp32 = fp32_head
        return low_lm
    head = getattr(model, "get_output_embeddings", lambda: None)()
    if not isinstance(head, nn.Linear) or not hasattr(model, "set_output_embeddings"):
        raise LumosTypeError("The FP32-head study needs a lumos HybridLM or a transformers causal LM with a linear "
                             f"output embedding; got {type(model).__name__}.")
    low = clone_model(model).to(dtype).eval()
    if fp32_head:
        cast(_OutputEmbeddings, low).set_output_embeddings(FP32Head(head))
    return low


class _OutputEmbeddings(Protocol):
    """A transformers causal LM: its output embedding (the LM head) can be replaced."""

    def set_output_embeddings(self, new_embeddings: nn.Module) -> None: ...


@torch.no_grad()
def fp32_head_study(model: nn.Module, task: Task, samples: int = 32, max_new_tokens: int = 16,
                    dtype: torch.dtype = torch.bfloat16, seed: int = 0, temperature: float = 1.0) -> list[dict[str, Any]]:
    """Rows ``{fp32 head, tokens, pearson, mean |Δp|, max |Δlog p|}`` for the rollout copy without and with the head."""
    from lumos.models.tokenizer import ByteTokenizer

    train = make_policy(model)
    train.model.eval()
    problems = task.generate(samples, seed=seed + 4242)
    ids, mask = encode_prompts(ByteTokenizer(), problems, train.pad_token_id)
    rows = []
    for fp32 in (False, True):
        low = make_policy(rollout_copy(train.model, dtype, fp32), train.eos_token_id, train.pad_token_id)
        if isinstance(low, HybridPolicy):
            low.repetition_truncation = None
        gen = torch.Generator().manual_seed(seed)
        ro = low.generate(ids, mask, max_new_tokens=max_new_tokens, temperature=temperature,
                          generators=[gen] * samples)
        logp_train, _ = train.token_logprobs(ro, temperature)
        m = ro.response_mask
        p_roll, p_train = ro.logprobs[m].exp(), logp_train[m].exp()
        rows.append({
            "fp32 head": "yes" if fp32 else "no",
            "rollout dtype": str(dtype).replace("torch.", ""),
            "tokens": int(m.sum()),
            "pearson(p_train, p_rollout)": pearson(p_train, p_roll),
            "1 - pearson": 1.0 - pearson(p_train, p_roll),
            "mean |Δp|": float((p_train - p_roll).abs().mean()),
            "max |Δ log p|": float((logp_train[m] - ro.logprobs[m]).abs().max()),
        })
    return rows
