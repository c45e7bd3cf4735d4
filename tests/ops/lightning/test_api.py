import doctest

import pytest
import torch

import lumos.ops
from lumos.core.errors import LumosError, LumosTypeError
from lumos.ops import lightning_attention, lightning_attention_step, lightning_attn
from lumos.ops.lightning import BACKENDS
from lumos.testing import assert_close


def test_public_api():
    assert lumos.ops.__all__ == ["lightning_attention", "lightning_attention_step", "lightning_attn"]
    for name in lumos.ops.__all__:
        assert getattr(lumos.ops, name).__doc__
    assert BACKENDS == ("auto", "chunked", "recurrent", "naive", "triton")


@pytest.mark.parametrize("backend", ["auto", "chunked", "recurrent", "naive"])
def test_every_backend_agrees_through_the_public_api(backend, make_inputs, run_with_grads):
    args = make_inputs(2, 2, 45, 6, 5)
    ref = run_with_grads(lightning_attention, *args, backend="naive")
    got = run_with_grads(lightning_attention, *args, backend=backend)
    for name, a, b in zip(["o", "final", "dq", "dk", "dv", "ds0"], got, ref):
        assert_close(name, a, b, atol=1e-10, rtol=1e-10)


def test_final_state_only_when_asked(make_inputs):
    q, k, v, slope, _ = make_inputs(1, 2, 9, 4, 4, grad=False)
    assert lightning_attention(q, k, v, slope)[1] is None
    assert lightning_attention(q, k, v, slope, output_final_state=True)[1].shape == (1, 2, 4, 4)


@pytest.mark.parametrize("T", [1, 3, 40])
def test_prefix_then_step_equals_full_forward(T, make_inputs):
    q, k, v, slope, s0 = make_inputs(2, 3, 100, 8, 6, dtype=torch.float32, grad=False)
    full, full_state = lightning_attention(q, k, v, slope, s0, True)
    P = 100 - 2 * T
    outs = [lightning_attention(q[:, :, :P], k[:, :, :P], v[:, :, :P], slope, s0, True)]
    state = outs[0][1]
    for a in range(P, 100, T):
        o, state = lightning_attention_step(q[:, :, a : a + T], k[:, :, a : a + T], v[:, :, a : a + T], slope, state)
        outs.append((o, state))
    assert_close("outputs", torch.cat([o for o, _ in outs], dim=2), full, atol=1e-5, rtol=1e-5)
    assert_close("state", state, full_state, atol=1e-5, rtol=1e-5)


def test_step_without_state_starts_from_zero(make_inputs):
    q, k, v, slope, _ = make_inputs(1, 2, 1, 4, 4, dtype=torch.float32, grad=False)
    o, s = lightning_attention_step(q, k, v, slope)
    assert_close("first token", o, lightning_attention(q, k, v, slope)[0], atol=1e-6)
    assert s.dtype == torch.float32


def test_clear_errors(make_inputs):
    q, k, v, slope, s0 = make_inputs(2, 2, 6, 4, 3, dtype=torch.float32, grad=False)
    with pytest.raises(LumosError, match="'k' parameter of lightning_attention must be of shape"):
        lightning_attention(q, k[:, :, :5], v, slope)
    with pytest.raises(LumosError, match="'v'"):
        lightning_attention(q, k, v[:1], slope)
    with pytest.raises(LumosError, match="4-D tensor"):
        lightning_attention(q[0], k[0], v[0], slope)
    with pytest.raises(LumosTypeError, match="one dtype"):
        lightning_attention(q, k.double(), v, slope)
    with pytest.raises(LumosTypeError, match="'q'"):
        lightning_attention(q.int(), k, v, slope)
    with pytest.raises(LumosError, match="'slope'.*shape \\(2\\)"):
        lightning_attention(q, k, v, slope[:1])
    with pytest.raises(LumosError, match="'slope'.*>= 0"):
        lightning_attention(q, k, v, -slope)
    with pytest.raises(LumosError, match="'initial_state'"):
        lightning_attention(q, k, v, slope, s0[:1])
    with pytest.raises(LumosTypeError, match="'initial_state'"):
        lightning_attention(q, k, v, slope, s0.int())
    with pytest.raises(LumosError, match="'backend'"):
        lightning_attention(q, k, v, slope, backend="flash")
    with pytest.raises(LumosError, match="'triton' only for CUDA"):
        lightning_attention(q, k, v, slope, backend="triton")
    with pytest.raises(LumosError, match="slope.detach"):
        lightning_attention(q, k, v, slope.clone().requires_grad_(True))
    with pytest.raises(LumosError, match="'state'"):
        lightning_attention_step(q[:, :, :1], k[:, :, :1], v[:, :, :1], slope, s0[:, :, :3])
    with pytest.raises(LumosError, match="non-empty"):
        lightning_attention(q[:, :, :0], k[:, :, :0], v[:, :, :0], slope)


