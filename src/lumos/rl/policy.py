"""Policy adapters: rollouts and per-token log-probabilities for a lumos ``HybridLM`` or any transformers causal LM.

The trainer talks to a :class:`Policy`:

- :meth:`Policy.generate` samples responses for a left-padded prompt batch and records the sampler's
  log-probability of every sampled token (the "old" log-probs of off-policy RL);
- :meth:`Policy.token_logprobs` runs the training forward over prompt + response and returns, with
  gradient, log π_θ of each response token and the entropy of the full next-token distribution.

Log-probs are always of ``softmax(logits / temperature)`` over the full vocabulary.

:class:`HFPolicy` samples with its own loop over the model's KV cache (``use_cache=True``) and per-row
``torch.Generator`` s, so a row's sample does not depend on which other rows share its batch.
:func:`sample_reference` is its slow twin: the same sampling with a full forward per token and no cache.
:class:`HybridPolicy` uses ``lumos.models.generate`` (hybrid cache, repetition truncation, FP32 head).
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol, cast

import torch
from torch import nn

from lumos.core.errors import LumosError, LumosTypeError, bad_param
from lumos.models.generation import filter_logits, generate, left_pad
from lumos.models.minimax.modeling import HybridLM

__all__ = ["Rollout", "Policy", "HFPolicy", "HybridPolicy", "AdapterDisabledPolicy", "make_policy", "sample_reference",
           "left_pad",
           "response_logprobs", "clone_model", "context_limit", "check_context"]

#: model config fields that bound prompt + completion length, in the order they are read
CONTEXT_FIELDS = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length")


#: per-forward state some models keep as plain attributes (``HybridLM._routing`` holds the router's graph)
_TRANSIENT_ATTRS = ("_routing", "aux_loss")


def clone_model(model: nn.Module) -> nn.Module:
    """``copy.deepcopy`` without the tensors of the last forward (which hold an autograd graph)."""
    import copy

    stashed = []
    for m in model.modules():
        for name in _TRANSIENT_ATTRS:
            if name in m.__dict__:
                stashed.append((m, name, m.__dict__[name]))
                m.__dict__[name] = [] if isinstance(m.__dict__[name], list) else None
    try:
        return copy.deepcopy(model)
    finally:
        for m, name, value in stashed:
            m.__dict__[name] = value


@dataclass
class Rollout:
    """Sampled responses. N rows, P prompt columns (left-padded), T response columns (right-padded)."""

    prompt_ids: torch.Tensor      # (N, P) long
    prompt_mask: torch.Tensor     # (N, P) long, 1 = real
    response_ids: torch.Tensor    # (N, T) long, pad after the end
    response_mask: torch.Tensor   # (N, T) bool, True at generated tokens (incl. EOS)
    logprobs: torch.Tensor        # (N, T) float32, sampler log-prob of each token (0 at padding)
    finish_reasons: list[str]

    @property
    def lengths(self) -> torch.Tensor:
        return self.response_mask.sum(-1)


def response_logprobs(logits: torch.Tensor, response_ids: torch.Tensor, temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """log softmax(logits/temperature) gathered at ``response_ids`` and the entropy, both (N, T).

    ``logits``: (N, T, V), row t predicting response token t.
    """
    lp = torch.log_softmax(logits.float() / temperature, dim=-1)
    tok = lp.gather(-1, response_ids[..., None])[..., 0]
    entropy = -(lp.exp() * lp).sum(-1)
    return tok, entropy


def _sample(logits: torch.Tensor, temperature: float, do_sample: bool,
            generators: Sequence[torch.Generator] | None, top_k: int | None = None,
            top_p: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Next tokens (N,) and their log-probs under softmax(logits/temperature); one generator per row.

    Sampling draws from softmax(filter(logits / temperature)), top-k then top-p (:func:`filter_logits`, as
    ``lumos generate``); the returned log-probs are of the *unfiltered* distribution over the full vocabulary,
    the one the training forward computes, so the importance ratio compares like with like (as TRL's, which
    also ignores the truncation). Draws run on the CPU with the row's CPU generator (reproducible on any device).
    """
    scaled = logits.float() / temperature
    lp = torch.log_softmax(scaled, dim=-1)
    if not do_sample:
        tok = lp.argmax(-1)
    else:
        filtered = scaled if top_k is None and top_p is None else filter_logits(scaled, top_k, top_p)
        probs = torch.softmax(filtered, dim=-1).cpu()
        rows = [torch.multinomial(probs[i], 1, generator=generators[i] if generators else None)
                for i in range(probs.shape[0])]
        tok = torch.cat(rows).to(logits.device)
    return tok, lp.gather(-1, tok[:, None])[:, 0]


