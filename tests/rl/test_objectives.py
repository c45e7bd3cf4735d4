"""CISPO / GRPO / DAPO / GSPO / Dr. GRPO: hand-computed cases, gradients, and TRL's GRPOTrainer._compute_loss on the same tensors."""

from __future__ import annotations

import math
from collections import defaultdict
from types import SimpleNamespace

import pytest
import torch

from lumos.core.errors import LumosError
from lumos.rl import cispo_loss, dapo_loss, dr_grpo_loss, grpo_loss, gspo_loss
from lumos.rl.objectives import available_losses, get_loss, get_objective, gspo_loss_reference, register_loss
from lumos.testing import assert_close


def _batch(B=3, T=5, seed=0, spread=0.6):
    g = torch.Generator().manual_seed(seed)
    old = -torch.rand(B, T, generator=g, dtype=torch.float64) * 2 - 0.1
    logp = old + spread * torch.randn(B, T, generator=g, dtype=torch.float64)
    adv = torch.randn(B, generator=g, dtype=torch.float64)
    mask = torch.ones(B, T, dtype=torch.float64)
    mask[0, 3:] = 0
    mask[2, 1:] = 0
    return logp.requires_grad_(), old, adv, mask


# ---- hand-computed -------------------------------------------------------------------------------------------

def test_cispo_hand_computed():
    # two sequences: seq0 has 2 tokens, seq1 has 1 real token (+1 pad). Â = [+1, −2].
    # r = [[2.0, 0.5], [1.1, pad]] ; eps_high = 0.28 → r̂ = [[1.28, 0.5], [1.1, ·]]  (no floor)
    # loss = −(1.28·1·lp00 + 0.5·1·lp01 + 1.1·(−2)·lp10) / 3
    lp = torch.log(torch.tensor([[0.4, 0.2], [0.55, 0.3]], dtype=torch.float64)).requires_grad_()
    old = lp.detach() - torch.log(torch.tensor([[2.0, 0.5], [1.1, 1.0]], dtype=torch.float64))
    adv = torch.tensor([1.0, -2.0], dtype=torch.float64)
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]], dtype=torch.float64)
    loss, st = cispo_loss(lp, old, adv, mask, eps_high=0.28)
    l00, l01, l10 = math.log(0.4), math.log(0.2), math.log(0.55)
    expected = -(1.28 * l00 + 0.5 * l01 + 1.1 * -2 * l10) / 3
    assert abs(float(loss.detach()) - expected) < 1e-12
    assert abs(float(st["clip_frac"]) - 1 / 3) < 1e-12          # only the r = 2.0 token is capped
    assert abs(float(st["is_weight_max"]) - 1.28) < 1e-12
    loss.backward()
    # ∂loss/∂lp = −r̂·Â/3 at real tokens (r̂ detached), 0 at padding
    expected_grad = torch.tensor([[-1.28 / 3, -0.5 / 3], [2.2 / 3, 0.0]], dtype=torch.float64)
    assert_close("cispo grad", lp.grad, expected_grad, atol=1e-12, rtol=0)


def test_cispo_floor_and_unified_mask():
    lp = torch.zeros(1, 3, dtype=torch.float64, requires_grad=True)
    # r = [3.0, 0.1, 1.0]; Â = −1 everywhere
    old = -torch.log(torch.tensor([[3.0, 0.1, 1.0]], dtype=torch.float64))
    adv = torch.tensor([-1.0], dtype=torch.float64)
    mask = torch.ones(1, 3, dtype=torch.float64)
    # floor 1 − 0.5 = 0.5 → r̂ = [1.2 (cap 0.2), 0.5, 1.0]; lp = 0 so the loss is 0 but the grad is −r̂·Â/3
    loss, st = cispo_loss(lp, old, adv, mask, eps_low=0.5, eps_high=0.2)
    loss.backward()
    assert_close("floored grad", lp.grad, torch.tensor([[1.2, 0.5, 1.0]], dtype=torch.float64) / 3, atol=1e-12, rtol=0)
    assert abs(float(st["clip_frac_low"]) - 1 / 3) < 1e-12
    # unified mask: Â < 0 and r < 1 − 0.2 → token 1 masked; Â < 0 and r > 1 + ε is NOT masked
    lp.grad = None
    loss, st = cispo_loss(lp, old, adv, mask, eps_high=0.2, unified_mask=True, mask_eps_low=0.2, mask_eps_high=0.28)
    loss.backward()
    assert_close("masked grad", lp.grad, torch.tensor([[1.2, 0.0, 1.0]], dtype=torch.float64) / 3, atol=1e-12, rtol=0)
    assert abs(float(st["masked_frac"]) - 1 / 3) < 1e-12


