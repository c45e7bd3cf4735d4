import pytest
import torch

from lumos.core.errors import LumosTypeError
from lumos.models import tiny_hybrid
from lumos.rl.tasks import get_task
from lumos.studies.fp32_head import fp32_head_study, pearson, rollout_copy


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
    with pytest.raises(LumosTypeError, match="HybridLM or a transformers"):
        rollout_copy(torch.nn.Linear(2, 2), torch.bfloat16, True)


def test_study_rows():
    rows = fp32_head_study(tiny_hybrid(32, 2), get_task("addition"), samples=4, max_new_tokens=4)
    assert [r["fp32 head"] for r in rows] == ["no", "yes"]
    for r in rows:
        assert r["tokens"] > 0 and -1 <= r["pearson(p_train, p_rollout)"] <= 1 and r["max |Δ log p|"] >= 0


def test_rollout_copy_tied_lumos_keeps_embedding_low():
    model = tiny_hybrid(32, 2, tie_word_embeddings=True)
    low = rollout_copy(model, torch.bfloat16, fp32_head=True)
    assert low.lm_head.weight.dtype == torch.float32 and low.model.embed_tokens.weight.dtype == torch.bfloat16
    assert model.lm_head.weight is model.model.embed_tokens.weight   # the original stays tied


def test_transformers_model_copy_and_study():
    from lumos.rl.experiment import build_model

    llama = build_model("llama", seed=1)
    ids = torch.tensor([[257, 50, 51, 52]])
    low = rollout_copy(llama, torch.bfloat16, fp32_head=True)
    plain = rollout_copy(llama, torch.bfloat16, fp32_head=False)
    assert low.get_output_embeddings().weight.dtype == torch.float32
    assert low.model.embed_tokens.weight.dtype == torch.bfloat16
    assert low(ids).logits.dtype == torch.float32 and plain(ids).logits.dtype == torch.bfloat16
    assert llama.lm_head.weight.dtype == torch.float32
    ref = llama(ids).logits
    # the FP32 head removes the rounding of the logits themselves: closer to the float32 model
    assert (low(ids).logits - ref).abs().max() < (plain(ids).logits.float() - ref).abs().max()
    rows = fp32_head_study(llama, get_task("addition"), samples=4, max_new_tokens=4)
    assert [r["fp32 head"] for r in rows] == ["no", "yes"] and all(r["tokens"] > 0 for r in rows)
