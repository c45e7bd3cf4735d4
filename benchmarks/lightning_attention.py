"""Lightning attention on CPU: lumos chunked vs transformers' MiniMax block loop vs SDPA (softmax) vs naive.

    python benchmarks/lightning_attention.py [--quick] [--json PATH] [--tune] [--threads N]

Rows {impl, mode, B, H, D, L, ms, peak_mem_mb, gflops} for B=1, H=8, D=64, fp32, L = 1K..32K, plus the
machine's matmul GFLOP/s (a large fp32 GEMM) measured in the same run, and the issue's target checks.

How it measures (all side by side in one run, so ratios survive a noisy shared machine):
- ms: best wall time of several runs (calls over 2 s: of two), the implementations interleaved round-robin at
  each L; cpu_ms: the same runs' best CPU time of this process (less sensitive to other processes on a shared
  machine; with --threads 1 it equals the wall time on an idle one).
- gflops: the matmul FLOPs the implementation itself executes (masked halves counted where it computes them:
  chunked/transformers compute full C×C blocks; SDPA causal counted as half the square; naive the full square)
  divided by ms. Formulas in :func:`flops`.
- peak_mem_mb: in a fresh subprocess per (impl, L): inputs made, RSS read, the kernel's RSS high-water mark
  reset (/proc/self/clear_refs), one forward (or forward+backward) run; peak = VmHWM − RSS before. It counts
  every page the op touches (temporaries, autograd-saved tensors, outputs, gradients), not the inputs.
  (--quick probes only lumos_chunked.)
--tune sweeps the block size and span size of the chunked path at L=16K (how DEFAULT_BLOCK_SIZE was chosen).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from lumos.core.progress import track
from lumos.ops.lightning import chunk, chunked_lightning_attention, naive_lightning_attention
from lumos.ops.lightning.transformers_loop import transformers_blocked_loop

IMPLS = ("lumos_chunked", "transformers_loop", "sdpa_causal", "naive")
TF_BLOCK = 256
# Largest L each implementation runs at (SDPA and naive are quadratic).
MAX_L = {("sdpa_causal", "fwd"): 8192, ("sdpa_causal", "fwd+bwd"): 4096, ("naive", "fwd"): 4096,
         ("naive", "fwd+bwd"): 2048}


def make_inputs(B: int, H: int, L: int, D: int, grad: bool, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    q, k, v = ((torch.randn(B, H, L, D, generator=g) * 0.1).requires_grad_(grad) for _ in range(3))
    slope = torch.tensor([2 ** (-8 * (h + 1) / H) for h in range(H)])
    return q, k, v, slope


def call(impl: str, q, k, v, slope, block_size: int | None = None):
    if impl == "lumos_chunked":
        return chunked_lightning_attention(q, k, v, slope, block_size=block_size)[0]
    if impl == "transformers_loop":
        return transformers_blocked_loop(q, k, v, slope, TF_BLOCK)[0]
    if impl == "sdpa_causal":
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)
    if impl == "naive":
        return naive_lightning_attention(q, k, v, slope)[0]
    raise ValueError(impl)


def run_once(impl: str, mode: str, q, k, v, slope, block_size: int | None = None) -> None:
    if mode == "fwd":
        with torch.no_grad():
            call(impl, q, k, v, slope, block_size)
    else:
        o = call(impl, q, k, v, slope, block_size)
        o.backward(torch.ones_like(o))
        q.grad = k.grad = v.grad = None


def flops(impl: str, mode: str, B: int, H: int, L: int, D: int, block_size: int | None = None) -> float:
    """Matmul FLOPs the implementation executes (see module docstring)."""
    if impl in ("lumos_chunked", "transformers_loop"):
        C = TF_BLOCK if impl == "transformers_loop" else (block_size or chunk.DEFAULT_BLOCK_SIZE)
        Lp = math.ceil(L / C) * C
        fwd = 2 * Lp * C * 2 * D + 4 * Lp * D * D  # QKᵀ, AV per block; Q·S and KᵀV
        # backward: lumos recomputes QKᵀ (5 C-sized products, 4 state products); autograd loop: 4 and 4
        bwd = 2 * Lp * C * (5 * D if impl == "lumos_chunked" else 4 * D) + 8 * Lp * D * D
    elif impl == "sdpa_causal":
        fwd = 2 * L * L * D  # (QKᵀ + PV) over the causal half
        bwd = 2.5 * fwd
    else:
        fwd = 4 * L * L * D + 4 * L * D * D
        bwd = 2 * fwd
    return B * H * (fwd + (bwd if mode == "fwd+bwd" else 0))


def matmul_gflops(n: int, reps: int) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(reps))
    return 2 * n**3 / best / 1e9


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def _timed_both(fn) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of one call."""
    t, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t, time.process_time() - c


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def _reset_peak_rss() -> bool:
    """Reset the kernel's RSS high-water mark to the current RSS (Linux >= 4.0: write 5 to clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak_rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def measure_memory_here(impl: str, B: int, H: int, L: int, D: int) -> dict:
    """Peak extra RSS (MB) of one forward and of one forward+backward over the RSS with the inputs made.
    Call in a fresh process (a fresh heap: no freed-but-kept memory to hide new allocations)."""
    out = {}
    for mode in ("fwd", "fwd+bwd"):
        if L > MAX_L.get((impl, mode), 1 << 60):
            continue
        run_once(impl, mode, *make_inputs(B, H, min(L, 512), D, grad=mode == "fwd+bwd"))  # one-time inits
        q, k, v, slope = make_inputs(B, H, L, D, grad=mode == "fwd+bwd")
        base = _rss_bytes()
        if not _reset_peak_rss() and mode == "fwd+bwd":
            base = min(base, _peak_rss_bytes())  # without a reset the mark already holds the forward's peak
        run_once(impl, mode, q, k, v, slope)
        out[mode] = max(0, _peak_rss_bytes() - base) / 2**20
        del q, k, v
    return out


def measure_memory(impl: str, B: int, H: int, L: int, D: int, threads: int) -> dict:
    cmd = [sys.executable, __file__, "--_memory", impl, str(B), str(H), str(L), str(D), "--threads", str(threads)]
    # Fixed glibc mmap threshold: every allocation >= 64 KiB gets fresh pages and returns them when freed, so
    # RSS follows live memory instead of reusing (and hiding) heap kept from earlier allocations.
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="0")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"memory probe {impl} L={L} failed: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def bench_length(L: int, B: int, H: int, D: int, reps: int, threads: int, memory_impls: tuple[str, ...]) -> list[dict]:
    rows = []
    for mode in ("fwd", "fwd+bwd"):
        impls = [i for i in IMPLS if L <= MAX_L.get((i, mode), 1 << 60)]
        inputs = make_inputs(B, H, L, D, grad=mode == "fwd+bwd")
        best, cpu, slow = {}, {}, set()
        for impl in impls:  # warm-up; calls slower than 2 s are timed once more only
            best[impl], cpu[impl] = _timed_both(lambda impl=impl, mode=mode, inputs=inputs: run_once(impl, mode, *inputs))
            if best[impl] > 2.0:
                slow.add(impl)
        best = dict.fromkeys(impls, float("inf"))
        cpu = dict.fromkeys(impls, float("inf"))
        for rep in range(reps):
            for impl in impls:  # round-robin: every implementation sees the same machine load
                if rep and impl in slow:
                    continue
                w, c = _timed_both(lambda impl=impl, mode=mode, inputs=inputs: run_once(impl, mode, *inputs))
                best[impl], cpu[impl] = min(best[impl], w), min(cpu[impl], c)
        for impl in impls:
            rows.append({"impl": impl, "mode": mode, "B": B, "H": H, "D": D, "L": L, "ms": round(best[impl] * 1e3, 2),
                         "cpu_ms": round(cpu[impl] * 1e3, 2), "peak_mem_mb": None,
                         "gflops": round(flops(impl, mode, B, H, L, D) / best[impl] / 1e9, 1)})
    if memory_impls:
        for impl in memory_impls:
            if L > MAX_L.get((impl, "fwd"), 1 << 60):
                continue
            mem = measure_memory(impl, B, H, L, D, threads)
            for r in rows:
                if r["impl"] == impl and r["mode"] in mem:
                    r["peak_mem_mb"] = round(mem[r["mode"]], 1)
    return rows


def tune(B: int, H: int, D: int, L: int, reps: int) -> list[dict]:
    rows = []
    for mode in ("fwd", "fwd+bwd"):
        inputs = make_inputs(B, H, L, D, grad=mode == "fwd+bwd")
        configs = [(C, R) for C in (16, 32, 64, 128, 256) for R in (2048, 8192, 32768)]
        best = dict.fromkeys(configs, float("inf"))
        for _ in range(reps):
            for C, R in configs:
                chunk.SUPER_ROWS = R
                fn = lambda C=C, mode=mode, inputs=inputs: run_once("lumos_chunked", mode, *inputs, C)
                best[(C, R)] = min(best[(C, R)], _timed(fn))
        rows += [{"mode": mode, "block": C, "super_rows": R, "L": L, "ms": round(t * 1e3, 2),
                  "gflops": round(flops("lumos_chunked", mode, B, H, L, D, C) / t / 1e9, 1)} for (C, R), t in best.items()]
    return rows


def print_table(rows: list[dict], keys: list[str]) -> None:
    widths = {k: max(len(k), *(len(str(r.get(k))) for r in rows)) for k in keys}
    print("  ".join(k.rjust(widths[k]) for k in keys))
    for r in rows:
        print("  ".join(str(r.get(k)).rjust(widths[k]) for k in keys))


def target_checks(rows: list[dict], peak: float) -> list[dict]:
    def get(impl, mode, L, key):
        return next((r[key] for r in rows if (r["impl"], r["mode"], r["L"]) == (impl, mode, L)), None)

    checks = []
    Ls = sorted({r["L"] for r in rows})
    L16 = 16384 if 16384 in Ls else Ls[-1]
    lum, tf = get("lumos_chunked", "fwd", L16, "ms"), get("transformers_loop", "fwd", L16, "ms")
    if lum and tf:
        checks.append({"check": f"fwd L={L16}: lumos / transformers time <= 0.2", "value": round(lum / tf, 3),
                       "pass": lum / tf <= 0.2})
    lum_c, tf_c = get("lumos_chunked", "fwd", L16, "cpu_ms"), get("transformers_loop", "fwd", L16, "cpu_ms")
    if lum_c and tf_c:
        checks.append({"check": f"fwd L={L16}: lumos / transformers CPU time <= 0.2", "value": round(lum_c / tf_c, 3),
                       "pass": lum_c / tf_c <= 0.2})
    gf = get("lumos_chunked", "fwd", L16, "gflops")
    if gf:
        checks.append({"check": f"fwd L={L16}: lumos GFLOP/s >= 50% of matmul peak", "value": round(gf / peak, 3),
                       "pass": gf / peak >= 0.5})
    Lbig, Lsmall = (32768, 4096) if {32768, 4096} <= set(Ls) else (Ls[-1], Ls[0])
    mb, ms_ = get("lumos_chunked", "fwd+bwd", Lbig, "peak_mem_mb"), get("lumos_chunked", "fwd+bwd", Lsmall, "peak_mem_mb")
    if mb and ms_:
        limit = 9 * Lbig / 32768 * 4096 / Lsmall
        checks.append({"check": f"fwd+bwd peak memory L={Lbig} / L={Lsmall} <= {limit:g}", "value": round(mb / ms_, 2),
                       "pass": mb / ms_ <= limit})
    return checks


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny smoke run (seconds)")
    p.add_argument("--json", type=Path, help="write the rows, matmul peak and checks as JSON")
    p.add_argument("--tune", action="store_true", help="sweep chunked block/span sizes at L=16K")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--no-memory", action="store_true", help="skip the per-config memory subprocesses")
    p.add_argument("--_memory", nargs=5, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    if args._memory:
        impl, B, H, L, D = args._memory[0], *map(int, args._memory[1:])
        print(json.dumps(measure_memory_here(impl, B, H, L, D)))
        return 0
    B, H, D = 1, 8, 64
    if args.tune:
        rows = tune(B, H, D, 1024 if args.quick else 16384, 2 if args.quick else 3)
        print_table(rows, ["mode", "block", "super_rows", "L", "ms", "gflops"])
        result = {"tune": rows}
    else:
        lengths = [256, 512] if args.quick else [1024, 2048, 4096, 8192, 16384, 32768]
        peak = matmul_gflops(512 if args.quick else 2048, 3 if args.quick else 5)
        rows = []
        for L in track(lengths, "lengths"):
            mem_impls = () if args.no_memory else ("lumos_chunked",) if args.quick else IMPLS
            rows += bench_length(L, B, H, D, 2 if args.quick else 3, threads, mem_impls)
            print(f"L={L} done: " + ", ".join(f"{r['impl']}/{r['mode']} {r['ms']} ms" for r in rows if r["L"] == L),
                  file=sys.stderr, flush=True)
        peak = max(peak, matmul_gflops(512 if args.quick else 2048, 3))  # re-measured after, best kept
        print(f"matmul peak (fp32 GEMM, {threads} threads): {peak:.1f} GFLOP/s")
        print_table(rows, ["impl", "mode", "B", "H", "D", "L", "ms", "cpu_ms", "peak_mem_mb", "gflops"])
        checks = target_checks(rows, peak)
        print_table(checks, ["check", "value", "pass"])
        result = {"matmul_gflops": round(peak, 1), "threads": threads, "rows": rows, "checks": checks}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