def test_grpo_hand_computed_sequence_mean():
    # seq0: r = [1.5, 1.0], Â = +1 → min(1.5, 1.2)=1.2, 1.0 → mean 1.1
    # seq1: r = [0.5], Â = −1 → min(−0.5, −0.8) = −0.8 → mean −0.8
    # J = (1.1 − 0.8)/2 = 0.15 → loss −0.15
    lp = torch.zeros(2, 2, dtype=torch.float64, requires_grad=True)
    old = -torch.log(torch.tensor([[1.5, 1.0], [0.5, 1.0]], dtype=torch.float64))
    adv = torch.tensor([1.0, -1.0], dtype=torch.float64)
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]], dtype=torch.float64)
    loss, st = grpo_loss(lp, old, adv, mask, eps_low=0.2)
    assert abs(float(loss.detach()) + 0.15) < 1e-12
    loss.backward()
    # clipped tokens get zero gradient; token (0,1): −r·Â/(2·2) = −0.25 ; (1,0) clipped (r<0.8, Â<0) → 0
    assert_close("grpo grad", lp.grad, torch.tensor([[0.0, -0.25], [0.0, 0.0]], dtype=torch.float64), atol=1e-12, rtol=0)
    assert abs(float(st["clip_frac"]) - 2 / 3) < 1e-12


def test_grpo_kl_term():
    lp = torch.zeros(1, 2, dtype=torch.float64, requires_grad=True)
    ref = torch.tensor([[math.log(0.5), 0.0]], dtype=torch.float64)
    loss, st = grpo_loss(lp, lp.detach(), torch.zeros(1, dtype=torch.float64), torch.ones(1, 2, dtype=torch.float64),
                         beta=0.1, ref_logp=ref)
    kl0 = 0.5 - math.log(0.5) - 1  # exp(d) − d − 1 with d = log 0.5
    assert abs(float(loss.detach()) - 0.1 * kl0 / 2) < 1e-12
    assert abs(float(st["kl"]) - kl0 / 2) < 1e-12
    with pytest.raises(LumosError, match="ref_logp"):
        grpo_loss(lp, lp.detach(), torch.zeros(1), torch.ones(1, 2), beta=0.1)


def test_dapo_hand_computed_token_level():
    # r = [1.5, 0.5], Â = [+1 for seq0, −1 for seq1]; clip-higher 1.28 → terms 1.28, −0.8 → J = 0.48/2
    lp = torch.zeros(2, 1, dtype=torch.float64, requires_grad=True)
    old = -torch.log(torch.tensor([[1.5], [0.5]], dtype=torch.float64))
    loss, _ = dapo_loss(lp, old, torch.tensor([1.0, -1.0], dtype=torch.float64), torch.ones(2, 1, dtype=torch.float64))
    assert abs(float(loss.detach()) + 0.24) < 1e-12