class Policy(abc.ABC):
    """A trainable language-model policy (see module docstring)."""

    model: nn.Module
    eos_token_id: int
    pad_token_id: int

    @abc.abstractmethod
    def forward_logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(N, L, V) logits of a full forward; prompts left-padded, responses right-padded."""

    @abc.abstractmethod
    def generate(self, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, *, max_new_tokens: int,
                 temperature: float = 1.0, do_sample: bool = True,
                 generators: Sequence[torch.Generator] | None = None, top_k: int | None = None,
                 top_p: float | None = None) -> Rollout:
        """Sample up to ``max_new_tokens`` per row; ``generators`` (one per row) make sampling reproducible.

        ``top_k``/``top_p`` filter the sampling distribution as ``lumos generate`` does; the recorded log-probs
        stay those of the full softmax(logits / temperature). The rollout's tensors are on the CPU."""

    def aux_loss(self) -> torch.Tensor | None:
        """Auxiliary loss of the last forward (MoE load balancing), or None."""
        return None

    def token_logprobs(self, rollout: Rollout, temperature: float = 1.0,
                       rows: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """log π_θ (N, T) of the response tokens (with gradient) and the per-token entropy (N, T)."""
        p_ids, p_mask = rollout.prompt_ids, rollout.prompt_mask
        r_ids, r_mask = rollout.response_ids, rollout.response_mask
        if rows is not None:
            p_ids, p_mask, r_ids, r_mask = p_ids[rows], p_mask[rows], r_ids[rows], r_mask[rows]
        ids = torch.cat([p_ids, r_ids], dim=1)
        mask = torch.cat([p_mask, r_mask.to(p_mask.dtype)], dim=1)
        logits = self.forward_logits(ids, mask)                      # (N, P+T, V)
        P, T = p_ids.shape[1], r_ids.shape[1]
        return response_logprobs(logits[:, P - 1: P + T - 1], r_ids.to(logits.device), temperature)


def _finish(tokens: list[torch.Tensor], logps: list[torch.Tensor], eos: int, pad: int,
            max_new_tokens: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[str]]:
    tok = torch.stack(tokens, 1) if tokens else torch.zeros(0, 0, dtype=torch.long)
    lp = torch.stack(logps, 1) if logps else torch.zeros(0, 0)
    is_eos = tok == eos
    # a token is real when no EOS came strictly before it
    before = torch.cumsum(is_eos.long(), 1) - is_eos.long()
    mask = before == 0
    tok = torch.where(mask, tok, torch.full_like(tok, pad))
    lp = torch.where(mask, lp, torch.zeros_like(lp))
    reasons = ["eos" if bool(is_eos[i].any()) else "length" for i in range(tok.shape[0])]
    return tok, lp, mask, reasons


class HFPolicy(Policy):
    """Any transformers causal LM (``model(input_ids, attention_mask, position_ids, past_key_values)``)."""

    def __init__(self, model: nn.Module, eos_token_id: int, pad_token_id: int) -> None:
        import inspect

        self.model = model
        self.eos_token_id = int(eos_token_id)
        self.pad_token_id = int(pad_token_id)
        # transformers ≥ 5.2x calls the KV cache argument ``cache``; earlier versions ``past_key_values``
        get_base = getattr(model, "get_base_model", None)
        base = get_base() if get_base is not None else model   # a peft model's base
        params = inspect.signature(base.forward).parameters
        self._cache_kw = "cache" if "cache" in params else "past_key_values"

    @staticmethod
    def _cache_of(out: object) -> object:
        cache = getattr(out, "cache", None)
        return cache if cache is not None else getattr(out, "past_key_values", None)

    @staticmethod
    def _positions(mask: torch.Tensor) -> torch.Tensor:
        return (mask.long().cumsum(-1) - 1).clamp_min(0)

    def forward_logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        device = _device_of(self.model)
        input_ids, attention_mask = input_ids.to(device), attention_mask.to(device)
        out = self.model(input_ids=input_ids, attention_mask=attention_mask,
                         position_ids=self._positions(attention_mask), use_cache=False)
        return out.logits

    @torch.no_grad()
    def generate(self, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, *, max_new_tokens: int,
                 temperature: float = 1.0, do_sample: bool = True,
                 generators: Sequence[torch.Generator] | None = None, top_k: int | None = None,
                 top_p: float | None = None) -> Rollout:
        device = _device_of(self.model)
        mask = prompt_mask.to(device)
        pos = self._positions(mask)
        out = self.model(input_ids=prompt_ids.to(device), attention_mask=mask, position_ids=pos, use_cache=True)
        past, logits = self._cache_of(out), out.logits[:, -1]
        done = torch.zeros(prompt_ids.shape[0], dtype=torch.bool, device=device)
        tokens, logps = [], []
        for _ in range(max_new_tokens):
            tok, lp = _sample(logits, temperature, do_sample, generators, top_k, top_p)
            tokens.append(tok)
            logps.append(lp)
            done |= tok == self.eos_token_id
            if bool(done.all()):
                break
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
            pos = pos[:, -1:] + 1
            out = self.model(input_ids=tok[:, None], attention_mask=mask, position_ids=pos, use_cache=True,
                             **{self._cache_kw: past})
            past, logits = self._cache_of(out), out.logits[:, -1]
        tokens, logps = [t.cpu() for t in tokens], [x.float().cpu() for x in logps]
        tok, lp, rmask, reasons = _finish(tokens, logps, self.eos_token_id, self.pad_token_id, max_new_tokens)
        return Rollout(prompt_ids, prompt_mask, tok, rmask, lp, reasons)


@torch.no_grad()
def sample_reference(policy: Policy, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, *, max_new_tokens: int,
                     temperature: float = 1.0, do_sample: bool = True,
                     generators: Sequence[torch.Generator] | None = None, top_k: int | None = None,
                     top_p: float | None = None) -> Rollout:
    """Slow twin of :meth:`HFPolicy.generate`: a full forward over prompt + tokens so far for every new token.

    Same arguments, same sampling (one ``torch.multinomial`` draw per row from its generator), no cache.
    """
    ids, mask = prompt_ids, prompt_mask
    done = torch.zeros(prompt_ids.shape[0], dtype=torch.bool)
    tokens, logps = [], []
    for _ in range(max_new_tokens):
        logits = policy.forward_logits(ids, mask)[:, -1].cpu()
        tok, lp = _sample(logits, temperature, do_sample, generators, top_k, top_p)
        tokens.append(tok)
        logps.append(lp)
        done |= tok == policy.eos_token_id
        if bool(done.all()):
            break
        ids = torch.cat([ids, tok[:, None]], dim=1)
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
    tok, lp, rmask, reasons = _finish(tokens, logps, policy.eos_token_id, policy.pad_token_id, max_new_tokens)
    return Rollout(prompt_ids, prompt_mask, tok, rmask, lp, reasons)


class HybridPolicy(Policy):
    """A lumos ``HybridLM``: rollouts with ``lumos.models.generate`` (hybrid cache, repetition truncation).

    ``lumos.models.generate`` takes one generator per call, so rows are sampled one call per distinct generator
    group: pass the same generator object for the rows of one group (the trainer does) and each group is
    generated in one batched call.
    """

    def __init__(self, model: nn.Module, eos_token_id: int | None = None, pad_token_id: int | None = None,
                 repetition_truncation: int | None = 3000, compile: bool = False) -> None:
        self.model = model
        self.compile = compile  # decode through lumos.models.fast_decode (generate(compile=True))
        cfg = getattr(model, "config", None)
        self.eos_token_id = _token_id(eos_token_id, cfg, "eos_token_id")
        self.pad_token_id = _token_id(pad_token_id, cfg, "pad_token_id")
        self.repetition_truncation = repetition_truncation

    def forward_logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids, attention_mask=attention_mask)

    def aux_loss(self) -> torch.Tensor | None:
        aux = getattr(self.model, "aux_loss", None)
        return aux if isinstance(aux, torch.Tensor) else None

    @torch.no_grad()
    def generate(self, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, *, max_new_tokens: int,
                 temperature: float = 1.0, do_sample: bool = True,
                 generators: Sequence[torch.Generator] | None = None, top_k: int | None = None,
                 top_p: float | None = None) -> Rollout:
        n = prompt_ids.shape[0]
        groups: list[list[int]] = []
        if generators is None or not do_sample:
            groups = [list(range(n))]
        else:
            by_id: dict[int, list[int]] = {}
            for i, g in enumerate(generators):
                by_id.setdefault(id(g), []).append(i)
            groups = list(by_id.values())
        parts = []
        for rows in groups:
            ids, m = prompt_ids[rows], prompt_mask[rows]
            keep = int(m.sum(0).nonzero().min()) if bool(m.any()) else 0     # drop all-pad columns
            out = generate(
                cast(HybridLM, self.model),   # a lumos model (make_policy's test; FSDP2 subclasses HybridLM)
                ids[:, keep:], attention_mask=m[:, keep:], max_new_tokens=max_new_tokens, do_sample=do_sample,
                temperature=temperature, top_k=top_k, top_p=top_p, eos_token_id=self.eos_token_id,
                pad_token_id=self.pad_token_id,
                generator=generators[rows[0]] if (generators is not None and do_sample) else None,
                repetition_truncation=self.repetition_truncation, compile=self.compile)
            parts.append((rows, out))
        T = max(out.tokens.shape[1] for _, out in parts)
        tok = torch.full((n, T), self.pad_token_id, dtype=torch.long)
        lp = torch.zeros(n, T)
        rmask = torch.zeros(n, T, dtype=torch.bool)
        reasons = [""] * n
        for rows, out in parts:
            t = out.tokens.shape[1]
            idx = torch.tensor(rows)
            tok[idx, :t] = torch.where(out.mask, out.tokens, torch.full_like(out.tokens, self.pad_token_id))
            lp[idx, :t] = torch.where(out.mask, out.logprobs.float(), torch.zeros_like(out.logprobs.float()))
            rmask[idx, :t] = out.mask
            for j, r in enumerate(rows):
                reasons[r] = out.finish_reasons[j]
        return Rollout(prompt_ids, prompt_mask, tok, rmask, lp, reasons)


