import pytest
import torch

from lumos.core.errors import LumosError
from lumos.layers import RMSNorm
from lumos.testing import assert_close


def test_matches_formula_and_transformers():
    from transformers.models.minimax.modeling_minimax import MiniMaxRMSNorm

    x = torch.randn(2, 5, 12)
    ours = RMSNorm(12, eps=1e-6)
    with torch.no_grad():
        ours.weight.copy_(torch.randn(12))
    ref = MiniMaxRMSNorm(12, eps=1e-6)
    ref.load_state_dict(ours.state_dict())
    expected = ours.weight * x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)
    assert_close("rmsnorm", ours(x), expected, atol=1e-6, rtol=1e-6)
    assert_close("rmsnorm vs transformers", ours(x), ref(x), atol=1e-6, rtol=1e-6)


def test_low_precision_input_keeps_dtype():
    x = torch.randn(3, 16, dtype=torch.bfloat16)
    y = RMSNorm(16)(x)
    assert y.dtype == torch.float32  # fp32 weight times bf16 → fp32, as transformers does
    assert_close("bf16", y, RMSNorm(16)(x.float()), atol=1e-2, rtol=1e-2)
    y16 = RMSNorm(16).to(torch.bfloat16)(x)
    assert y16.dtype == torch.bfloat16


def test_errors():
    with pytest.raises(LumosError, match="'dim'"):
        RMSNorm(0)
    with pytest.raises(LumosError, match="'eps'"):
        RMSNorm(4, eps=0.0)
    with pytest.raises(LumosError, match="last dimension is 4"):
        RMSNorm(4)(torch.randn(2, 5))
