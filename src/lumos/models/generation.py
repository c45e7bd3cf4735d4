"""Generation for :class:`~lumos.models.minimax.modeling.HybridLM` with the hybrid cache.

Prefill runs the whole (left-padded) prompt once: lightning layers go through the op's blocked path and
return their final (B, H, D, D) float32 states, softmax layers fill their KV caches. Each decode step then feeds
one token per sequence: lightning layers use the op's ``step`` path (O(1) per token), softmax layers attend over
the cache. Padding never enters a lightning state and is masked in softmax layers; RoPE positions count real
tokens per sequence.

Sampling: greedy (``do_sample=False``) or sampling from softmax(logits / temperature) filtered by top-k then
top-p, drawn with ``generator`` (or a fresh one seeded with ``seed``). ``logprobs`` are the log-probabilities of
the chosen tokens under softmax(logits / temperature) over the full vocabulary (before filtering), in float32.

A sequence stops at its EOS token (kept), after ``max_new_tokens``, when the decoded text contains a stop
string (needs ``tokenizer``), or by the MiniMax-M1 repetition early truncation: after ``repetition_truncation``
consecutive tokens each with probability > ``repetition_threshold`` (paper: 3000 and 0.99), the last one kept.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from lumos.core.errors import LumosError, bad_param
from lumos.core.validation import check_float, check_positive_int, check_probability, check_tensor
from lumos.models.fast_decode import FastDecoder, fast_path_applies
from lumos.models.minimax.modeling import HybridLM

__all__ = ["GenerationOutput", "generate", "filter_logits", "FINISH_REASONS", "left_pad", "default_pad_id",
           "encode_prompts"]

FINISH_REASONS = ("eos", "length", "stop", "repetition")
_OWNER = "generate"


@dataclass
class GenerationOutput:
    """Result of :func:`generate` for B prompts of padded length P and T generated steps.

    Attributes:
        sequences: (B, P + T) long, prompt + generated tokens, ``pad_token_id`` after a sequence finished.
        tokens: (B, T) long, the generated part of ``sequences``.
        logprobs: (B, T) float32, log-prob of each token under softmax(logits / temperature); 0 where masked.
        mask: (B, T) bool, True at real generated tokens (the EOS / stop / last repeated token included).
        finish_reasons: per sequence one of "eos", "length", "stop", "repetition".
    """

    sequences: torch.Tensor
    tokens: torch.Tensor
    logprobs: torch.Tensor
    mask: torch.Tensor
    finish_reasons: list[str]

    @property
    def lengths(self) -> torch.Tensor:
        """(B,) number of generated tokens per sequence."""
        return self.mask.sum(1)


def left_pad(seqs: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-pad token lists into ``(ids (N, P), mask (N, P))``."""
    width = max((len(s) for s in seqs), default=0)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        if len(s):
            ids[i, width - len(s):] = torch.tensor(list(s), dtype=torch.long)
            mask[i, width - len(s):] = 1
    return ids, mask


def default_pad_id(config: Any, eos_token_id: int | None = None) -> int:
    """The pad id :func:`generate` uses: the config's ``pad_token_id``, else the EOS id (``eos_token_id`` or the
    config's) when it is a non-negative id, else 0."""
    if config.pad_token_id is not None:
        return int(config.pad_token_id)
    eos = config.eos_token_id if eos_token_id is None else eos_token_id
    return int(eos) if eos is not None and eos >= 0 else 0


