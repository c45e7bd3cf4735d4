import pytest
import torch

from lumos.core.errors import LumosError
from lumos.explain.targets import Logit, LogSoftmax, ReST, Softmax, make_target, resolve_classes
from lumos.testing import assert_close


def test_rest_per_row_hand_computed():
    # row 0: y = (1, 2, 0), c = 1: 2·2 − log(e + e² + 1); row 1: y = (0, 0, 3), c = 0: 0 − log(2 + e³)
    y = torch.tensor([[1.0, 2.0, 0.0], [0.0, 0.0, 3.0]], dtype=torch.float64)
    e = torch.e
    expected = torch.tensor([4 - torch.log(torch.tensor(e + e**2 + 1)), -torch.log(torch.tensor(2 + e**3))],
                            dtype=torch.float64)
    assert_close("rest", ReST([1, 0])(y), expected, atol=1e-12)
    # per row: row 0 does not change when row 1 changes (grad-cam's batched branch uses the batch-mean CE)
    y2 = y.clone()
    y2[1] = torch.tensor([5.0, -1.0, 0.5])
    assert float(ReST([1, 0])(y2)[0]) == float(ReST([1, 0])(y)[0])


def test_rest_gradient_and_hessian_closed_form():
    y = torch.randn(5, dtype=torch.float64)
    c = 3
    p = torch.softmax(y, 0)
    f = lambda z: ReST(c)(z[None])[0]
    g = torch.autograd.functional.jacobian(f, y)
    h = torch.autograd.functional.hessian(f, y)
    assert_close("grad", g, 2 * torch.nn.functional.one_hot(torch.tensor(c), 5).double() - p, atol=1e-12)
    assert_close("hess", h, -(torch.diag(p) - torch.outer(p, p)), atol=1e-12)


def test_other_targets_and_defaults():
    y = torch.tensor([[1.0, 3.0], [2.0, -1.0]])
    assert torch.equal(Logit()(y), torch.tensor([3.0, 2.0]))  # predicted class
    assert_close("softmax", Softmax(0)(y), torch.softmax(y, 1)[:, 0], atol=1e-7)
    assert_close("logsoftmax", LogSoftmax([1, 1])(y), torch.log_softmax(y, 1)[:, 1], atol=1e-7)
    t = ReST()
    t(y)
    assert t.classes_.tolist() == [1, 0]


def test_make_target_forms():
    y = torch.randn(2, 4)
    assert isinstance(make_target(None, ReST), ReST)
    assert make_target([1, 2], Logit).classes == [1, 2]
    per = make_target([lambda r: r[0], lambda r: r[1]], Logit)
    assert_close("per-sample", per(y), torch.stack([y[0, 0], y[1, 1]]), atol=0)
    batch = make_target(lambda z: z.sum(1), Logit)
    assert_close("batch", batch(y), y.sum(1), atol=0)
    with pytest.raises(LumosError, match="one score per sample"):
        make_target(lambda z: z, Logit)(y)
    with pytest.raises(LumosError):
        make_target("cat", Logit)


def test_resolve_classes_errors():
    y = torch.randn(3, 4)
    assert resolve_classes(2, y).tolist() == [2, 2, 2]
    with pytest.raises(LumosError, match="one class index per sample"):
        resolve_classes([1, 2], y)
    with pytest.raises(LumosError, match=r"\[0, 3\]"):
        resolve_classes([1, 2, -1], y)
    with pytest.raises(LumosError, match="integer"):
        resolve_classes(torch.tensor([0.5, 1.0, 2.0]), y)
    with pytest.raises(LumosError, match=r"\(B, C\)"):
        Logit(0)(torch.randn(3, 4, 5))


def test_targets_accept_one_sample_1d_logits_grad_cam_style():
    y = torch.randn(3, 5)
    # ReST(c) on one sample's (C,) logits is the scalar of its row in the batched form
    for b, c in enumerate([1, 4, 0]):
        assert ReST(c)(y[b]).shape == ()
        torch.testing.assert_close(ReST(c)(y[b]), ReST([1, 4, 0])(y)[b])
    # a per-sample list of lumos targets == the batched target, classes_ collected
    per = make_target([ReST(c) for c in (1, 4, 0)], ReST)
    torch.testing.assert_close(per(y), ReST([1, 4, 0])(y))
    assert per.classes_.tolist() == [1, 4, 0]
    # mixed with plain callables on the 1-D output (grad-cam's target objects)
    mixed = make_target([ReST(1), lambda row: row[4], Logit(0)], ReST)
    torch.testing.assert_close(mixed(y), torch.stack([ReST(1)(y[0]), y[1, 4], y[2, 0]]))
    assert mixed.classes_ is None
    with pytest.raises(LumosError, match="one scalar"):
        make_target([lambda row: row, ReST(0), ReST(0)], ReST)(y)
