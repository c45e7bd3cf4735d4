"""``explain_inputs``: several methods over batches, the explained class chosen once (no extra forward pass)."""

import pytest
import torch

from lumos.core.errors import LumosError
from lumos.explain import METHODS, get_method
from lumos.explain.runner import explain_inputs
from lumos.explain.targets import ReST


def _count_forwards(model):
    calls = []
    model.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    return calls


def test_each_method_runs_one_forward_per_batch_and_reports_the_predicted_class(tiny_cnn):
    x = torch.randn(5, 3, 12, 12, generator=torch.Generator().manual_seed(0))
    calls = _count_forwards(tiny_cnn)
    found = explain_inputs(tiny_cnn, ["features.2"], x, ["gradcam", "hirescam"], batch_size=2)
    assert calls == [2, 2, 1] * 2  # the CAMs' own forward passes, nothing else
    with torch.no_grad():
        logits = tiny_cnn(x)
    for name, e in found.items():
        assert e.method == name and e.cams.shape == (5, 12, 12)
        assert torch.equal(e.classes, logits.argmax(1))
        torch.testing.assert_close(e.probabilities, torch.softmax(logits, 1).gather(1, e.classes[:, None])[:, 0])
        with get_method(name)(tiny_cnn, ["features.2"]) as cam:  # the same maps as the method called directly
            torch.testing.assert_close(e.cams, cam(x, targets=ReST(e.classes)), atol=1e-6, rtol=1e-6)


def test_fixed_classes_and_errors(tiny_cnn):
    x = torch.randn(3, 3, 12, 12, generator=torch.Generator().manual_seed(1))
    e = explain_inputs(tiny_cnn, ["features.2"], x, ["gradcam"], classes=4, target="logit")["gradcam"]
    assert e.classes.tolist() == [4, 4, 4]
    e = explain_inputs(tiny_cnn, ["features.2"], x, ["gradcam"], classes=[0, 1, 2], batch_size=2)["gradcam"]
    assert e.classes.tolist() == [0, 1, 2]
    with pytest.raises(LumosError, match="classes"):
        explain_inputs(tiny_cnn, ["features.2"], x, ["gradcam"], classes=[0, 1])
    with pytest.raises(LumosError, match="target"):
        explain_inputs(tiny_cnn, ["features.2"], x, ["gradcam"], target="nope")
    with pytest.raises(LumosError, match="method"):
        explain_inputs(tiny_cnn, ["features.2"], x, ["nope"])


def test_cli_lists_the_library_registries():
    import argparse

    from lumos.explain import cli
    from lumos.explain.targets import TARGETS

    sub = argparse.ArgumentParser().add_subparsers()
    cli.register(sub)
    explain = sub.choices["explain"]
    target = next(a for a in explain._actions if a.dest == "target")
    assert tuple(target.choices) == tuple(TARGETS)
    assert cli._methods("all") == list(METHODS)
