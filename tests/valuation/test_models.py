"""The built-in classifiers' training: lumos's Adam against torch.optim.Adam (the oracle)."""

import pytest
import torch
from torch import nn

from lumos.testing import assert_close
from lumos.valuation.models import Adam, build_classifier, to_tensors, train_epoch


@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
@pytest.mark.parametrize("kind", ["logreg", "mlp"])
def test_adam_equals_torch_adam(kind, weight_decay):
    """Same seeded model, data and shuffling: 3 epochs of 7 steps with each optimizer give the same weights."""
    g = torch.Generator().manual_seed(0)
    X, y = torch.randn(40, 5, generator=g), torch.randint(0, 3, (40,), generator=g)
    ours, ref = build_classifier(kind, 5, 3, hidden=8, seed=1), build_classifier(kind, 5, 3, hidden=8, seed=1)
    opt_ours = Adam(ours.parameters(), lr=0.05, weight_decay=weight_decay)
    opt_ref = torch.optim.Adam(ref.parameters(), lr=0.05, weight_decay=weight_decay)
    for model, opt in ((ours, opt_ours), (ref, opt_ref)):
        gen = torch.Generator().manual_seed(3)
        for _ in range(3):
            train_epoch(model, opt, X, y, 6, gen)
    for (name, a), b in zip(ours.named_parameters(), ref.parameters()):
        assert_close(f"{kind} {name}", a, b, atol=1e-6, rtol=1e-5)
    assert not torch.equal(ours[0].weight, build_classifier(kind, 5, 3, hidden=8, seed=1)[0].weight)


def test_adam_skips_frozen_and_gradless_parameters():
    model = nn.Sequential(nn.Linear(3, 2))
    model[0].bias.requires_grad_(False)
    opt = Adam(model.parameters(), lr=0.1)
    assert len(opt.params) == 1
    before = model[0].weight.clone()
    opt.step()  # no gradient yet: nothing moves
    assert torch.equal(model[0].weight, before)
    X, y = to_tensors(torch.randn(4, 3).numpy(), torch.tensor([0, 1, 0, 1]).numpy())
    nn.functional.cross_entropy(model(X), y).backward()
    opt.step()
    opt.zero_grad()
    assert model[0].weight.grad is None and not torch.equal(model[0].weight, before)
