import pytest
import torch

import lumos.ops
from lumos.core.errors import LumosError, LumosTypeError
from lumos.ops import lightning_attention, lightning_attention_step
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
