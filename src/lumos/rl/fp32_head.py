"""FP32 LM head study: does computing the LM head in float32 align rollout and training probabilities?

MiniMax-M1 (§3.1 of the reference) found the per-token probabilities of the rollout engine and the training
forward correlated only ≈0.9x, and ≈0.99x once the LM head ran in FP32. Here the *training* forward is the
float32 model and the *rollout* model is a copy in reduced precision (bf16 by default), either entirely
(``fp32 head: no``) or with the LM head kept in float32 weights and computed in float32 on up-cast hidden
states (``fp32 head: yes``, ``model.lm_head_fp32 = True``). Rollouts are sampled from the reduced-precision
model; both models then score the same tokens.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from lumos.core.errors import LumosTypeError
from lumos.rl.policy import HybridPolicy, clone_model, make_policy
from lumos.rl.tasks.base import Task
from lumos.rl.trainer import encode_prompts

__all__ = ["fp32_head_study", "pearson", "rollout_copy"]


def pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    """Pearson correlation of two 1-D tensors (float64)."""
    a, b = a.double() - a.double().mean(), b.double() - b.double().mean()
    return float((a * b).sum() / (a.norm() * b.norm()).clamp_min(1e-300))


def rollout_copy(model: nn.Module, dtype: torch.dtype, fp32_head: bool) -> nn.Module:
    """A reduced-precision copy of a lumos HybridLM; with ``fp32_head`` its LM head stays float32."""
    if not hasattr(model, "lm_head_fp32"):
        raise LumosTypeError(f"The FP32-head study needs a lumos HybridLM (with lm_head_fp32); got {type(model).__name__}.")
    low = clone_model(model).to(dtype).eval()
    if fp32_head:
        if low.config.tie_word_embeddings:
            raise LumosTypeError("fp32_head with tied embeddings would also up-cast the embedding; untie them first.")
        low.lm_head.float()
        low.lm_head_fp32 = True
    else:
        low.lm_head_fp32 = False
    return low


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
        low = HybridPolicy(rollout_copy(train.model, dtype, fp32), train.eos_token_id, train.pad_token_id,
                           repetition_truncation=None)
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