def test_cu_seqlens_errors(make_inputs):
    q, k, v, slope, _ = make_inputs(1, 2, 6, 4, 3, dtype=torch.float32, grad=False)
    for bad in ([0, 4], [1, 6], [0, 4, 3, 6], [0]):
        with pytest.raises(LumosError, match="'cu_seqlens'"):
            lightning_attention(q, k, v, slope, cu_seqlens=torch.tensor(bad))
    with pytest.raises(LumosTypeError, match="'cu_seqlens'"):
        lightning_attention(q, k, v, slope, cu_seqlens=torch.tensor([0.0, 6.0]))
    with pytest.raises(LumosError, match="batch size 1"):
        lightning_attention(q.expand(2, -1, -1, -1), k.expand(2, -1, -1, -1), v.expand(2, -1, -1, -1), slope,
                            cu_seqlens=torch.tensor([0, 6]))
    with pytest.raises(LumosError, match="'initial_state'.*\\(2, 2, 4, 3\\)"):
        lightning_attention(q, k, v, slope, torch.zeros(1, 2, 4, 3), cu_seqlens=torch.tensor([0, 2, 6]))


def test_device_mismatch_is_reported():
    q = torch.randn(1, 1, 3, 2)
    if not torch.cuda.is_available():
        meta = torch.randn(1, device="meta")
        with pytest.raises(LumosError, match="one device"):
            lightning_attention(q, q, q, meta)


# ------------------------------------------------------------------------------ lightning_attn (FLA's layout)


def fla_reference(q, k, v, g_gamma, scale=None, initial_state=None, cu_seqlens=None):
    """FLA's ``naive_recurrent_simple_gla`` semantics with a per-head decay, written independently in float64:
    per sequence (a batch row, or a packed segment of row 0), head h and token t,
    h_t = exp(g_gamma_h) · h_{t−1} + k_tᵀ v_t,  o_t = scale · q_t h_t,  h_{−1} = initial_state (or 0);
    scale defaults to K ** -0.5. q, k (B, T, H, K); v (B, T, H, V). Returns o (B, T, H, V) float64 and the final
    states (N, H, K, V) float64; differentiable in q, k, v, g_gamma and initial_state."""
    B, T, H, K = q.shape
    V = v.shape[-1]
    scale = K**-0.5 if scale is None else scale
    q, k, v, g = q.double(), k.double(), v.double(), g_gamma.double()
    segments = [(b, 0, T) for b in range(B)] if cu_seqlens is None else \
        [(0, int(a), int(e)) for a, e in zip(list(cu_seqlens)[:-1], list(cu_seqlens)[1:])]
    rows = [[None] * T for _ in range(B)]
    finals = []
    decay = torch.exp(g)[:, None, None]  # (H, 1, 1)
    for n, (b, start, end) in enumerate(segments):
        h = q.new_zeros(H, K, V) if initial_state is None else initial_state[n].double()
        for t in range(start, end):
            h = decay * h + k[b, t, :, :, None] * v[b, t, :, None, :]  # (H, K, V)
            rows[b][t] = scale * (q[b, t, :, None, :] @ h)[:, 0]  # (H, V)
        finals.append(h)
    o = torch.stack([torch.stack(r) for r in rows])
    return o, torch.stack(finals)