class AdapterDisabledPolicy(HFPolicy):
    """A peft model's base model: ``policy``'s model with its adapters switched off (``disable_adapter()``),
    the KL reference of a LoRA run (no copy of the weights)."""

    def __init__(self, policy: Policy) -> None:
        super().__init__(policy.model, policy.eos_token_id, policy.pad_token_id)

    def forward_logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        with cast(_AdapterModel, self.model).disable_adapter():
            return super().forward_logits(input_ids, attention_mask)


class _AdapterModel(Protocol):
    """A peft model: its adapters can be switched off for a block."""

    def disable_adapter(self) -> AbstractContextManager[Any]: ...


def context_limit(model: object) -> tuple[str, int] | None:
    """``(field, n)``: the longest sequence (prompt + completion) ``model``'s config declares
    (:data:`CONTEXT_FIELDS`, first found), or None when it declares none."""
    cfg = getattr(model, "config", None)
    for name in CONTEXT_FIELDS:
        value = getattr(cfg, name, None)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return name, value
    return None


def check_context(prompt_tokens: int, max_new_tokens: int, limit: tuple[str, int] | None, where: str) -> None:
    """A prompt of ``prompt_tokens`` tokens plus ``max_new_tokens`` must fit the model's declared length
    ``limit`` (:func:`context_limit`): past it, learned positions fail with an index error and rotary ones run
    where the model was never trained, so lumos refuses instead of guessing."""
    if limit is None or prompt_tokens + max_new_tokens <= limit[1]:
        return
    name, n = limit
    raise LumosError(f"{where}: {prompt_tokens} prompt tokens + max_new_tokens {max_new_tokens} exceed the model's "
                     f"{name} = {n}. Shorten or drop prompts over {max(n - max_new_tokens, 0)} tokens, lower "
                     f"--max-new-tokens, or raise {name} in the model's config.json if it handles longer sequences.")