# ---- gradient identities ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("eps_high", [0.1, 0.28, 4.0])
def test_cispo_gradient_is_sg_weight_times_adv_times_grad_logp(eps_high):
    """∇θ loss == −Σ sg(r̂)·Â·∇θ log π / N for a tiny softmax policy (the gradient never flows through r̂)."""
    g = torch.Generator().manual_seed(1)
    theta = torch.randn(4, 6, 7, generator=g, dtype=torch.float64, requires_grad=True)  # (B, T, V) logits
    tokens = torch.randint(0, 7, (4, 6), generator=g)
    mask = (torch.rand(4, 6, generator=g) > 0.2).to(torch.float64)
    logp = torch.log_softmax(theta, -1).gather(-1, tokens[..., None])[..., 0]
    old = logp.detach() + 0.7 * torch.randn(4, 6, generator=g, dtype=torch.float64)
    adv = torch.randn(4, generator=g, dtype=torch.float64)
    loss, _ = cispo_loss(logp, old, adv, mask, eps_high=eps_high)
    (grad,) = torch.autograd.grad(loss, theta, retain_graph=True)
    w = torch.exp(logp.detach() - old).clamp(max=1 + eps_high)
    surrogate = -(w * adv[:, None] * logp * mask).sum() / mask.sum()
    (expected,) = torch.autograd.grad(surrogate, theta)
    assert_close("cispo grad", grad, expected, atol=1e-12, rtol=1e-10)


def test_cispo_equals_ppo_gradient_inside_trust_region():
    """Reference §6.5: with no clip active, the CISPO gradient equals the PPO surrogate gradient Σ r Â ∇logπ / N."""
    logp, old, adv, mask = _batch(spread=0.01)
    loss_c, st = cispo_loss(logp, old, adv, mask, eps_high=0.5)
    assert float(st["clip_frac"]) == 0.0
    (gc,) = torch.autograd.grad(loss_c, logp)
    loss_d, _ = dapo_loss(logp, old, adv, mask, eps_low=0.5, eps_high=0.5)
    (gd,) = torch.autograd.grad(loss_d, logp)
    assert_close("cispo vs ppo grad", gc, gd, atol=1e-12, rtol=1e-10)


def test_clipped_tokens_keep_capped_weight_not_zero():
    lp = torch.zeros(1, 1, dtype=torch.float64, requires_grad=True)
    old = torch.tensor([[-math.log(10.0)]], dtype=torch.float64)  # r = 10
    adv = torch.ones(1, dtype=torch.float64)
    loss_c, _ = cispo_loss(lp, old, adv, torch.ones(1, 1, dtype=torch.float64), eps_high=0.28)
    (g_c,) = torch.autograd.grad(loss_c, lp)
    loss_d, _ = dapo_loss(lp, old, adv, torch.ones(1, 1, dtype=torch.float64))
    (g_d,) = torch.autograd.grad(loss_d, lp)
    assert abs(float(g_c) + 1.28) < 1e-12 and float(g_d) == 0.0


def test_normalizer_makes_minibatches_sum_to_the_batch():
    logp, old, adv, mask = _batch(B=4)
    for fn, per_seq in ((cispo_loss, False), (dapo_loss, False), (grpo_loss, True)):
        full, _ = fn(logp, old, adv, mask)
        denom = 4 if per_seq else mask.sum()
        parts = [fn(logp[i:i + 2], old[i:i + 2], adv[i:i + 2], mask[i:i + 2], normalizer=denom)[0] for i in (0, 2)]
        assert_close(fn.__name__, parts[0] + parts[1], full, atol=1e-12, rtol=0)


def test_stats_detached_and_registry():
    logp, old, adv, mask = _batch()
    for name in ("cispo", "grpo", "dapo"):
        loss, st = get_loss(name)(logp, old, adv, mask)
        assert loss.requires_grad
        assert all(not v.requires_grad and v.ndim == 0 for v in st.values())
        assert {"loss", "clip_frac", "is_weight_mean", "ratio_max", "approx_kl", "num_tokens"} <= set(st)
    assert {"cispo", "grpo", "dapo"} <= set(available_losses())
    with pytest.raises(LumosError, match="'algo' parameter"):
        get_loss("ppo2")


def test_bad_inputs():
    logp, old, adv, mask = _batch()
    with pytest.raises(LumosError, match="'old_logp'"):
        cispo_loss(logp, old[:, :2], adv, mask)
    with pytest.raises(LumosError, match="'advantages'"):
        cispo_loss(logp, old, adv[:2], mask)
    with pytest.raises(LumosError, match="'eps_high'"):
        dapo_loss(logp, old, adv, mask, eps_high=-1.0)
    with pytest.raises(LumosError, match="'logp'"):
        grpo_loss(logp[0], old, adv, mask)


