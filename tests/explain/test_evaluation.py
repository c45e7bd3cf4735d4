import pytest
import torch

from lumos.explain.evaluation import EvalConfig, evaluate_methods
from lumos.explain.metrics import adcc


def test_evaluate_methods_rows_and_equivalence(tiny_cnn):
    torch.manual_seed(0)
    x = torch.randn(6, 3, 12, 12)
    boxes = torch.tensor([[0, 0, 6, 6]] * 6)
    cfg = EvalConfig(methods=["gradcam", "hirescam", "shapleycam", "shapleycam-h"], auc_steps=2, keep_examples=3)
    rows, examples = evaluate_methods(tiny_cnn, "features.3", [(x[:4], boxes[:4]), (x[4:], boxes[4:])], cfg)
    by = {r["method"]: r for r in rows}
    assert set(by) == set(cfg.methods) and all(r["n"] == 6 for r in rows)
    for r in rows:
        assert r["adcc"] == pytest.approx(adcc(r["coh"], r["com"], r["ad"]))
        assert {"deletion_auc", "insertion_auc", "energy_pg", "pointing_game", "ic", "add"} <= set(r)
    # features.3 feeds global pooling: ShapleyCAM == -H and GradCAM == HiResCAM, so the metrics coincide
    for a, b in (("shapleycam", "shapleycam-h"), ("gradcam", "hirescam")):
        for k in ("ad", "coh", "com", "adcc"):
            assert by[a][k] == pytest.approx(by[b][k], abs=1e-5)
    assert examples["gradcam"].shape == (3, 12, 12)


def test_bad_target_name(tiny_cnn):
    with pytest.raises(ValueError, match="target"):
        evaluate_methods(tiny_cnn, "features.3", [], EvalConfig(target="prob"))
