"""Demo section "Lightning attention": exactness of the blocked op against both oracles, and its speed against
transformers' MiniMax block loop, measured on this machine."""

from __future__ import annotations

import time

import torch

from lumos.core.numerics import rel_rms
from lumos.ops.lightning import (
    chunked_lightning_attention,
    naive_lightning_attention,
    recurrent_lightning_attention,
)
from lumos.ops.lightning.transformers_loop import transformers_blocked_loop
from lumos.studies.demo import DemoContext, demo_section


def _inputs(B, H, L, D, seed, dtype=torch.float32, grad=False):
    g = torch.Generator().manual_seed(seed)
    q, k, v = ((torch.randn(B, H, L, D, generator=g) * 0.2).to(dtype).requires_grad_(grad) for _ in range(3))
    s0 = torch.randn(B, H, D, D, generator=g).to(torch.float64 if dtype == torch.float64 else torch.float32)
    slope = torch.tensor([2 ** (-8 * (h + 1) / H) for h in range(H)])
    return q, k, v, slope, s0.requires_grad_(grad)


def _outputs_and_grads(fn, q, k, v, slope, s0):
    o, fin = fn(q, k, v, slope, s0, True)
    g = torch.Generator().manual_seed(1)
    loss = (o * torch.randn(o.shape, generator=g).to(o.dtype)).sum() + (fin * torch.randn(fin.shape, generator=g)
                                                                         .to(fin.dtype)).sum()
    return [o, fin, *torch.autograd.grad(loss, [q, k, v, s0])]


def _accuracy_rows(L: int, D: int, seed: int) -> list[dict]:
    q, k, v, slope, s0 = _inputs(1, 4, L, D, seed, grad=True)
    fast = _outputs_and_grads(chunked_lightning_attention, q, k, v, slope, s0)
    q64, k64, v64, s064 = (t.detach().double().requires_grad_(True) for t in (q, k, v, s0))
    names = ["output", "final state", "dq", "dk", "dv", "d initial state"]
    refs = {"naive (fp64, quadratic)": _outputs_and_grads(naive_lightning_attention, q64, k64, v64, slope.double(), s064),
            "recurrent (fp64, token loop)": _outputs_and_grads(recurrent_lightning_attention, q64, k64, v64,
                                                               slope.double(), s064)}
    rows = []
    for ref_name, ref in refs.items():
        for name, a, b in zip(names, fast, ref):
            rows.append({"reference": ref_name, "tensor": name, "L": L,
                         "max abs err": f"{float((a.detach().double() - b.detach()).abs().max()):.2e}", "rel RMS err": f"{rel_rms(a, b):.2e}"})
    return rows


def _speed_rows(lengths: list[int], reps: int, seed: int) -> list[dict]:
    rows = []
    for L in lengths:
        q, k, v, slope, _ = _inputs(1, 8, L, 64, seed)
        args = (q, k, v, slope)
        impls = {"lumos chunked": lambda a=args: chunked_lightning_attention(*a),
                 "transformers loop": lambda a=args: transformers_blocked_loop(*a)}
        best = dict.fromkeys(impls, float("inf"))
        with torch.no_grad():
            for _ in range(reps):
                for name, fn in impls.items():  # interleaved: both see the same machine load
                    t = time.perf_counter()
                    fn()
                    best[name] = min(best[name], time.perf_counter() - t)
        rows.append({"L": L, "lumos chunked ms": round(best["lumos chunked"] * 1e3, 1),
                     "transformers loop ms": round(best["transformers loop"] * 1e3, 1),
                     "speed-up": round(best["transformers loop"] / best["lumos chunked"], 2)})
    return rows


@demo_section("Lightning attention", order=10)
def lightning_section(ctx: DemoContext) -> None:
    ctx.section.text(
        "MiniMax's lightning attention: S_t = λ_h S_{t−1} + k_tᵀ v_t, o_t = q_t S_t with λ_h = exp(−s_h). "
        "lumos computes it in blocks (intra-block masked products and inter-block states, vectorised over blocks, "
        "with a recompute-based backward whose memory is linear in L) and checks it against two float64 oracles: "
        "the quadratic masked form and the token-by-token recurrence."
    )
    L_acc = 200 if ctx.quick else 1000
    acc = _accuracy_rows(L_acc, 32 if ctx.quick else 64, ctx.seed)
    for r in acc:
        ctx.log(kind="accuracy", **r)
    ctx.section.table(acc, caption=f"Blocked op in float32 vs float64 oracles (B=1, H=4, L={L_acc}, non-zero "
                                   "initial state; gradients under random output/state cotangents).")
    lengths = [256, 512] if ctx.quick else [2048, 8192]
    speed = _speed_rows(lengths, 2 if ctx.quick else 3, ctx.seed)
    for r in speed:
        ctx.log(kind="speed", **r)
    ctx.section.table(speed, caption=f"Forward time, B=1, H=8, D=64, fp32, {torch.get_num_threads()} CPU threads, "
                                     "best of interleaved runs. The baseline is transformers' MiniMax 256-token "
                                     "block loop (lumos.ops.lightning.transformers_loop, checked against the module).")
    ctx.section.note("Full benchmark (memory, backward, SDPA, matmul peak): python benchmarks/lightning_attention.py")