def encode_prompts(tokenizer: Any, prompts: Sequence[str], config: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Tokenize text prompts for ``config``'s model and left-pad them with :func:`default_pad_id`:
    ``(input_ids (B, P), attention_mask (B, P))``, ready for :func:`generate`.

    Errors: a prompt that encodes to no token; token ids ≥ the model's ``vocab_size`` (the wrong tokenizer).
    """
    ids = [tokenizer.encode(t) for t in prompts]
    empty = [i + 1 for i, x in enumerate(ids) if not x]
    if empty:
        raise LumosError(f"Every prompt must encode to at least one token; prompt {empty[0]} is empty. "
                         "Pass non-empty prompt text.")
    if max(max(x) for x in ids) >= config.vocab_size:
        raise LumosError(f"The tokenizer produced ids ≥ the model's vocab_size ({config.vocab_size}); put the "
                         "model's tokenizer.json into the checkpoint directory.")
    return left_pad(ids, default_pad_id(config))


def filter_logits(logits: torch.Tensor, top_k: int | None, top_p: float | None) -> torch.Tensor:
    """Set logits outside the top-k, then outside the top-p nucleus, to −inf. logits (B, V) float32.

    The nucleus is the smallest set of most likely tokens whose probability sums to ≥ top_p (at least one token).
    """
    if top_k is not None and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        probs = torch.softmax(sorted_logits, dim=-1)
        before = torch.cumsum(probs, dim=-1) - probs  # mass strictly above each token
        drop_sorted = before >= top_p
        drop_sorted[:, 0] = False
        drop = torch.zeros_like(drop_sorted).scatter(1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def _check_args(model: HybridLM, input_ids: torch.Tensor, attention_mask: torch.Tensor | None,
                max_new_tokens: int, temperature: float, top_k: int | None, top_p: float | None,
                repetition_truncation: int | None, repetition_threshold: float,
                stop_strings: Sequence[str] | None, tokenizer: Any, do_sample: bool = True,
                callback: Any = None) -> torch.Tensor:
    check_tensor(input_ids, "input_ids", ndim=2, dtypes=(torch.int64, torch.int32), owner=_OWNER)
    b, p = input_ids.shape
    if b < 1 or p < 1:
        raise bad_param("input_ids", "a non-empty (B, P) tensor", f"shape {tuple(input_ids.shape)}", owner=_OWNER)
    if attention_mask is None:
        mask = torch.ones(b, p, dtype=torch.bool, device=input_ids.device)
    else:
        check_tensor(attention_mask, "attention_mask", shape=(b, p), owner=_OWNER)
        mask = attention_mask.to(torch.bool)
    if bool((mask[:, 1:].long() < mask[:, :-1].long()).any()) or not bool(mask[:, -1].all()):
        raise bad_param("attention_mask", "LEFT padding (zeros, then ones; the last column all ones)",
                        "a mask with padding on the right or in the middle", owner=_OWNER,
                        fix="Pad prompts on the left.")
    check_positive_int(max_new_tokens, "max_new_tokens", owner=_OWNER)
    check_float(temperature, "temperature", 0.0, owner=_OWNER, low_inclusive=False,
                fix="Greedy decoding is do_sample=False (any temperature > 0; it then only scales the reported "
                "logprobs, 1.0 gives the model's own)." if do_sample else
                "With do_sample=False decoding is already greedy; temperature only scales the reported logprobs: "
                "leave it at 1.0.")
    if top_k is not None:
        check_positive_int(top_k, "top_k", owner=_OWNER)
    if top_p is not None:
        check_probability(top_p, "top_p", owner=_OWNER, open_low=True)
    if repetition_truncation is not None:
        check_positive_int(repetition_truncation, "repetition_truncation", owner=_OWNER)
    check_probability(repetition_threshold, "repetition_threshold", owner=_OWNER, open_high=True)
    if stop_strings and tokenizer is None:
        raise bad_param("tokenizer", "a tokenizer with decode() when stop_strings are given", None, owner=_OWNER)
    if callback is not None and not callable(callback):
        raise bad_param("callback", "None or a function fn(step, tokens)", callback, owner=_OWNER, type_error=True,
                        fix="Pass a function, e.g. callback=lambda step, tokens: print(step, tokens).")
    if not isinstance(do_sample, bool):
        raise bad_param("do_sample", "True or False", do_sample, owner=_OWNER, type_error=True)
    return mask


def _stop_list(stop_strings: str | Sequence[str] | None) -> list[str] | None:
    """A lone string is ONE stop string (not its characters); else a sequence of strings."""
    if stop_strings is None:
        return None
    if isinstance(stop_strings, str):
        return [stop_strings]
    if isinstance(stop_strings, (bytes, bytearray)) or not isinstance(stop_strings, Sequence) \
            or not all(isinstance(s, str) for s in stop_strings):
        raise bad_param("stop_strings", "None, a string or a sequence of strings", stop_strings, owner=_OWNER,
                        type_error=True)
    return list(stop_strings)


class _StopChecker:
    """Detects stop strings in the tail of each sequence's decoded text."""

    def __init__(self, stop_strings: Sequence[str], tokenizer: Any) -> None:
        self.stops = [s for s in stop_strings if s]
        self.tokenizer = tokenizer
        self.window = 4 * max((len(s) for s in self.stops), default=1) + 8

    def hit(self, tokens: list[int]) -> bool:
        text = self.tokenizer.decode(tokens[-self.window:])
        return any(s in text for s in self.stops)


@torch.no_grad()
def generate(model: HybridLM, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, *,
             max_new_tokens: int = 64, do_sample: bool = False, temperature: float = 1.0, top_k: int | None = None,
             top_p: float | None = None, eos_token_id: int | None = None, pad_token_id: int | None = None,
             stop_strings: str | Sequence[str] | None = None, tokenizer: Any = None,
             generator: torch.Generator | None = None, seed: int | None = None,
             repetition_truncation: int | None = 3000, repetition_threshold: float = 0.99,
             callback: Callable[[int, torch.Tensor], None] | None = None, compile: bool = False
             ) -> GenerationOutput:
    """Generate up to ``max_new_tokens`` per prompt (see the module docstring for the semantics).

    Args:
        model: a :class:`HybridLM`.
        input_ids: (B, P) long prompts, LEFT-padded.
        attention_mask: (B, P) 1 = real, 0 = padding; None = no padding.
        stop_strings: stop when the decoded continuation contains one of them; a lone string is one stop string.
        eos_token_id: default the config's; a negative id (or None in both) disables the EOS stop.
        pad_token_id: fills ``sequences``/``tokens`` after a sequence finished (default config's, else EOS, else 0).
        callback: ``fn(step, tokens (B,))`` after each step (tokens of finished sequences are the pad id).
        compile: decode through the ``torch.compile``-d one-token step of :mod:`lumos.models.fast_decode`
            (about 2–3× faster per token at small batch on CPU; the first call compiles, ~15–30 s, later calls
            reuse it). Used while B·top_k ≤ num_experts; otherwise, or where compiling fails, the eager path.

    Returns:
        :class:`GenerationOutput`.
    """
    stop_strings = _stop_list(stop_strings)
    mask = _check_args(model, input_ids, attention_mask, max_new_tokens, temperature, top_k, top_p,
                       repetition_truncation, repetition_threshold, stop_strings, tokenizer, do_sample, callback)
    cfg = model.config
    eos = cfg.eos_token_id if eos_token_id is None else eos_token_id
    pad = pad_token_id if pad_token_id is not None else default_pad_id(cfg, eos)
    dev = input_ids.device
    if generator is None and seed is not None:
        generator = torch.Generator(device=dev).manual_seed(int(seed))
    stopper = _StopChecker(stop_strings, tokenizer) if stop_strings else None
    b, p = input_ids.shape
    was_training = model.training
    model.eval()
    try:
        fast = compile and fast_path_applies(model, b)
        # eager KV caches grow by doubling; the compiled step needs every slot up front
        cache = model.new_cache(b, capacity=p + (max_new_tokens if fast else min(max_new_tokens, 1024)))
        logits = model(input_ids, attention_mask=mask.long(), cache=cache)[:, -1]
        decoder = FastDecoder(model, cache, backend="compiled" if fast else "model")
        out = _decode_loop(decoder.step, logits, b, max_new_tokens, do_sample, temperature, top_k, top_p, eos, pad,
                           generator, stopper, repetition_truncation, repetition_threshold, callback)
    finally:
        model.train(was_training)
    tokens, logprobs, gen_mask, reasons = out
    sequences = torch.cat((input_ids.long(), tokens), dim=1)
    return GenerationOutput(sequences=sequences, tokens=tokens, logprobs=logprobs, mask=gen_mask,
                            finish_reasons=reasons)


def _decode_loop(forward, logits, b, max_new_tokens, do_sample, temperature, top_k, top_p, eos, pad,
                 generator, stopper, rep_n, rep_p, callback):
    dev = logits.device
    finished = torch.zeros(b, dtype=torch.bool, device=dev)
    run_len = torch.zeros(b, dtype=torch.long, device=dev)
    reasons = ["length"] * b
    toks, lps, masks = [], [], []
    history: list[list[int]] = [[] for _ in range(b)]
    log_thr = float(torch.log(torch.tensor(rep_p, dtype=torch.float64))) if rep_p > 0 else float("-inf")
    for step in range(max_new_tokens):
        scaled = logits.float() / temperature
        if not bool(torch.isfinite(scaled).all()):
            raise LumosError(f"The model produced non-finite logits (NaN or inf) at generation step {step}; its "
                             "weights or inputs hold NaN/inf. Check the checkpoint (a finite model never does this).")
        logp_full = torch.log_softmax(scaled, dim=-1)
        if do_sample:
            probs = torch.softmax(filter_logits(scaled, top_k, top_p), dim=-1)
            tok = torch.multinomial(probs, 1, generator=generator).squeeze(1)
        else:
            tok = scaled.argmax(-1)
        lp = logp_full.gather(1, tok[:, None]).squeeze(1)
        active = ~finished
        tok = torch.where(active, tok, torch.full_like(tok, pad))
        toks.append(tok)
        lps.append(torch.where(active, lp, torch.zeros_like(lp)))
        masks.append(active.clone())
        newly = torch.zeros_like(finished)
        if eos is not None and eos >= 0:
            hit = active & (tok == eos)
            _mark(reasons, hit, "eos")
            newly |= hit
        if rep_n is not None:
            run_len = torch.where(lp > log_thr, run_len + 1, torch.zeros_like(run_len))
            hit = active & ~newly & (run_len >= rep_n)
            _mark(reasons, hit, "repetition")
            newly |= hit
        if stopper is not None:
            for i in torch.nonzero(active & ~newly).flatten().tolist():
                history[i].append(int(tok[i]))
                if stopper.hit(history[i]):
                    reasons[i] = "stop"
                    newly[i] = True
        finished |= newly
        if callback is not None:
            callback(step, tok.clone())
        if bool(finished.all()) or step == max_new_tokens - 1:
            break
        # every row feeds a token; rows already finished are never read again, so they need no masking
        logits = forward(tok)
    return torch.stack(toks, 1), torch.stack(lps, 1), torch.stack(masks, 1), reasons


def _mark(reasons: list[str], hit: torch.Tensor, why: str) -> None:
    for i in torch.nonzero(hit).flatten().tolist():
        reasons[i] = why