# ---- TRL on the same tensors -------------------------------------------------------------------------------------

def _trl_loss(loss_type, logp, old, adv, mask, eps_low, eps_high, beta=0.0, ref=None, level="token"):
    """Call TRL's GRPOTrainer._compute_loss with a minimal stand-in `self` (single process, no accumulation)."""
    trl_grpo = pytest.importorskip("trl.trainer.grpo_trainer")

    def per_token(model, *a, **k):
        return logp, torch.zeros_like(logp), None

    ident = SimpleNamespace(num_processes=1, gather=lambda x: x, gather_for_metrics=lambda x: x,
                            reduce=lambda x, reduction="sum": x, sync_gradients=True)
    fake = SimpleNamespace(
        _get_per_token_logps_and_entropies=per_token, top_entropy_quantile=1.0, off_policy_mask_threshold=None,
        importance_sampling_level=level, beta=beta, max_completion_length=logp.shape[1], loss_type=loss_type, epsilon_low=eps_low, epsilon_high=eps_high,
        args=SimpleNamespace(delta=None, use_bias_correction_kl=False, steps_per_generation=1),
        use_vllm=False, model=SimpleNamespace(training=True), current_gradient_accumulation_steps=1,
        accelerator=ident, _entropy_bonus_enabled=False, aux_loss_enabled=False,
        _metrics={"train": defaultdict(list), "eval": defaultdict(list)},
    )
    B, T = logp.shape
    inputs = {"prompt_ids": torch.zeros(B, 1, dtype=torch.long), "prompt_mask": torch.ones(B, 1, dtype=torch.long),
              "completion_ids": torch.zeros(B, T, dtype=torch.long), "completion_mask": mask,
              "advantages": adv, "old_per_token_logps": old, "num_items_in_batch": mask.sum()}
    if ref is not None:
        inputs["ref_per_token_logps"] = ref
    return trl_grpo.GRPOTrainer._compute_loss(fake, None, inputs), fake._metrics["train"]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_trl_cispo(seed):
    logp, old, adv, mask = _batch(B=5, T=7, seed=seed, spread=1.0)
    trl_loss, metrics = _trl_loss("cispo", logp, old, adv, mask, eps_low=0.2, eps_high=5.0)
    (g_trl,) = torch.autograd.grad(trl_loss, logp)
    # TRL's absolute cap 5.0 is lumos eps_high = 4.0; TRL has no floor = lumos eps_low None
    ours, st = cispo_loss(logp, old, adv, mask, eps_high=4.0)
    (g_ours,) = torch.autograd.grad(ours, logp)
    assert_close("cispo loss vs TRL", ours, trl_loss, atol=1e-12, rtol=1e-10)
    assert_close("cispo grad vs TRL", g_ours, g_trl, atol=1e-12, rtol=1e-10)
    # TRL counts a token as clipped only when Â > 0; ours counts every capped token
    r = torch.exp(logp.detach() - old)
    assert abs(metrics["cispo_clip_ratio"][0] - float(((r > 5.0) & (adv[:, None] > 0)).to(mask.dtype).mul(mask).sum() / mask.sum())) < 1e-9
    assert abs(float(st["clip_frac"]) - float(((r > 5.0).to(mask.dtype) * mask).sum() / mask.sum())) < 1e-12


@pytest.mark.parametrize("seed", [0, 3])
def test_matches_trl_dapo(seed):
    logp, old, adv, mask = _batch(B=4, T=6, seed=seed, spread=0.5)
    trl_loss, metrics = _trl_loss("dapo", logp, old, adv, mask, eps_low=0.2, eps_high=0.28)
    (g_trl,) = torch.autograd.grad(trl_loss, logp)
    ours, st = dapo_loss(logp, old, adv, mask, eps_low=0.2, eps_high=0.28)
    (g_ours,) = torch.autograd.grad(ours, logp)
    assert_close("dapo loss vs TRL", ours, trl_loss, atol=1e-12, rtol=1e-10)
    assert_close("dapo grad vs TRL", g_ours, g_trl, atol=1e-12, rtol=1e-10)
    assert abs(float(st["clip_frac"]) - metrics["clip_ratio/region_mean"][0]) < 1e-9


