import pytest
import torch

from lumos.core.errors import LumosTypeError
from lumos.rl.fp32_head import fp32_head_study, pearson, rollout_copy
from lumos.rl.sft import tiny_hybrid
from lumos.rl.tasks import get_task


def test_pearson_hand_computed():
    assert abs(pearson(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([2.0, 4.0, 6.0])) - 1) < 1e-12
    assert abs(pearson(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([3.0, 2.0, 1.0])) + 1) < 1e-12


def test_rollout_copy_precision():
    model = tiny_hybrid(32, 2)
    model(torch.tensor([[1, 2, 3]])).sum().backward()     # a forward leaves graph-holding router state behind
    low = rollout_copy(model, torch.bfloat16, fp32_head=True)
    assert low.lm_head.weight.dtype == torch.float32 and low.model.embed_tokens.weight.dtype == torch.bfloat16
    assert low(torch.tensor([[1, 2, 3]])).dtype == torch.float32
    plain = rollout_copy(model, torch.bfloat16, fp32_head=False)
    assert plain(torch.tensor([[1, 2, 3]])).dtype == torch.bfloat16
    assert model.lm_head.weight.dtype == torch.float32          # the original is untouched
    with pytest.raises(LumosTypeError, match="HybridLM"):
        rollout_copy(torch.nn.Linear(2, 2), torch.bfloat16, True)


def test_study_rows():
    rows = fp32_head_study(tiny_hybrid(32, 2), get_task("addition"), samples=4, max_new_tokens=4)
    assert [r["fp32 head"] for r in rows] == ["no", "yes"]
    for r in rows:
        assert r["tokens"] > 0 and -1 <= r["pearson(p_train, p_rollout)"] <= 1 and r["max |Δ log p|"] >= 0