def _fla_inputs(B, T, H, K, V, dtype=torch.float64, state_dtype=None, n_states=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    q, k, v = ((torch.randn(B, T, H, d, generator=g) * 0.4).to(dtype).requires_grad_(True) for d in (K, K, V))
    g_gamma = -torch.linspace(0.02, 1.2, H, dtype=torch.float64).to(torch.float64 if dtype == torch.float64
                                                                      else torch.float32)
    s0 = None
    if state_dtype is not None:
        s0 = torch.randn(n_states or B, H, K, V, generator=g).to(state_dtype).requires_grad_(True)
    return q, k, v, g_gamma, s0


def _outputs_and_grads(o, final, inputs, seed=1):
    """o, final and the gradients of `inputs` under random cotangents for o and the final state."""
    g = torch.Generator().manual_seed(seed)
    do = torch.randn(o.shape, generator=g, dtype=torch.float64)
    dfin = torch.randn(final.shape, generator=g, dtype=torch.float64)
    loss = (o.double() * do).sum() + (final.double() * dfin).sum()
    return [o, final, *torch.autograd.grad(loss, inputs)]


FLA_NAMES = ["o", "final", "dq", "dk", "dv", "dh0"]


@pytest.mark.parametrize(
    "B, T, H, K, V, cu, state, scale, backend",
    [
        (1, 63, 2, 60, 36, None, True, None, "chunked"),  # awkward sizes, FLA's default scale
        (2, 40, 2, 24, 24, None, False, 1.0, "chunked"),  # batch of 2, MiniMax's scale, no initial state
        (1, 63, 2, 12, 7, [0, 17, 17, 40, 63], True, 0.3, "chunked"),  # packed (one empty), list offsets
        (1, 70, 2, 8, 8, "tensor", True, None, "chunked"),  # packed, LongTensor offsets
        (1, 63, 2, 12, 7, [0, 17, 17, 40, 63], True, 0.3, "recurrent"),
        (2, 30, 3, 6, 5, None, True, None, "naive"),
    ],
)
def test_lightning_attn_matches_fla_reference(B, T, H, K, V, cu, state, scale, backend):
    cu_list = None if cu is None else ([0, 5, 36, 70] if cu == "tensor" else cu)
    n = B if cu is None else len(cu_list) - 1
    q, k, v, g_gamma, s0 = _fla_inputs(B, T, H, K, V, state_dtype=torch.float64 if state else None, n_states=n)
    inputs = [t for t in (q, k, v, s0) if t is not None]
    cu_arg = torch.tensor(cu_list) if cu == "tensor" else cu_list
    got = _outputs_and_grads(*lightning_attn(q, k, v, g_gamma=g_gamma, scale=scale, initial_state=s0,
                                             output_final_state=True, cu_seqlens=cu_arg, backend=backend), inputs)
    ref = _outputs_and_grads(*fla_reference(q, k, v, g_gamma, scale, s0, cu_list), inputs)
    assert got[0].shape == (B, T, H, V) and got[0].is_contiguous() and got[1].shape == (n, H, K, V)
    for name, a, b in zip(FLA_NAMES, got, ref):
        assert_close(name, a, b, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("state_dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_lightning_attn_initial_state_any_float_dtype(state_dtype):
    q, k, v, g_gamma, s0 = _fla_inputs(1, 40, 2, 16, 16, dtype=torch.float32, state_dtype=state_dtype, n_states=2)
    cu = [0, 15, 40]
    o, final = lightning_attn(q, k, v, g_gamma=g_gamma, initial_state=s0, output_final_state=True, cu_seqlens=cu)
    assert final.dtype == torch.float32 and o.dtype == torch.float32
    got = _outputs_and_grads(o, final, [q, k, v, s0])
    ref = _outputs_and_grads(*fla_reference(q, k, v, g_gamma, None, s0, cu), [q, k, v, s0])
    assert got[-1].dtype == state_dtype  # the state's gradient comes back in its own dtype
    for name, a, b in zip(FLA_NAMES, got, ref):
        tol = 1e-2 if name == "dh0" and state_dtype != torch.float32 else 2e-5
        assert_close(name, a, b, atol=tol, rtol=tol)


def test_lightning_attn_bf16_inputs_close_to_reference():
    q, k, v, g_gamma, s0 = _fla_inputs(2, 63, 2, 60, 60, dtype=torch.bfloat16, state_dtype=torch.bfloat16)
    o, final = lightning_attn(q, k, v, g_gamma=g_gamma, initial_state=s0, output_final_state=True)
    ref_o, ref_f = fla_reference(q, k, v, g_gamma, None, s0)
    assert o.dtype == torch.bfloat16 and final.dtype == torch.float32
    assert_close("o", o, ref_o, atol=3e-2, rtol=3e-2, rms_tol=1e-2)
    assert_close("final", final, ref_f, atol=1e-4, rtol=1e-4)


def test_lightning_attn_equals_head_first_op_with_scale_one():
    q, k, v, g_gamma, s0 = _fla_inputs(1, 50, 3, 10, 6, dtype=torch.float32, state_dtype=torch.float32, n_states=2)
    cu = torch.tensor([0, 21, 50])
    o, final = lightning_attn(q, k, v, slope=-g_gamma, scale=1.0, initial_state=s0, output_final_state=True,
                              cu_seqlens=cu)
    ref_o, ref_f = lightning_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), -g_gamma, s0, True,
                                       cu)
    assert_close("o", o, ref_o.transpose(1, 2), atol=1e-6, rtol=1e-6)
    assert_close("final", final, ref_f, atol=1e-6, rtol=1e-6)
    # g_gamma and slope = -g_gamma are the same decay; FLA's default scale is K ** -0.5 on q
    o_g, _ = lightning_attn(q, k, v, g_gamma=g_gamma, initial_state=s0, cu_seqlens=cu)
    ref_s, _ = lightning_attention((q * 10**-0.5).transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), -g_gamma,
                                   s0, False, cu)
    assert_close("default scale", o_g, ref_s.transpose(1, 2), atol=1e-6, rtol=1e-6)
    assert lightning_attn(q, k, v, g_gamma=g_gamma)[1] is None