@pytest.mark.parametrize("beta", [0.0, 0.04])
def test_matches_trl_grpo(beta):
    logp, old, adv, mask = _batch(B=4, T=6, seed=5, spread=0.5)
    ref = old + 0.3
    trl_loss, _ = _trl_loss("grpo", logp, old, adv, mask, eps_low=0.2, eps_high=0.2, beta=beta, ref=ref)
    (g_trl,) = torch.autograd.grad(trl_loss, logp)
    ours, _ = grpo_loss(logp, old, adv, mask, eps_low=0.2, beta=beta, ref_logp=ref)
    (g_ours,) = torch.autograd.grad(ours, logp)
    assert_close("grpo loss vs TRL", ours, trl_loss, atol=1e-12, rtol=1e-10)
    assert_close("grpo grad vs TRL", g_ours, g_trl, atol=1e-12, rtol=1e-10)


def test_public_api():
    import lumos.rl as rl

    assert set(rl.__all__) == {"cispo_loss", "grpo_loss", "dapo_loss", "gspo_loss", "dr_grpo_loss", "get_loss",
                               "available_losses",
                               "group_advantages", "dynamic_sampling_mask", "overlong_penalty"}
    assert all(callable(getattr(rl, name)) for name in rl.__all__)


# ---- GSPO ------------------------------------------------------------------------------------------------------

def test_gspo_hand_computed():
    # seq0: token log-ratios [0.2, 0.0] → s0 = exp(0.1) = 1.105171; Â0 = +1, eps_high 0.05 → clip 1.05 is the min
    #       (clipped branch active: zero gradient).
    # seq1: one real token (the second is padding), log-ratio −0.02 → s1 = exp(−0.02) = 0.980199; Â1 = −2;
    #       inside [1 − 0.2, 1 + 0.05] → term s1·Â1 = −1.960397.
    # J = (1.05 − 1.960397) / 2 = −0.455199 → loss = +0.455199.
    # ∂loss/∂logp[1, 0] = −(1/2) · s1 · Â1 · (1/|o_1| = 1) = +0.980199; every other entry 0.
    lp = torch.zeros(2, 2, dtype=torch.float64, requires_grad=True)
    old = -torch.tensor([[0.2, 0.0], [-0.02, 5.0]], dtype=torch.float64)
    adv = torch.tensor([1.0, -2.0], dtype=torch.float64)
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]], dtype=torch.float64)
    loss, st = gspo_loss(lp, old, adv, mask, eps_low=0.2, eps_high=0.05)
    s1 = math.exp(-0.02)
    assert abs(float(loss.detach()) - (-(1.05 + s1 * -2.0) / 2)) < 1e-12
    loss.backward()
    assert_close("gspo grad", lp.grad, torch.tensor([[0.0, 0.0], [s1, 0.0]], dtype=torch.float64), atol=1e-12, rtol=0)
    assert abs(float(st["seq_clip_frac"]) - 0.5) < 1e-12          # seq0 clipped
    assert abs(float(st["clip_frac"]) - 2 / 3) < 1e-12             # its 2 of the 3 real tokens
    assert abs(float(st["seq_ratio_max"]) - math.exp(0.1)) < 1e-12


