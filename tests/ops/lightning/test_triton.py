"""The Triton kernels, run on CPU by the Triton interpreter (TRITON_INTERPRET=1 must be set before triton is
imported, hence a subprocess) against the blocked PyTorch path. On a GPU, benchmarks/gpu_lightning_check.py runs
the same comparison compiled."""

import json
import os
import subprocess
import sys

import pytest
import torch

from lumos.ops.lightning import api, chunked_lightning_attention
from lumos.ops.lightning import triton as lt

SCRIPT = r"""
import json, torch
from lumos.ops.lightning import triton as T, chunked_lightning_attention as chunked
from lumos.ops.lightning.opaque import lightning_attention_op
T.BLOCK = 16
torch.manual_seed(0)
cases = [  # B, H, L, Dk, Dv, cu_seqlens, initial state, final-state gradient
    (2, 2, 37, 5, 7, None, True, True),
    (1, 2, 40, 20, 12, [0, 3, 3, 21, 40], True, True),
    (1, 1, 18, 80, 96, None, False, False),  # several head-dim tiles, no state in or out
    (1, 2, 37, 16, 16, None, True, True),  # float16 (the interpreter has no bfloat16: checked on GPU)
    (1, 1, 12, 4, 4, [0, 5, 12], True, True),  # through the torch.compile op (below)
]
out = []
for B, H, L, Dk, Dv, cu, has_s0, use_final in cases:
    cu = None if cu is None else torch.tensor(cu)
    N = B if cu is None else len(cu) - 1
    dtype = torch.float16 if (Dk, Dv) == (16, 16) else torch.float32
    q, k, v = ((torch.randn(B, H, L, d) * 0.5).to(dtype).requires_grad_() for d in (Dk, Dk, Dv))
    slope = torch.rand(H) + 0.01
    s0 = torch.randn(N, H, Dk, Dv, requires_grad=True) if has_s0 else None
    res = []
    kernels = T.triton_lightning_attention
    if L == 12:  # the kernels behind the torch.compile op (its backward reruns them under autograd)
        kernels = lambda q, k, v, slope, s0, _, cu: lightning_attention_op(q, k, v, slope, s0, cu, "triton")  # noqa: E731
    for f in (kernels, chunked):
        o, fs = f(q, k, v, slope, s0, True, cu)
        loss = (o.float() * torch.cos(o.float())).sum() + ((fs ** 2).sum() if use_final else 0)
        inputs = [q, k, v] + ([s0] if has_s0 else [])
        res.append([o, fs, *torch.autograd.grad(loss, inputs)])
    errs = [float((a.float() - b.float()).abs().max() / b.float().abs().max().clamp_min(1e-6)) for a, b in zip(*res)]
    out.append({"case": [B, H, L, Dk, Dv], "dtype": str(dtype), "rel_errs": errs})
print("RESULT" + json.dumps(out))
"""


@pytest.mark.slow
def test_kernels_match_chunked_under_interpreter():
    env = dict(os.environ, TRITON_INTERPRET="1")
    proc = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT"))
    cases = json.loads(line[len("RESULT"):])
    assert len(cases) == 5, cases
    for case in cases:
        assert len(case["rel_errs"]) >= 5, case
        tol = 5e-3 if case["dtype"] == "torch.float16" else 1e-5
        assert max(case["rel_errs"]) < tol, case  # outputs, final state, dq, dk, dv (, ds0)


def test_auto_dispatch_on_cpu_is_chunked():
    q = torch.randn(1, 1, 4, 2)
    assert api.resolve_backend("auto", q) is chunked_lightning_attention
    assert not lt.is_available() or torch.cuda.is_available()


def test_auto_dispatch_picks_triton_when_usable(monkeypatch):
    monkeypatch.setattr(api, "_triton_usable", lambda x: True)
    assert api.resolve_backend("auto", torch.randn(1, 1, 4, 2)) is lt.triton_lightning_attention
    assert api.resolve_backend("chunked", torch.randn(1, 1, 4, 2)) is chunked_lightning_attention
