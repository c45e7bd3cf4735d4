"""Policy-gradient objectives: CISPO (MiniMax-M1), GRPO (PPO-clip), DAPO, GSPO and Dr. GRPO, as pure functions.

Every loss takes per-token tensors of one (mini)batch of ``B`` responses padded to length ``T``:

- ``logp``       (B, T) log π_θ(o_t | q, o_<t) under the policy being trained (carries the gradient),
- ``old_logp``   (B, T) log π_old of the same tokens, recorded at rollout time (no gradient),
- ``advantages`` (B,) per-sequence or (B, T) per-token advantages Â,
- ``mask``       (B, T) 1 at real response tokens, 0 at padding,

and returns ``(loss, stats)``: a scalar to *minimise* (the negative objective) and a dict of detached
0-dim tensors (documented per function). ``normalizer`` overrides the denominator so that a batch split over
minibatches or processes sums to the loss of the whole batch (the trainer passes global token / sequence
counts); by default it is the local token count (token-level losses), the sequence count (GRPO, GSPO) or
sequences × T (Dr. GRPO's constant; the trainer passes sequences × ``max_new_tokens``, as TRL passes
``max_completion_length``).

Clip-parameter conventions (the source of most confusion, see reference §4). Lumos always uses the
paper's *relative* form r̂ = clip(r, 1 − eps_low, 1 + eps_high); ``eps_low=None`` means no floor.

============================  ======================================  ===========================================
lumos                         TRL ``GRPOConfig``                      verl ``actor``
============================  ======================================  ===========================================
cispo ``eps_high``            ``epsilon_high`` = 1 + eps_high         ``clip_ratio_high`` = eps_high
                              (TRL's cispo is an absolute cap
                              min(r, epsilon_high); recommended 5.0)
cispo ``eps_low``             (no floor in TRL)                       ``clip_ratio_low`` = eps_low (≥ 1: no floor)
grpo/dapo ``eps_low``         ``epsilon``                             ``clip_ratio_low``
grpo/dapo ``eps_high``        ``epsilon_high``                        ``clip_ratio_high``
grpo normalisation            ``loss_type="grpo"`` (sequence mean)    ``loss_agg_mode="seq-mean-token-mean"``
dapo / cispo normalisation    ``loss_type="dapo"/"cispo"`` (tokens)   ``loss_agg_mode="token-mean"``
gspo ``eps_low/eps_high``     ``epsilon``/``epsilon_high`` with        ``clip_ratio_low/high``, ``loss_mode="gspo"``
                              ``importance_sampling_level=
                              "sequence"``, ``loss_type="grpo"``
dr_grpo normalisation         ``loss_type="dr_grpo"``                  ``loss_agg_mode="seq-mean-token-sum-norm"``
                              (Σ tokens / (B · max_completion_len))
dr_grpo advantages            ``scale_rewards="none"``                 ``norm_adv_by_std_in_grpo=False``
============================  ======================================  ===========================================
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from lumos.core.errors import bad_param, check
from lumos.core.registry import Registry
from lumos.core.validation import check_float

__all__ = [
    "cispo_loss",
    "grpo_loss",
    "dapo_loss",
    "gspo_loss",
    "dr_grpo_loss",
    "gspo_loss_reference",
    "register_loss",
    "LOSSES",
    "get_loss",
    "get_objective",
    "available_losses",
    "Objective",
    "LossFn",
]

LossFn = Callable[..., tuple[torch.Tensor, dict[str, torch.Tensor]]]

#: arguments every loss takes that are not hyper-parameters of the objective
_DATA_ARGS = ("logp", "old_logp", "advantages", "mask", "normalizer", "ref_logp")
NORMALIZERS = ("tokens", "sequences", "max_tokens")
ADVANTAGE_SCALES = ("group", "batch", "none")


@dataclass(frozen=True)
class Objective:
    """One registered objective: everything the config, the trainer and the CLI know about it.

    Attributes:
        name: the ``--algo`` name.
        fn: the loss (see the module docstring for its contract).
        help: one line for the CLI.
        normalizer: "tokens" (the loss sums over tokens and divides by the global token count), "sequences"
            (per-sequence means divided by the global sequence count, GRPO) or "max_tokens" (sums over tokens
            divided by the global sequence count × the generation limit, a constant: Dr. GRPO).
        dynamic_sampling: whether dynamic sampling (drop groups with equal rewards) is on by default (DAPO).
        defaults: hyper-parameter name → default, read from ``fn``'s keyword-only parameters.
        advantage_scale: the default advantage normalisation (:func:`lumos.rl.advantages.group_advantages`
            ``scale``): "group" (GRPO's std division) for all but Dr. GRPO ("none").
    """

    name: str
    fn: LossFn
    help: str
    normalizer: str
    dynamic_sampling: bool
    defaults: dict[str, Any]
    advantage_scale: str = "group"

    @property
    def params(self) -> tuple[str, ...]:
        """The objective's hyper-parameter names."""
        return tuple(self.defaults)


#: the objectives: name → loss function, with help, normalizer, dynamic_sampling and defaults as metadata
LOSSES: Registry[LossFn] = Registry("objective", param="algo", expects=callable)


def register_loss(name: str, *, help: str, normalizer: str = "tokens", dynamic_sampling: bool = False,
                  advantage_scale: str = "group", replace: bool = False) -> Callable[[LossFn], LossFn]:
    """Register an objective under ``name`` (for ``--algo NAME``); its hyper-parameters and their defaults are the
    keyword-only parameters of the function (apart from ``normalizer`` and ``ref_logp``). ``advantage_scale`` is
    its default advantage normalisation (``RLConfig.advantage_scale`` unset).

    A name already registered (a built-in included) is an error unless ``replace=True``."""
    if not isinstance(help, str):
        raise bad_param("help", "a string", help, owner="register_loss", type_error=True)
    if normalizer not in NORMALIZERS:
        raise bad_param("normalizer", f"one of {NORMALIZERS}", normalizer, owner="register_loss")
    if advantage_scale not in ADVANTAGE_SCALES:
        raise bad_param("advantage_scale", f"one of {ADVANTAGE_SCALES}", advantage_scale, owner="register_loss")
    if not isinstance(dynamic_sampling, bool):
        raise bad_param("dynamic_sampling", "True or False", dynamic_sampling, owner="register_loss", type_error=True)
    add = LOSSES.register(name, replace=replace, help=help, normalizer=normalizer, dynamic_sampling=dynamic_sampling,
                          advantage_scale=advantage_scale)

    def wrap(fn: LossFn) -> LossFn:
        if not callable(fn):  # checked before the signature is read (the registry checks again)
            raise bad_param("objective", "a callable", type(fn).__name__, owner=f"register_loss({name!r})",
                            type_error=True)
        return add(fn)

    return wrap


def available_losses() -> list[str]:
    """The registered objective names, sorted."""
    return sorted(LOSSES.names())


def get_objective(name: str) -> Objective:
    """The :class:`Objective` registered as ``name``; an unknown name lists the known ones and close matches."""
    entry = LOSSES.entry(name)
    sig = inspect.signature(entry.obj).parameters.values()
    defaults = {p.name: p.default for p in sig if p.kind is p.KEYWORD_ONLY and p.name not in _DATA_ARGS}
    return Objective(entry.name, entry.obj, entry.meta["help"], entry.meta["normalizer"],
                     entry.meta["dynamic_sampling"], defaults, entry.meta.get("advantage_scale", "group"))


def get_loss(name: str) -> LossFn:
    """The loss function registered as ``name``."""
    return LOSSES.get(name)


# --------------------------------------------------------------------------------------------------------------
# shared helpers


def _prepare(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor,
             owner: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate shapes; return (advantages broadcast to (B, T), mask as logp's dtype)."""
    check(isinstance(logp, torch.Tensor) and logp.ndim == 2,
          f"The 'logp' parameter of {owner} must be a (B, T) tensor. Got shape "
          f"{tuple(logp.shape) if isinstance(logp, torch.Tensor) else type(logp).__name__} instead.")
    for name, t in (("old_logp", old_logp), ("mask", mask)):
        if tuple(t.shape) != tuple(logp.shape):
            raise bad_param(name, f"a tensor of logp's shape {tuple(logp.shape)}", f"shape {tuple(t.shape)}", owner=owner)
    if advantages.ndim == 1:
        if advantages.shape[0] != logp.shape[0]:
            raise bad_param("advantages", f"shape ({logp.shape[0]},) or {tuple(logp.shape)}",
                            f"shape {tuple(advantages.shape)}", owner=owner)
        advantages = advantages[:, None]
    elif tuple(advantages.shape) != tuple(logp.shape):
        raise bad_param("advantages", f"shape ({logp.shape[0]},) or {tuple(logp.shape)}",
                        f"shape {tuple(advantages.shape)}", owner=owner)
    return advantages.to(logp.dtype).expand_as(logp), mask.to(logp.dtype)


def _masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (x * mask).sum() / mask.sum().clamp_min(1.0)


def _masked_extreme(x: torch.Tensor, mask: torch.Tensor, fn: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    sel = x[mask.bool()]
    return fn(sel) if sel.numel() else torch.zeros((), dtype=x.dtype, device=x.device)


def _ratio_stats(ratio: torch.Tensor, weight: torch.Tensor, mask: torch.Tensor, logp: torch.Tensor,
                 old_logp: torch.Tensor) -> dict[str, torch.Tensor]:
    """IS-ratio statistics over real tokens (all detached)."""
    r, w = ratio.detach(), weight.detach()
    log_r = (logp - old_logp).detach()
    return {
        "ratio_mean": _masked_mean(r, mask),
        "ratio_max": _masked_extreme(r, mask, torch.max),
        "ratio_min": _masked_extreme(r, mask, torch.min),
        "is_weight_mean": _masked_mean(w, mask),
        "is_weight_max": _masked_extreme(w, mask, torch.max),
        # k3 estimator of KL(π_old ‖ π_θ) on the sampled tokens: E[r − 1 − log r]
        "approx_kl": _masked_mean(r - 1.0 - log_r, mask),
        "num_tokens": mask.sum().detach(),
    }


def _normalise(per_token: torch.Tensor, mask: torch.Tensor, normalizer: float | torch.Tensor | None) -> torch.Tensor:
    """Token-level normalisation: Σ_i Σ_t ℓ_{i,t} / (Σ_i |o_i|), or / ``normalizer``."""
    denom = mask.sum().clamp_min(1.0) if normalizer is None else normalizer
    return (per_token * mask).sum() / denom


# --------------------------------------------------------------------------------------------------------------
# CISPO


@register_loss("cispo", help="clipped IS-weight policy gradient (MiniMax-M1): no token loses its gradient")
def cispo_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    eps_low: float | None = None,
    eps_high: float = 4.0,
    unified_mask: bool = False,
    mask_eps_low: float = 0.2,
    mask_eps_high: float = 0.28,
    normalizer: float | torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """CISPO (MiniMax-M1 tech report, Eq. 4–5): clipped importance-sampling weights, never a zero gradient.

    J = (1/Σ_i|o_i|) Σ_i Σ_t sg(r̂_{i,t}) · Â_{i,t} · log π_θ(o_{i,t}),  r̂ = clip(r, 1 − eps_low, 1 + eps_high),
    r = π_θ/π_old. The weight is detached, so each token's gradient is sg(r̂)·Â·∇log π_θ; a token with
    r > 1 + eps_high keeps weight 1 + eps_high (PPO would drop it). Returns ``−J``.

    Args:
        logp: (B, T) log-probabilities under the policy (see module docstring).
        old_logp: (B, T) log-probabilities under the rollout policy.
        mask: (B, T) response-token mask.
        advantages: (B,) or (B, T).
        eps_low: floor 1 − eps_low of the IS weight; ``None`` (default, the paper's "large ε_low") = no floor.
        eps_high: cap 1 + eps_high. The paper does not publish its value; the default 4.0 equals TRL's
            recommended absolute cap ``epsilon_high=5.0``.
        unified_mask: multiply by the PPO trust-region mask M of the paper's unified form (Eq. 6–7):
            M = 0 where (Â > 0 and r > 1 + mask_eps_high) or (Â < 0 and r < 1 − mask_eps_low), else 1.
        normalizer: denominator replacing the batch's token count Σ_i|o_i|.

    Returns:
        loss: scalar. stats (detached): ``loss``; ``clip_frac`` (share of real tokens whose weight was
        clipped), ``clip_frac_high``, ``clip_frac_low``; ``masked_frac`` (share removed by the unified mask,
        0 without it); ``ratio_mean/max/min``; ``is_weight_mean/max`` (r̂); ``approx_kl``; ``num_tokens``.

    Example:
        >>> import torch
        >>> logp = torch.log(torch.tensor([[0.5, 0.25]])).requires_grad_()
        >>> loss, st = cispo_loss(logp, logp.detach(), torch.tensor([1.0]), torch.ones(1, 2))
        >>> round(float(loss), 4)   # −(log .5 + log .25)/2
        1.0397
    """
    owner = "cispo_loss"
    check_float(eps_high, "eps_high", 0.0, owner=owner)
    check_float(eps_low, "eps_low", 0.0, owner=owner, allow_none=True)
    adv, m = _prepare(logp, old_logp, advantages, mask, owner)
    with torch.no_grad():
        ratio = torch.exp(logp.detach() - old_logp)
        low = 0.0 if eps_low is None else max(1.0 - eps_low, 0.0)
        weight = ratio.clamp(min=low, max=1.0 + eps_high)
        keep = torch.ones_like(ratio)
        if unified_mask:
            drop = ((adv > 0) & (ratio > 1.0 + mask_eps_high)) | ((adv < 0) & (ratio < 1.0 - mask_eps_low))
            keep = (~drop).to(logp.dtype)
    per_token = -(weight * keep) * adv * logp
    loss = _normalise(per_token, m, normalizer)
    stats = _ratio_stats(ratio, weight, m, logp, old_logp)
    high = (ratio > 1.0 + eps_high).to(logp.dtype)
    lowc = (ratio < low).to(logp.dtype)
    stats.update(
        loss=loss.detach(),
        clip_frac=_masked_mean(high + lowc, m),
        clip_frac_high=_masked_mean(high, m),
        clip_frac_low=_masked_mean(lowc, m),
        masked_frac=_masked_mean(1.0 - keep, m),
    )
    return loss, stats


# --------------------------------------------------------------------------------------------------------------
# PPO-clip family


def _ppo_clip_terms(logp: torch.Tensor, old_logp: torch.Tensor, adv: torch.Tensor, eps_low: float,
                    eps_high: float) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """−min(r·Â, clip(r, 1−eps_low, 1+eps_high)·Â) per token, the ratio, and clip indicators."""
    ratio = torch.exp(logp - old_logp)
    clipped = ratio.clamp(1.0 - eps_low, 1.0 + eps_high)
    per_token = -torch.min(ratio * adv, clipped * adv)
    with torch.no_grad():
        # tokens where the clipped branch is the active one (zero gradient), as TRL counts them
        low = ((ratio < 1.0 - eps_low) & (adv < 0)).to(logp.dtype)
        high = ((ratio > 1.0 + eps_high) & (adv > 0)).to(logp.dtype)
    return per_token, ratio, {"low": low, "high": high, "clipped": clipped.detach()}


@register_loss("grpo", help="PPO-clip, per-sequence token mean, optional KL (DeepSeekMath)",
               normalizer="sequences")
def grpo_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    eps_low: float = 0.2,
    eps_high: float | None = None,
    beta: float = 0.0,
    ref_logp: torch.Tensor | None = None,
    normalizer: float | torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """GRPO (DeepSeekMath): PPO-clip surrogate, mean over each sequence's tokens, then over sequences.

    J = (1/G) Σ_i (1/|o_i|) Σ_t [ min(r Â, clip(r, 1−eps_low, 1+eps_high) Â) − β·KL_t ],
    KL_t = exp(ref − logp) − (ref − logp) − 1 (the k3 estimator, as TRL and DeepSeekMath). Returns ``−J``.

    Args:
        eps_low: lower clip, r ≥ 1 − eps_low.
        eps_high: upper clip, r ≤ 1 + eps_high; ``None`` means symmetric (= eps_low).
        beta: KL coefficient (0 = no reference model, the default); needs ``ref_logp`` (B, T) when > 0.
        normalizer: number of sequences to divide by instead of B (for minibatch / multi-process splits).

    Returns:
        loss, stats (detached): ``loss``, ``clip_frac`` (= low + high), ``clip_frac_low`` (r < 1−ε and Â < 0),
        ``clip_frac_high`` (r > 1+ε and Â > 0), ``kl`` (0 without reference), ratio / IS-weight statistics
        (the IS weight is the clipped ratio), ``approx_kl``, ``num_tokens``.
    """
    owner = "grpo_loss"
    eps_high = eps_low if eps_high is None else eps_high
    check_float(eps_low, "eps_low", 0.0, owner=owner)
    check_float(eps_high, "eps_high", 0.0, owner=owner)
    adv, m = _prepare(logp, old_logp, advantages, mask, owner)
    per_token, ratio, info = _ppo_clip_terms(logp, old_logp, adv, eps_low, eps_high)
    kl = torch.zeros((), dtype=logp.dtype, device=logp.device)
    if beta != 0.0:
        if ref_logp is None or tuple(ref_logp.shape) != tuple(logp.shape):
            raise bad_param("ref_logp", f"a {tuple(logp.shape)} tensor when beta != 0", ref_logp if ref_logp is None
                            else f"shape {tuple(ref_logp.shape)}", owner=owner, fix="Pass the reference log-probs or beta=0.")
        d = ref_logp - logp
        per_token_kl = torch.exp(d) - d - 1.0
        per_token = per_token + beta * per_token_kl
        kl = _masked_mean(per_token_kl.detach(), m)
    seq_mean = (per_token * m).sum(-1) / m.sum(-1).clamp_min(1.0)
    denom = seq_mean.shape[0] if normalizer is None else normalizer
    loss = seq_mean.sum() / denom
    stats = _ratio_stats(ratio, info["clipped"], m, logp, old_logp)
    stats.update(loss=loss.detach(), clip_frac=_masked_mean(info["low"] + info["high"], m),
                 clip_frac_low=_masked_mean(info["low"], m), clip_frac_high=_masked_mean(info["high"], m), kl=kl)
    return loss, stats


@register_loss("dapo", help="PPO-clip with clip-higher, token-level mean, dynamic sampling (DAPO)",
               dynamic_sampling=True)
def dapo_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    eps_low: float = 0.2,
    eps_high: float = 0.28,
    normalizer: float | torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """DAPO (arXiv 2503.14476): PPO-clip with clip-higher (0.2 / 0.28) and token-level normalisation.

    J = (1/Σ_i|o_i|) Σ_i Σ_t min(r Â, clip(r, 1−eps_low, 1+eps_high) Â); no KL term. Returns ``−J``.
    Dynamic sampling and overlong shaping act on rewards/groups, not on the loss: see
    :func:`lumos.rl.advantages.dynamic_sampling_mask` and :func:`lumos.rl.advantages.overlong_penalty`.

    Returns:
        loss, stats (detached) as :func:`grpo_loss` (without ``kl``).
    """
    owner = "dapo_loss"
    check_float(eps_low, "eps_low", 0.0, owner=owner)
    check_float(eps_high, "eps_high", 0.0, owner=owner)
    adv, m = _prepare(logp, old_logp, advantages, mask, owner)
    per_token, ratio, info = _ppo_clip_terms(logp, old_logp, adv, eps_low, eps_high)
    loss = _normalise(per_token, m, normalizer)
    stats = _ratio_stats(ratio, info["clipped"], m, logp, old_logp)
    stats.update(loss=loss.detach(), clip_frac=_masked_mean(info["low"] + info["high"], m),
                 clip_frac_low=_masked_mean(info["low"], m), clip_frac_high=_masked_mean(info["high"], m))
    return loss, stats


# --------------------------------------------------------------------------------------------------------------
# GSPO


@register_loss("gspo", help="sequence-level importance ratio and clip (GSPO, Qwen): length-normalised ratio",
               normalizer="sequences")
def gspo_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    eps_low: float = 3e-4,
    eps_high: float = 4e-4,
    normalizer: float | torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """GSPO (Zheng et al. 2025, arXiv 2507.18071): importance ratio and clipping per *sequence*.

    s_i = (π_θ(o_i) / π_old(o_i))^{1/|o_i|} = exp((1/|o_i|) Σ_t (log π_θ − log π_old)), the length-normalised
    sequence ratio; J = (1/G) Σ_i min(s_i Â_i, clip(s_i, 1 − eps_low, 1 + eps_high) Â_i); no KL term. Its gradient
    is s_i Â_i · (1/|o_i|) Σ_t ∇ log π_θ(o_{i,t}) where unclipped, 0 where the clipped branch is active. The
    defaults 3e-4 / 4e-4 are the paper's (§5.1); they are tiny because s_i is a geometric mean over tokens.

    Per-token advantages (B, T) use the paper's GSPO-token form, s_{i,t} = sg[s_i] · π_θ(o_{i,t}) /
    sg[π_θ(o_{i,t})]: numerically s_i at every token, and with Â constant over a sequence it has exactly GSPO's
    value and gradient. Returns ``−J``.

    Args:
        logp: (B, T) log-probabilities under the policy.
        old_logp: (B, T) log-probabilities under the rollout policy.
        mask: (B, T) response-token mask.
        advantages: (B,) or (B, T).
        eps_low: lower end of the sequence-level clip range (relative, as every lumos objective).
        eps_high: upper end of the sequence-level clip range.
        normalizer: number of sequences to divide by instead of B (minibatch / multi-process splits).

    Returns:
        loss, stats (detached): ``loss``; ``clip_frac`` (share of real tokens in sequences whose clipped branch
        is active: s_i < 1 − eps_low with Â < 0, or s_i > 1 + eps_high with Â > 0), ``clip_frac_low``,
        ``clip_frac_high``, ``seq_clip_frac`` (share of sequences); ``seq_ratio_mean/max/min`` (s_i);
        token ratio statistics ``ratio_mean/max/min``, ``is_weight_mean/max`` (the clipped s_i, per token),
        ``approx_kl`` (per token, as the other objectives), ``num_tokens``.

    Example:
        >>> import torch
        >>> lp = torch.zeros(1, 2, requires_grad=True)
        >>> old = torch.log(torch.tensor([[0.5, 2.0]]))       # token ratios 2 and 0.5: s = exp(mean log r) = 1
        >>> loss, st = gspo_loss(lp, old, torch.tensor([1.0]), torch.ones(1, 2))
        >>> float(loss), float(st["seq_ratio_mean"])
        (-1.0, 1.0)
    """
    owner = "gspo_loss"
    check_float(eps_low, "eps_low", 0.0, owner=owner)
    check_float(eps_high, "eps_high", 0.0, owner=owner)
    adv, m = _prepare(logp, old_logp, advantages, mask, owner)
    lengths = m.sum(-1).clamp_min(1.0)
    log_s = ((logp - old_logp) * m).sum(-1) / lengths                     # (B,) log s_i
    # GSPO-token: log s_{i,t} = sg[log s_i] + log π_θ(o_t) − sg[log π_θ(o_t)]; value s_i, gradient s_i ∇log π_t
    log_st = log_s.detach()[:, None] + logp - logp.detach()
    ratio = torch.exp(log_st)
    clipped = ratio.clamp(1.0 - eps_low, 1.0 + eps_high)
    per_token = -torch.min(ratio * adv, clipped * adv)
    seq_mean = (per_token * m).sum(-1) / lengths
    denom = seq_mean.shape[0] if normalizer is None else normalizer
    loss = seq_mean.sum() / denom
    with torch.no_grad():
        s = log_s.detach().exp()
        low = ((ratio < 1.0 - eps_low) & (adv < 0)).to(logp.dtype)
        high = ((ratio > 1.0 + eps_high) & (adv > 0)).to(logp.dtype)
        real = m.sum(-1) > 0
        seq_clipped = ((low + high) * m).sum(-1) > 0
    stats = _ratio_stats(torch.exp(logp.detach() - old_logp), clipped.detach(), m, logp, old_logp)
    n_seq = real.sum().clamp_min(1).to(logp.dtype)
    stats.update(loss=loss.detach(), clip_frac=_masked_mean(low + high, m), clip_frac_low=_masked_mean(low, m),
                 clip_frac_high=_masked_mean(high, m),
                 seq_clip_frac=(seq_clipped & real).sum().to(logp.dtype) / n_seq,
                 seq_ratio_mean=(s * real).sum() / n_seq,
                 seq_ratio_max=s[real].max() if bool(real.any()) else torch.zeros((), dtype=logp.dtype),
                 seq_ratio_min=s[real].min() if bool(real.any()) else torch.zeros((), dtype=logp.dtype))
    return loss, stats


def gspo_loss_reference(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    eps_low: float = 3e-4,
    eps_high: float = 4e-4,
    normalizer: float | torch.Tensor | None = None,
) -> torch.Tensor:
    """The slow twin of :func:`gspo_loss` for per-sequence advantages (B,): the paper's Eq. (5)–(7) read
    literally, one Python loop over sequences. For sequence i with real tokens t ∈ o_i:
    s_i = exp(Σ_t (logp − old_logp) / |o_i|) (gradient through every token), J_i = min(s_i Â_i, clip(s_i) Â_i);
    returns −Σ_i J_i / (``normalizer`` or B). Sequences without real tokens contribute 0."""
    terms = []
    for i in range(logp.shape[0]):
        real = mask[i].bool()
        if not bool(real.any()):
            terms.append(torch.zeros((), dtype=logp.dtype))
            continue
        s = torch.exp((logp[i][real] - old_logp[i][real]).mean())
        a = advantages[i].to(logp.dtype)
        terms.append(torch.minimum(s * a, s.clamp(1.0 - eps_low, 1.0 + eps_high) * a))
    denom = logp.shape[0] if normalizer is None else normalizer
    return -torch.stack(terms).sum() / denom


# --------------------------------------------------------------------------------------------------------------
# Dr. GRPO


@register_loss("dr_grpo", help="PPO-clip without length or std normalisation (Dr. GRPO): Σ tokens / constant",
               normalizer="max_tokens", advantage_scale="none")
def dr_grpo_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    eps_low: float = 0.2,
    eps_high: float | None = None,
    normalizer: float | torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Dr. GRPO (Liu et al. 2025, "Understanding R1-Zero-like training", arXiv 2503.20783): GRPO without its two
    biases — no 1/|o_i| per sequence (the loss sums tokens and divides by a *constant*), and advantages only
    centred, not divided by the group's std (registered with ``advantage_scale="none"``; see
    :func:`lumos.rl.advantages.group_advantages`).

    J = (1 / (B · L)) Σ_i Σ_t min(r Â, clip(r, 1−eps_low, 1+eps_high) Â), L a constant: the generation limit
    (the trainer passes B_global · ``max_new_tokens`` as ``normalizer``, as TRL's ``max_completion_length``);
    by default B · T of the padded batch. Returns ``−J``.

    Args:
        eps_low: lower clip, the PPO value of the paper.
        eps_high: upper clip (``None``: symmetric, = eps_low).
        normalizer: the constant denominator (global sequences × generation limit).

    Returns:
        loss, stats (detached) as :func:`dapo_loss`.
    """
    owner = "dr_grpo_loss"
    eps_high = eps_low if eps_high is None else eps_high
    check_float(eps_low, "eps_low", 0.0, owner=owner)
    check_float(eps_high, "eps_high", 0.0, owner=owner)
    adv, m = _prepare(logp, old_logp, advantages, mask, owner)
    per_token, ratio, info = _ppo_clip_terms(logp, old_logp, adv, eps_low, eps_high)
    denom = float(logp.shape[0] * logp.shape[1]) if normalizer is None else normalizer
    loss = (per_token * m).sum() / denom
    stats = _ratio_stats(ratio, info["clipped"], m, logp, old_logp)
    stats.update(loss=loss.detach(), clip_frac=_masked_mean(info["low"] + info["high"], m),
                 clip_frac_low=_masked_mean(info["low"], m), clip_frac_high=_masked_mean(info["high"], m))
    return loss, stats