def test_gspo_gradient_spreads_over_tokens_by_length():
    # unclipped sequence of 4 tokens, Â = 1, all log-ratios 0 (s = 1): J = s·Â, ∂J/∂logp_t = s·Â/|o| = 1/4 per token
    lp = torch.zeros(1, 4, dtype=torch.float64, requires_grad=True)
    loss, _ = gspo_loss(lp, lp.detach(), torch.ones(1, dtype=torch.float64), torch.ones(1, 4, dtype=torch.float64))
    loss.backward()
    assert_close("gspo grad", lp.grad, torch.full((1, 4), -0.25, dtype=torch.float64), atol=1e-12, rtol=0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gspo_matches_its_slow_twin_and_the_token_form(seed):
    logp, old, adv, mask = _batch(B=5, T=6, seed=seed, spread=0.002)   # s near 1: some clipped at 3e-4 / 4e-4
    ours, _ = gspo_loss(logp, old, adv, mask)
    (g,) = torch.autograd.grad(ours, logp)
    ref = gspo_loss_reference(logp, old, adv, mask)
    (g_ref,) = torch.autograd.grad(ref, logp)
    assert_close("gspo vs twin", ours, ref, atol=1e-12, rtol=1e-10)
    assert_close("gspo grad vs twin", g, g_ref, atol=1e-12, rtol=1e-10)
    # GSPO-token with a per-sequence-constant Â (B, T) has GSPO's value and gradient
    tok, _ = gspo_loss(logp, old, adv[:, None].expand_as(logp), mask)
    (g_tok,) = torch.autograd.grad(tok, logp)
    assert_close("gspo-token value", tok, ours, atol=1e-12, rtol=1e-10)
    assert_close("gspo-token grad", g_tok, g, atol=1e-12, rtol=1e-10)


@pytest.mark.parametrize("seed", [1, 4])
def test_gspo_matches_trl_sequence_level(seed):
    """TRL's GSPO: importance_sampling_level="sequence" with loss_type="grpo" and the paper's ε (3e-4 / 4e-4)."""
    logp, old, adv, mask = _batch(B=6, T=5, seed=seed, spread=0.002)
    trl_loss, _ = _trl_loss("grpo", logp, old, adv, mask, eps_low=3e-4, eps_high=4e-4, level="sequence")
    (g_trl,) = torch.autograd.grad(trl_loss, logp)
    ours, st = gspo_loss(logp, old, adv, mask, eps_low=3e-4, eps_high=4e-4)
    (g_ours,) = torch.autograd.grad(ours, logp)
    assert 0 < float(st["seq_clip_frac"]) < 1                       # both branches exercised
    assert_close("gspo loss vs TRL", ours, trl_loss, atol=1e-12, rtol=1e-10)
    assert_close("gspo grad vs TRL", g_ours, g_trl, atol=1e-12, rtol=1e-10)


def test_gspo_normalizer_splits_sum_to_the_batch():
    logp, old, adv, mask = _batch(B=4, spread=0.01)
    full, _ = gspo_loss(logp, old, adv, mask)
    parts = [gspo_loss(logp[i:i + 2], old[i:i + 2], adv[i:i + 2], mask[i:i + 2], normalizer=4)[0] for i in (0, 2)]
    assert_close("gspo split", parts[0] + parts[1], full, atol=1e-12, rtol=0)


# ---- Dr. GRPO --------------------------------------------------------------------------------------------------

def test_dr_grpo_hand_computed_constant_normaliser():
    # seq0 (2 real tokens) r = [1.5, 1.0], Â = +1 → min(1.5, 1.2) = 1.2 and 1.0; seq1 (1 real of 2) r = 0.5, Â = −1
    # → min(−0.5, −0.8) = −0.8. Sum over tokens 1.2 + 1.0 − 0.8 = 1.4, divided by the constant B·T = 2·2 = 4
    # (no per-sequence length mean: GRPO would give (1.1 − 0.8)/2 = 0.15) → J = 0.35, loss −0.35.
    # Gradient: unclipped token (0,1): −r·Â/4 = −0.25; the two clipped tokens 0.
    lp = torch.zeros(2, 2, dtype=torch.float64, requires_grad=True)
    old = -torch.log(torch.tensor([[1.5, 1.0], [0.5, 1.0]], dtype=torch.float64))
    adv = torch.tensor([1.0, -1.0], dtype=torch.float64)
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]], dtype=torch.float64)
    loss, _ = dr_grpo_loss(lp, old, adv, mask)
    assert abs(float(loss.detach()) + 0.35) < 1e-12
    loss.backward()
    assert_close("dr_grpo grad", lp.grad, torch.tensor([[0.0, -0.25], [0.0, 0.0]], dtype=torch.float64), atol=1e-12,
                 rtol=0)
    # a constant normaliser: the same tokens padded to T = 8 count the same when the constant is passed
    loss8, _ = dr_grpo_loss(lp.detach(), old, adv, mask, normalizer=4.0)
    assert abs(float(loss8) + 0.35) < 1e-12
    assert get_objective("dr_grpo").advantage_scale == "none" and get_objective("dr_grpo").normalizer == "max_tokens"


