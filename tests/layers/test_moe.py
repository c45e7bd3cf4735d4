import pytest
import torch

from lumos.core.errors import LumosError
from lumos.layers.moe import SparseMoE, load_balancing_loss, route
from lumos.layers.moe import moe_per_token as moe_reference
from lumos.testing import assert_close


@pytest.mark.parametrize("experts,top_k,shape", [(4, 2, (2, 5)), (5, 3, (1, 7)), (8, 1, (3, 1)), (3, 3, (1, 4))])
def test_grouped_dispatch_matches_per_token_oracle(experts, top_k, shape):
    moe = SparseMoE(12, 10, experts, top_k)
    moe.reset_parameters(std=0.3)
    x = torch.randn(*shape, 12, requires_grad=True)
    out, _ = moe(x)
    ref = moe_reference(moe, x)
    assert_close("moe", out, ref, atol=1e-5, rtol=1e-5)
    g = torch.randn_like(out)
    gx, gw = torch.autograd.grad((out * g).sum(), (x, moe.w1))
    gx_ref, gw_ref = torch.autograd.grad((ref * g).sum(), (x, moe.w1))
    assert_close("d x", gx, gx_ref, atol=1e-5, rtol=1e-5)
    assert_close("d w1", gw, gw_ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("experts,top_k,batch", [(4, 2, 1), (5, 3, 2), (3, 3, 4)])
def test_decode_step_matches_per_token_oracle_in_both_regimes(experts, top_k, batch, monkeypatch):
    moe = SparseMoE(12, 10, experts, top_k)
    moe.reset_parameters(std=0.3)
    x = torch.randn(batch, 12)
    ref = moe_reference(moe, x[:, None])[:, 0]
    for gathers in (True, False):  # top-k experts read by index / the expert-grouped dispatch
        monkeypatch.setattr(SparseMoE, "gathers_experts", lambda self, b, g=gathers: g)
        with torch.no_grad():
            assert_close(f"decode_step gathers={gathers}", moe.decode_step(x), ref, atol=1e-5, rtol=1e-5)


def test_gathers_experts_rule():
    moe = SparseMoE(64, 8192, 4, 2)  # 6.3 MB per float32 expert: 16 MB holds two of them
    assert moe.gathers_experts(1) and moe.gathers_experts(2)  # B·top_k ≤ num_experts
    assert not moe.gathers_experts(3)
    small = SparseMoE(12, 10, 4, 2)  # cache-resident experts: re-reading them per row is cheap
    assert small.gathers_experts(64)


def test_router_fp32_and_renormalised():
    logits = torch.randn(6, 5, dtype=torch.bfloat16)
    probs, w, idx = route(logits, 2)
    assert probs.dtype == torch.float32 and w.dtype == torch.float32
    assert_close("weights sum to 1", w.sum(-1), torch.ones(6), atol=1e-6, rtol=0)
    assert torch.equal(idx, torch.topk(torch.softmax(logits.float(), -1), 2).indices)


def test_aux_loss_matches_transformers_and_ignores_padding():
    from transformers.models.minimax.modeling_minimax import load_balancing_loss_func

    moes = [SparseMoE(8, 4, 4, 2) for _ in range(3)]
    for m in moes:
        m.reset_parameters(std=1.0)
    x = torch.randn(2, 5, 8)
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    for attn in (None, mask):
        stats = [m(x, attention_mask=attn)[1] for m in moes]
        ref = load_balancing_loss_func(tuple(m.gate(x.reshape(-1, 8)) for m in moes), 4, 2, attn)
        assert_close("aux", load_balancing_loss(stats, 4), ref, atol=1e-6, rtol=1e-6)
    # perfectly balanced routing gives exactly top_k
    moe = SparseMoE(4, 4, 2, 1)
    with torch.no_grad():
        moe.gate.weight.copy_(torch.tensor([[1.0, 0, 0, 0], [0, 1.0, 0, 0]]))
    xb = torch.tensor([[[5.0, 0, 0, 0], [0, 5.0, 0, 0]]])
    loss = load_balancing_loss([moe(xb)[1]], 2)
    p = torch.softmax(torch.tensor([5.0, 0.0]), 0)
    assert_close("balanced", loss, 2 * (0.5 * p.mean() * 2), atol=1e-6, rtol=1e-6)


def test_bad_construction():
    with pytest.raises(LumosError, match="top_k"):
        SparseMoE(4, 4, 2, 3)
    with pytest.raises(LumosError, match="hidden_size"):
        SparseMoE(0, 4, 2, 1)


def test_load_balancing_loss_pooled_over_processes_sums_to_the_single_process_loss():
    """The sharded trainer's form (``reduce`` = an all-reduce of counts and rows): two "ranks" holding halves of
    a batch add up to the loss of the whole batch, in value and in the gradient of the router logits."""
    moe = SparseMoE(8, 6, 4, 2)
    moe.reset_parameters(std=0.5)
    x = torch.randn(2, 6, 8)
    mask = torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]])
    halves = [(x[:1], mask[:1]), (x[1:], mask[1:])]
    whole = load_balancing_loss([moe(x, mask)[1]], 4)
    g_whole = torch.autograd.grad(whole, moe.gate.weight)[0]
    stats = [moe(xi, mi)[1] for xi, mi in halves]
    vecs = [torch.cat([s.counts, s.rows[None]]).double().detach() for s in stats]
    reduce = lambda t: vecs[0] + vecs[1]  # noqa: E731 - what all_reduce_sum returns on every rank
    parts = [load_balancing_loss([s], 4, reduce=reduce) for s in stats]
    assert_close("pooled loss", parts[0] + parts[1], whole, atol=1e-6, rtol=1e-6)
    g_parts = torch.autograd.grad(parts[0] + parts[1], moe.gate.weight)[0]
    assert_close("pooled grad", g_parts, g_whole, atol=1e-6, rtol=1e-5)
