"""Prepared GPU check for the Triton lightning-attention kernels (run where a CUDA GPU is available).

    python benchmarks/gpu_lightning_check.py [--quick] [--json PATH]

1. Correctness: Triton (backend="triton") vs float64 naive on the GPU, and vs the blocked PyTorch path, for
   float32 / bfloat16 / float16, odd lengths and head dims, Dk != Dv, initial states, packed sequences
   (outputs, final states and the gradients of q, k, v, initial state). Also the auto dispatch picks Triton.
   If flash-linear-attention is installed: its chunk_simple_gla(g_gamma = -slope, scale = 1.0) gives the same
   outputs (the MiniMax recurrence; fla's chunk_lightning_attn is a different decay, see the reference §1.3).
   lumos.ops.lightning_attn (FLA's layout, packed LongTensor offsets on the GPU, a bf16 initial state) against
   the head-first op, eagerly and under torch.compile(fullgraph=True) (backends "eager" and "inductor"),
   forward and backward; and against fla's chunk_simple_gla with FLA's default scale when fla is installed.
2. Speed and memory: forward and forward+backward for L = 1K..32K (B=1, H=8 and 64, D=64 and 128, bf16):
   lumos Triton, lumos chunked (PyTorch on GPU), fla chunk_simple_gla (if installed), SDPA causal (flash).
   Times from CUDA events (median of runs after warm-up), peak memory from torch.cuda.max_memory_allocated.
Exit status 1 if any correctness check fails, 2 if there is no CUDA device.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from lumos.ops import lightning_attention, lightning_attn
from lumos.ops.lightning import api
from lumos.testing import rel_rms


def _fla():
    try:
        from fla.ops.simple_gla import chunk_simple_gla
    except ImportError:
        return None
    return chunk_simple_gla


def _run(backend, q, k, v, slope, s0, cu):
    o, fin = lightning_attention(q, k, v, slope, s0, True, cu, backend=backend)
    g = torch.Generator(device=q.device).manual_seed(0)
    do = torch.randn(o.shape, generator=g, device=q.device).to(o.dtype)
    dfin = torch.randn(fin.shape, generator=g, device=q.device)
    inputs = [t for t in (q, k, v, s0) if t is not None]
    grads = torch.autograd.grad((o.float() * do.float()).sum() + (fin * dfin).sum(), inputs)
    return [o, fin, *grads]


CASES = [  # B, H, L, Dk, Dv, packed lengths, initial state
    (2, 4, 1, 64, 64, None, True),
    (2, 4, 63, 64, 64, None, True),
    (1, 3, 500, 60, 60, None, False),
    (2, 2, 777, 48, 80, None, True),
    (1, 4, 1000, 96, 128, None, True),
    (1, 4, 0, 64, 64, [100, 0, 257, 1, 300], True),
]
TOL = {torch.float32: 2e-5, torch.bfloat16: 2e-2, torch.float16: 5e-3}


def correctness(quick: bool) -> list[dict]:
    dev = torch.device("cuda")
    rows = []
    assert api.resolve_backend("auto", torch.zeros(1, 1, 1, 1, device=dev)).__name__ == "triton_lightning_attention"
    for B, H, L, Dk, Dv, lens, has_s0 in CASES[: 3 if quick else None]:
        cu = None if lens is None else torch.tensor([0, *torch.tensor(lens).cumsum(0).tolist()], device=dev)
        L = L if lens is None else sum(lens)
        N = B if cu is None else len(lens)
        for dtype in (torch.float32, torch.bfloat16, torch.float16):
            g = torch.Generator(device=dev).manual_seed(L + Dk)
            q, k, v = ((torch.randn(B, H, L, d, generator=g, device=dev) * 0.3).to(dtype).requires_grad_()
                       for d in (Dk, Dk, Dv))
            slope = torch.linspace(0.01, 1.0, H, device=dev)
            s0 = torch.randn(N, H, Dk, Dv, generator=g, device=dev).requires_grad_() if has_s0 else None
            tri = _run("triton", q, k, v, slope, s0, cu)
            ref = _run("naive", *(t.detach().double().requires_grad_() for t in (q, k, v)), slope.double(),
                       None if s0 is None else s0.detach().double().requires_grad_(), cu)
            chk = _run("chunked", q, k, v, slope, s0, cu)
            errs = {n: rel_rms(a, b) for n, a, b in zip(["o", "final", "dq", "dk", "dv", "ds0"], tri, ref)}
            errs_chunked = max(rel_rms(a, b) for a, b in zip(tri, chk))
            ok = max(errs.values()) <= TOL[dtype]
            rows.append({"case": [B, H, L, Dk, Dv, lens], "dtype": str(dtype), **{f"err_{k}": f"{v:.1e}" for k, v in
                         errs.items()}, "vs_chunked": f"{errs_chunked:.1e}", "pass": ok})
    rows += fla_entry_point(dev)
    fla = _fla()
    if fla is not None:
        q, k, v = (torch.randn(1, 4, 1000, 64, device=dev, dtype=torch.bfloat16) * 0.3 for _ in range(3))
        slope = torch.linspace(0.01, 1.0, 4, device=dev)
        ours, _ = lightning_attention(q, k, v, slope, backend="triton")
        theirs, _ = fla(*(t.transpose(1, 2).contiguous() for t in (q, k, v)), g_gamma=-slope, scale=1.0)
        err = rel_rms(ours, theirs.transpose(1, 2))
        rows.append({"case": "vs fla chunk_simple_gla", "dtype": "bf16", "err_o": f"{err:.1e}", "pass": err < 2e-2})
    return rows


def fla_entry_point(dev: torch.device) -> list[dict]:
    """lightning_attn (B, T, H, D) on the GPU: vs the head-first op, compiled vs eager, vs fla if installed."""
    g = torch.Generator(device=dev).manual_seed(0)
    T, H, D = 777, 4, 64
    q, k, v = ((torch.randn(1, T, H, D, generator=g, device=dev) * 0.3).bfloat16().requires_grad_() for _ in range(3))
    s0 = torch.randn(3, H, D, D, generator=g, device=dev).bfloat16().requires_grad_()
    g_gamma = -torch.linspace(0.01, 1.0, H, device=dev)
    cu = torch.tensor([0, 100, 357, T], device=dev)

    def run(fn):
        o, fin = fn(q, k, v, s0)
        grads = torch.autograd.grad((o.float() * torch.cos(o.float())).sum() + (fin**2).sum(), [q, k, v, s0])
        return [o, fin, *grads]

    def fla_door(q, k, v, s0):
        return lightning_attn(q, k, v, g_gamma=g_gamma, initial_state=s0, output_final_state=True, cu_seqlens=cu)

    def head_first(q, k, v, s0):
        o, fin = lightning_attention(*((t * D**-0.5 if t is q else t).transpose(1, 2) for t in (q, k, v)), -g_gamma,
                                     s0.float(), True, cu)
        return o.transpose(1, 2), fin

    eager = run(fla_door)
    rows = [{"case": "lightning_attn vs head-first", "dtype": "bf16",
             "err_o": f"{max(rel_rms(a, b) for a, b in zip(eager, run(head_first))):.1e}"}]
    for backend in ("eager", "inductor"):
        torch._dynamo.reset()
        compiled = run(torch.compile(fla_door, fullgraph=True, backend=backend))
        rows.append({"case": f"lightning_attn compiled ({backend}) vs eager", "dtype": "bf16",
                     "err_o": f"{max(rel_rms(a, b) for a, b in zip(compiled, eager)):.1e}"})
    fla = _fla()
    if fla is not None:
        theirs, fin = fla(q, k, v, g_gamma=g_gamma, initial_state=s0.float(), output_final_state=True,
                          cu_seqlens=cu)
        err = max(rel_rms(eager[0], theirs), rel_rms(eager[1], fin))
        rows.append({"case": "lightning_attn vs fla chunk_simple_gla (default scale)", "dtype": "bf16",
                     "err_o": f"{err:.1e}"})
    for r in rows:
        r["pass"] = float(r["err_o"]) < 2e-2
    return rows


def _time(fn, reps: int) -> float:
    for _ in range(2):
        fn()
    times = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        torch.cuda.synchronize()
        times.append(a.elapsed_time(b))
    return statistics.median(times)


def speed(quick: bool) -> list[dict]:
    dev = torch.device("cuda")
    fla = _fla()
    rows = []
    shapes = [(1, 8, 64), (1, 64, 128)] if not quick else [(1, 8, 64)]
    lengths = [1024, 4096] if quick else [1024, 2048, 4096, 8192, 16384, 32768]
    for B, H, D in shapes:
        for L in lengths:
            q, k, v = (torch.randn(B, H, L, D, device=dev, dtype=torch.bfloat16) * 0.3 for _ in range(3))
            slope = torch.linspace(0.01, 1.0, H, device=dev)
            impls = {
                "lumos_triton": lambda q, k, v, s=slope: lightning_attention(q, k, v, s, backend="triton")[0],
                "lumos_chunked_torch": lambda q, k, v, s=slope: lightning_attention(q, k, v, s, backend="chunked")[0],
                "sdpa_causal": lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True),
            }
            if fla is not None:
                impls["fla_chunk_simple_gla"] = lambda q, k, v, s=slope: fla(
                    *(t.transpose(1, 2) for t in (q, k, v)), g_gamma=-s, scale=1.0)[0]
            for name, fn in impls.items():
                for mode in ("fwd", "fwd+bwd"):
                    args = [t.detach().requires_grad_(mode == "fwd+bwd") for t in (q, k, v)]

                    def step(fn=fn, args=args, mode=mode):
                        if mode == "fwd":
                            with torch.no_grad():
                                fn(*args)
                        else:
                            fn(*args).float().sum().backward()

                    torch.cuda.reset_peak_memory_stats()
                    base = torch.cuda.memory_allocated()
                    ms = _time(step, 5 if quick else 10)
                    peak = (torch.cuda.max_memory_allocated() - base) / 2**20
                    rows.append({"impl": name, "mode": mode, "B": B, "H": H, "D": D, "L": L, "ms": round(ms, 3),
                                 "peak_mem_mb": round(peak, 1)})
    return rows


def _print(rows: list[dict]) -> None:
    keys = list(dict.fromkeys(k for r in rows for k in r))
    print(" | ".join(keys))
    for r in rows:
        print(" | ".join(str(r.get(k, "")) for k in keys))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        print("No CUDA device: the Triton kernels can only be checked on a GPU "
              "(on CPU they are tested through the Triton interpreter in tests/ops/lightning/test_triton.py).")
        return 2
    print(f"device: {torch.cuda.get_device_name()}; fla installed: {_fla() is not None}")
    checks = correctness(args.quick)
    _print(checks)
    rows = speed(args.quick)
    _print(rows)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"device": torch.cuda.get_device_name(), "checks": checks, "rows": rows},
                                        indent=1))
    return 0 if all(c["pass"] for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