def test_lightning_attn_decay_gradient_through_the_token_loop():
    q, k, v, g_gamma, s0 = _fla_inputs(1, 20, 2, 5, 4, state_dtype=torch.float64)
    g_gamma = g_gamma.clone().requires_grad_(True)
    got = _outputs_and_grads(*lightning_attn(q, k, v, g_gamma=g_gamma, initial_state=s0, output_final_state=True,
                                             backend="recurrent"), [g_gamma])
    ref = _outputs_and_grads(*fla_reference(q, k, v, g_gamma, None, s0), [g_gamma])
    assert_close("dg_gamma", got[-1], ref[-1], atol=1e-10, rtol=1e-10)
    with pytest.raises(LumosError, match="g_gamma.detach"):
        lightning_attn(q, k, v, g_gamma=g_gamma)


def test_lightning_attn_errors():
    q, k, v, g_gamma, s0 = _fla_inputs(2, 6, 3, 4, 5, dtype=torch.float32, state_dtype=torch.float32)
    with pytest.raises(LumosError, match="'g_gamma'.*exactly one.*Got both"):
        lightning_attn(q, k, v, g_gamma=g_gamma, slope=-g_gamma)
    with pytest.raises(LumosError, match="'g_gamma'.*Got neither"):
        lightning_attn(q, k, v)
    with pytest.raises(LumosError, match="'g_gamma'.*<= 0"):
        lightning_attn(q, k, v, g_gamma=-g_gamma)
    with pytest.raises(LumosError, match="'slope'.*>= 0"):
        lightning_attn(q, k, v, slope=g_gamma)
    with pytest.raises(LumosError, match="'q'.*head-first \\(B, H, L, D\\) layout.*lightning_attention"):
        lightning_attn(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), g_gamma=g_gamma)
    with pytest.raises(LumosError, match="'g_gamma'.*of shape \\(3\\).*Got shape \\(2,\\)"):
        lightning_attn(q, k, v, g_gamma=g_gamma[:2])
    with pytest.raises(LumosError, match="'v'.*\\(2, 6, 3, \\*\\)"):
        lightning_attn(q, k, v[:, :5], g_gamma=g_gamma)
    with pytest.raises(LumosError, match="'initial_state'.*\\(2, 3, 4, 5\\)"):
        lightning_attn(q, k, v, g_gamma=g_gamma, initial_state=s0[:1])
    with pytest.raises(LumosTypeError, match="'initial_state'"):
        lightning_attn(q, k, v, g_gamma=g_gamma, initial_state=s0.long())
    with pytest.raises(LumosError, match="'scale'.*finite"):
        lightning_attn(q, k, v, g_gamma=g_gamma, scale=float("nan"))
    with pytest.raises(LumosError, match="batch size 1.*along dim 1"):
        lightning_attn(q, k, v, g_gamma=g_gamma, cu_seqlens=[0, 6])
    q1, k1, v1 = q[:1], k[:1], v[:1]
    for bad in ([0, 4], [1, 6], [0, 4, 3, 6], [0], torch.tensor([0, 5])):
        with pytest.raises(LumosError, match="'cu_seqlens'"):
            lightning_attn(q1, k1, v1, g_gamma=g_gamma, cu_seqlens=bad)
    with pytest.raises(LumosTypeError, match="'cu_seqlens'"):
        lightning_attn(q1, k1, v1, g_gamma=g_gamma, cu_seqlens=[0, 2.5, 6])
    with pytest.raises(LumosError, match="'initial_state'.*\\(2, 3, 4, 5\\)"):
        lightning_attn(q1, k1, v1, g_gamma=g_gamma, initial_state=s0[:1], cu_seqlens=[0, 2, 6])


