import pytest
import torch

from lumos.core.errors import LumosError
from lumos.layers.rope import RotaryEmbedding, apply_rotary, apply_rotary_reference, rotary_inv_freq
from lumos.testing import assert_close


@pytest.mark.parametrize("head_dim,rotary_dim", [(8, 8), (16, 8), (10, 6), (12, 2)])
def test_fast_matches_pairwise_twin(head_dim, rotary_dim):
    x = torch.randn(2, 3, 7, head_dim)
    pos = torch.tensor([[0, 1, 2, 3, 4, 5, 6], [0, 0, 0, 1, 2, 3, 40]])
    cos, sin = RotaryEmbedding(rotary_dim, 500.0)(pos)
    y = apply_rotary(x, cos, sin)
    assert_close("rope", y, apply_rotary_reference(x, cos, sin), atol=1e-6, rtol=1e-6)
    assert torch.equal(y[..., rotary_dim:], x[..., rotary_dim:])  # pass-through dims untouched
    assert_close("position 0 is identity", y[1, :, :3], x[1, :, :3], atol=1e-7, rtol=0)


def test_full_rotary_matches_transformers():
    from transformers.models.minimax.modeling_minimax import apply_rotary_pos_emb

    q, k = torch.randn(2, 4, 9, 16), torch.randn(2, 2, 9, 16)
    pos = torch.arange(9)[None].expand(2, 9)
    cos, sin = RotaryEmbedding(16, 10000.0)(pos)
    full_cos, full_sin = torch.cat((cos, cos), -1), torch.cat((sin, sin), -1)
    q_ref, k_ref = apply_rotary_pos_emb(q, k, full_cos, full_sin)
    assert_close("q", apply_rotary(q, cos, sin), q_ref, atol=1e-6, rtol=1e-6)
    assert_close("k", apply_rotary(k, cos, sin), k_ref, atol=1e-6, rtol=1e-6)


def test_scores_depend_on_relative_position_only():
    rope = RotaryEmbedding(8, 100.0)
    q, k = torch.randn(1, 1, 1, 12), torch.randn(1, 1, 1, 12)

    def score(pq, pk):
        cq, sq = rope(torch.tensor([[pq]]))
        ck, sk = rope(torch.tensor([[pk]]))
        return (apply_rotary(q, cq, sq) * apply_rotary(k, ck, sk)).sum()

    assert_close("shift invariance", score(7, 3), score(104, 100), atol=1e-4, rtol=1e-4)


def test_inv_freq_formula_and_errors():
    assert_close("inv_freq", rotary_inv_freq(4, 10000.0), torch.tensor([1.0, 0.01]), atol=1e-8, rtol=1e-6)
    with pytest.raises(LumosError, match="rotary_dim"):
        RotaryEmbedding(5)
    with pytest.raises(LumosError, match="base"):
        RotaryEmbedding(4, base=1.0)
