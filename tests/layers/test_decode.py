"""The decode steps' products: the fused form traced under ``torch.compile`` equals the eager one."""

import pytest
import torch

from lumos.layers import decode
from lumos.testing import assert_close


def _both(fn, *args):
    eager = fn(*args)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch.compiler, "is_compiling", lambda: True)  # the form inductor fuses, run eagerly
        fused = fn(*args)
    return eager, fused


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_decode_linear_forms_agree(dtype):
    g = torch.Generator().manual_seed(0)
    x, w, b = torch.randn(3, 20, generator=g), torch.randn(7, 20, generator=g), torch.randn(7, generator=g)
    x, w, b = x.to(dtype), w.to(dtype), b.to(dtype)
    eager, fused = _both(decode.decode_linear, x, w, b)
    assert eager.dtype == fused.dtype == dtype
    ref = x.double() @ w.double().T + b.double()
    tol = 1e-5 if dtype == torch.float32 else 5e-2
    assert_close("eager", eager.double(), ref, atol=tol, rtol=tol)
    assert_close("fused", fused.double(), ref, atol=tol, rtol=tol)


@pytest.mark.parametrize("per_expert_input", [False, True])
def test_gathered_linear_forms_agree(per_expert_input):
    g = torch.Generator().manual_seed(1)
    w = torch.randn(5, 6, 4, generator=g)
    idx = torch.tensor([[0, 3], [4, 4], [2, 1]])
    x = torch.randn(3, 2, 4, generator=g) if per_expert_input else torch.randn(3, 4, generator=g)
    eager, fused = _both(decode.gathered_linear, x, w, idx)
    ref = torch.stack([torch.stack([w[idx[b, j]] @ (x[b, j] if per_expert_input else x[b]) for j in range(2)])
                       for b in range(3)])
    assert_close("eager", eager, ref, atol=1e-5, rtol=1e-5)
    assert_close("fused", fused, ref, atol=1e-5, rtol=1e-5)