def _token_id(given: int | None, cfg: object, name: str) -> int:
    """``given``, else the model config's ``name``; a clear error when neither exists."""
    value = given if given is not None else getattr(cfg, name, None)
    if value is None:
        raise bad_param(name, "an int (the model has no config giving one)", None, owner="HybridPolicy")
    return int(value)


def _device_of(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def make_policy(model: nn.Module | Policy, eos_token_id: int | None = None, pad_token_id: int | None = None) -> Policy:
    """:class:`HybridPolicy` for a lumos model, :class:`HFPolicy` for a transformers ``PreTrainedModel``."""
    if isinstance(model, Policy):
        return model
    if any(c.__module__.startswith("lumos.") for c in type(model).__mro__):   # FSDP2 subclasses the model class
        return HybridPolicy(model, eos_token_id, pad_token_id)
    from lumos.rl.checkpoint import HFModel, is_hf_model

    if is_hf_model(model):
        cfg = cast(HFModel, model).config
        eos = eos_token_id if eos_token_id is not None else cfg.eos_token_id
        pad = pad_token_id if pad_token_id is not None else (cfg.pad_token_id if cfg.pad_token_id is not None else eos)
        if eos is None:
            raise bad_param("eos_token_id", "an int (the model config has none)", None, owner="make_policy")
        return HFPolicy(model, eos, pad)
    raise LumosTypeError(f"make_policy needs a lumos HybridLM, a transformers PreTrainedModel or a peft model; got "
                         f"{type(model).__name__}. Wrap other models in a Policy subclass.")