def test_head_first_op_names_the_layout_it_expected():
    q, k, v, g_gamma, _ = _fla_inputs(1, 40, 4, 16, 16, dtype=torch.float32)  # FLA's (B, T, H, D)
    with pytest.raises(LumosError, match="'q' parameter of lightning_attention must be of layout \\(B, H, L, Dk\\) "
                                         "with H = 4.*Got shape \\(1, 40, 4, 16\\).*flash-linear-attention's "
                                         "\\(B, T, H, D\\) layout.*lumos.ops.lightning_attn"):
        lightning_attention(q, k, v, -g_gamma)
    with pytest.raises(LumosError, match="'k'.*head-first.*lightning_attn"):
        lightning_attention(q.transpose(1, 2), k[:, :3].transpose(1, 2), v.transpose(1, 2), -g_gamma)


# ------------------------------------------------------------------- torch.compile(fullgraph=True): no graph breaks


def _compiled_vs_eager(fn, tensors, backend, extra=()):
    """fn(*tensors, *extra) -> (o, final), compiled with fullgraph=True vs eager: outputs and input gradients."""
    leaves = [t for t in tensors if t is not None]
    eager = _outputs_and_grads(*fn(*tensors, *extra), leaves)
    torch._dynamo.reset()
    compiled = _outputs_and_grads(*torch.compile(fn, fullgraph=True, backend=backend)(*tensors, *extra), leaves)
    for i, (a, b) in enumerate(zip(compiled, eager)):
        assert a.dtype == b.dtype
        assert_close(f"output/grad {i}", a, b, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("cu", [None, "list", "tensor"])
@pytest.mark.parametrize("state", [False, True])
def test_lightning_attn_compiles_fullgraph(cu, state):
    B, T = (2, 20) if cu is None else (1, 20)
    N = B if cu is None else 3
    q, k, v, g_gamma, s0 = _fla_inputs(B, T, 2, 4, 3, dtype=torch.float32,
                                       state_dtype=torch.bfloat16 if state else None, n_states=N)
    offsets = None if cu is None else [0, 7, 7, 20] if cu == "list" else torch.tensor([0, 7, 7, 20])

    def fn(q, k, v, s0, cu_seqlens):
        return lightning_attn(q, k, v, g_gamma=g_gamma, initial_state=s0, output_final_state=True,
                              cu_seqlens=cu_seqlens)

    _compiled_vs_eager(fn, (q, k, v, s0), "eager", (offsets,))


@pytest.mark.parametrize("cu", [None, "tensor"])
def test_head_first_op_compiles_fullgraph(cu, make_inputs):
    q, k, v, slope, s0 = make_inputs(1, 2, 20, 4, 3, dtype=torch.float32, n_states=None if cu is None else 2)
    offsets = None if cu is None else torch.tensor([0, 9, 20])

    def fn(q, k, v, s0, cu_seqlens):
        return lightning_attention(q, k, v, slope, s0, True, cu_seqlens)

    _compiled_vs_eager(fn, (q, k, v, s0), "eager", (offsets,))


@pytest.mark.parametrize("entry", ["lightning_attn", "lightning_attention"])
def test_both_entry_points_compile_with_aot_autograd(entry):
    q, k, v, g_gamma, s0 = _fla_inputs(1, 20, 2, 4, 3, dtype=torch.float32, state_dtype=torch.float32, n_states=2)
    cu = torch.tensor([0, 9, 20])
    if entry == "lightning_attn":
        def fn(q, k, v, s0):
            return lightning_attn(q, k, v, g_gamma=g_gamma, initial_state=s0, output_final_state=True, cu_seqlens=cu)
    else:
        def fn(q, k, v, s0):
            o, final = lightning_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), -g_gamma, s0,
                                           True, cu)
            return o.transpose(1, 2), final

    _compiled_vs_eager(fn, (q, k, v, s0), "aot_eager")


@pytest.mark.parametrize("T", [1, 20])  # the token loop inline, and the blocked path through the opaque op
def test_step_compiles_fullgraph(T, make_inputs):
    q, k, v, slope, s0 = make_inputs(2, 2, T, 4, 3, dtype=torch.float32)
    _compiled_vs_eager(lambda q, k, v, s0: lightning_attention_step(q, k, v, slope, s0), (q, k, v, s0), "eager")


def test_docstring_examples_run():
    from lumos.ops.lightning import api

    result = doctest.testmod(api)
    assert result.failed == 0 and result.attempted >= 15, result