@pytest.mark.parametrize("seed", [0, 2])
def test_dr_grpo_matches_trl(seed):
    logp, old, adv, mask = _batch(B=4, T=6, seed=seed, spread=0.5)
    trl_loss, _ = _trl_loss("dr_grpo", logp, old, adv, mask, eps_low=0.2, eps_high=0.2)
    (g_trl,) = torch.autograd.grad(trl_loss, logp)
    ours, _ = dr_grpo_loss(logp, old, adv, mask)
    (g_ours,) = torch.autograd.grad(ours, logp)
    assert_close("dr_grpo loss vs TRL", ours, trl_loss, atol=1e-12, rtol=1e-10)
    assert_close("dr_grpo grad vs TRL", g_ours, g_trl, atol=1e-12, rtol=1e-10)


def test_dr_grpo_trainer_uses_constant_normaliser_and_centred_advantages():
    """The trainer passes sequences × max_new_tokens and advantages without std division for dr_grpo."""
    from lumos.models import tiny_hybrid
    from lumos.rl.config import RLConfig
    from lumos.rl.tasks import get_task
    from lumos.rl.trainer import RLTrainer

    cfg = RLConfig(algo="dr_grpo", steps=1, prompts_per_step=2, group_size=2, minibatches=1, max_new_tokens=3,
                   eval_every=0, eval_problems=1, task_kwargs={"digits": 1})
    assert cfg.resolved_advantage_scale == "none"
    assert RLConfig(algo="dr_grpo", advantage_scale="group").resolved_advantage_scale == "group"
    assert RLConfig(algo="grpo").resolved_advantage_scale == "group"
    trainer = RLTrainer(tiny_hybrid(16, 1, seed=0), get_task("addition", digits=1), cfg)
    seen = []
    fn = trainer.loss_fn

    def spy(logp, old, adv, mask, normalizer=None, **kw):
        seen.append((float(normalizer), adv.clone()))
        return fn(logp, old, adv, mask, normalizer=normalizer, **kw)

    trainer.loss_fn = spy
    rewards = []
    orig = trainer._advantages
    trainer._advantages = lambda r: (rewards.append(r.clone()), orig(r))[1]
    trainer.rl_step()
    assert seen and seen[0][0] == 4 * 3                              # 4 sequences × max_new_tokens 3
    r = rewards[0].double().view(-1, 2)
    centred = (r - r.mean(1, keepdim=True)).view(-1)
    assert_close("dr_grpo advantages", seen[0][1].double(), centred, atol=1e-6, rtol=0)


# ---- the registry ------------------------------------------------------------------------------------------------

def test_register_loss_refuses_shadowing_and_carries_the_advantage_scale():
    from lumos.rl.objectives import LOSSES

    with LOSSES.scope():
        with pytest.raises(LumosError, match="replace=True"):
            register_loss("cispo", help="x")(cispo_loss)
        assert get_loss("cispo") is cispo_loss
        with pytest.raises(LumosError, match="advantage_scale"):
            register_loss("new-one", help="x", advantage_scale="std")
        with pytest.raises(LumosError, match="normalizer"):
            register_loss("new-one", help="x", normalizer="words")
        register_loss("centred", help="x", advantage_scale="none")(dapo_loss)
        assert get_objective("centred").advantage_scale == "none" and get_objective("dapo").advantage_scale == "group"
        register_loss("cispo", help="replaced on purpose", replace=True)(cispo_loss)
        assert get_objective("cispo").help == "replaced on purpose"
    assert "centred" not in available_losses() and get_objective("cispo").help != "replaced on purpose"
