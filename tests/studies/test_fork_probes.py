"""lumos.studies.fork_probes: the fork-token probes against hand-derived values and an unpadded forward."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from lumos.models import tiny_hybrid
from lumos.models.tokenizer import ByteTokenizer
from lumos.rl.config import RLConfig
from lumos.rl.objectives import get_loss
from lumos.rl.policy import make_policy
from lumos.rl.tasks import get_task
from lumos.rl.tasks.base import Problem
from lumos.studies.fork_probes import ForkClipProbe, fork_probability

FORK = ord("?")


def _probe(algo):
    cfg = RLConfig(algo=algo)
    return ForkClipProbe(SimpleNamespace(loss_fn=get_loss(algo), cfg=cfg, step=0), FORK)


def _batch(ratio, adv):
    # one response "5?" + a token after it; only the fork token (position 1) has ratio ≠ 1
    ids = torch.tensor([[ord("5"), FORK, ord("3")]])
    old = torch.log(torch.tensor([[0.5, 0.04, 0.5]]))
    logp = old + torch.log(torch.tensor([[1.0, ratio, 1.0]]))
    return ids, logp, old, torch.tensor([adv]), torch.ones(1, 3)


@pytest.mark.parametrize("algo, ratio, adv, clipped, removed", [
    ("dapo", 2.0, 1.0, 1, 1.0),         # r = 2 > 1.28 with Â > 0: PPO-clip's gradient is zero
    ("grpo", 2.0, 1.0, 1, 1.0),         # r = 2 > 1.2
    ("dapo", 1.2, 1.0, 0, 0.0),         # inside the trust region
    ("dapo", 2.0, -1.0, 0, 0.0),        # Â < 0: min(r·Â, clip·Â) takes r·Â, the gradient stays
    ("cispo", 2.0, 1.0, 0, 0.0),        # below the cap 1 + 4
    ("cispo", 6.0, 1.0, 1, 1 / 6),      # weight capped at 5 instead of 6: 1/6 of the gradient is lost
])
def test_fork_clip_probe_hand_derived(algo, ratio, adv, clipped, removed):
    out = _probe(algo)(*_batch(ratio, adv))
    assert out["fork_n"] == 1 and out["fork_live_n"] == 1 and out["fork_seqs"] == 1 and out["seqs"] == 1
    assert out["fork_clipped_n"] == clipped
    assert 1 - out["fork_grad_kept"] / out["fork_grad_full"] == pytest.approx(removed, abs=1e-6)
    assert out["fork_ratio_max"] == pytest.approx(ratio, rel=1e-6)


def test_fork_clip_probe_without_fork_and_digest():
    probe = _probe("cispo")
    ids, logp, old, adv, mask = _batch(1.0, 1.0)
    out = probe(ids[:, :1], logp[:, :1], old[:, :1], adv, mask[:, :1])
    assert out["fork_n"] == 0 and out["fork_grad_full"] == 0.0
    first = probe.digests[0]
    probe.trainer.step = 1
    probe(ids, logp, old, adv, mask)
    assert probe.digests[1] != first and len(first) == 16


def test_fork_probability_matches_unpadded_forward():
    """The batched, padded probe equals softmax of a plain forward of each context on its own."""
    model = tiny_hybrid(16, 2, seed=0).eval()
    policy, tok, task = make_policy(model), ByteTokenizer(), get_task("guess-check")
    problems = [Problem("3+4=", 7, {"guess": 5}), Problem("0+1=", 1, {"guess": 12}), Problem("4+4=", 8, {"guess": 0})]
    got = fork_probability(policy, task, problems, tok, temperature=0.7)
    ref = []
    with torch.no_grad():
        for p in problems:
            ids = torch.tensor([tok.encode(p.prompt + str(p.meta["guess"]), add_bos=True)])
            logits = model(ids, attention_mask=torch.ones_like(ids))[0, -1] / 0.7
            ref.append(float(torch.softmax(logits.double(), -1)[FORK]))
    assert got == pytest.approx(sum(ref) / len(ref), rel=1e-4)


