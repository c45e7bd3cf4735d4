"""Distributed benchmark: FSDP2 and expert parallelism on gloo CPU processes (or one GPU with nccl).

Usage::

    python benchmarks/distributed.py [--quick] [--json PATH] [--worlds 1,2,4] [--backend gloo|nccl]

For each world size W (1, 2, 4 processes; W = 1 runs the sharded code paths on a world of one) and each hybrid
config ("tiny", "small"; quick: "tiny" only), in the same processes:

* ``sft``: tokens/s of SFT steps (``sft_warm_start``; tokens = prompt + demonstration slots of the global batch)
  with FSDP2, and with FSDP2 + expert parallelism over all W ranks (``fsdp+ep``) when W > 1;
* ``rl``: tokens/s of CISPO RL steps (generated + trained response tokens per second of the whole step) and the
  time of the per-step all-gather that gives rollouts an unsharded copy (``gather_s``);
* memory per rank: local parameter + AdamW state bytes and the process's peak RSS (VmHWM);
* ``a2a_bytes_per_layer``: all-to-all bytes one MoE layer moved on rank 0 in one SFT forward (dispatch + combine;
  backward moves as much again);
* ``load``: sharded loading of a saved checkpoint (config "load"; bigger in full mode so RSS is not noise):
  local parameter bytes and the peak-RSS increase during ``load_sharded(path, mesh)`` per rank (after a
  warm-up load of a tiny checkpoint, so imports are not counted), as a fraction of the unsharded model's parameter
  bytes (target for 2 ranks: ≤ 0.6).

On a 2-core machine expect no speed-up from more processes: the point is the memory per rank and correctness.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

CONFIGS = {
    "tiny": dict(hidden_size=32, num_layers=2, num_local_experts=4, num_experts_per_tok=2),
    "small": dict(hidden_size=64, num_layers=4, num_local_experts=4, num_experts_per_tok=2),
}
LOAD_CONFIGS = {  # (hidden, layers, experts, intermediate): about 0.9M and 25M parameters
    True: dict(hidden_size=64, num_layers=2, num_local_experts=4, intermediate_size=256),
    False: dict(hidden_size=256, num_layers=4, num_local_experts=8, intermediate_size=1024),
}


def _status(field: str) -> int:
    """A /proc/self/status field in bytes (VmRSS, VmHWM); 0 where /proc is missing."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _reset_peak() -> None:
    try:  # "5" resets VmHWM to the current RSS (Linux ≥ 4.0)
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def _model(name: str, seed: int = 0):
    from lumos.models import tiny_hybrid

    kw = dict(CONFIGS[name])
    return tiny_hybrid(kw.pop("hidden_size"), kw.pop("num_layers"), seed=seed, **kw)


def _local_bytes(model, optimizer=None) -> int:
    from lumos.distributed.parallel import local_shard

    n = sum(local_shard(p).numel() * p.element_size() for p in model.parameters())
    if optimizer is not None:
        for st in optimizer.state.values():
            n += sum(local_shard(v).numel() * v.element_size() for v in st.values() if torch.is_tensor(v) and v.dim())
    return n


def _sft_tokens(task, steps: int, batch: int, seed: int) -> int:
    from lumos.models.tokenizer import ByteTokenizer
    from lumos.rl.policy import make_policy
    from lumos.rl.sft import demonstration_batch

    tok = ByteTokenizer()
    policy = make_policy(_model("tiny"))
    n = 0
    for step in range(steps):
        b = demonstration_batch(task, task.generate(batch, seed=-(seed * 100_003 + step + 1)), tok, policy)
        n += b.prompt_ids.numel() + b.response_ids.numel()
    return n


def _bench_config(name: str, quick: bool, world: int, rank: int, device: str) -> list[dict]:
    import torch.distributed as dist

    from lumos.distributed.expert_parallel import ExpertParallelMoE
    from lumos.distributed.parallel import gathered_copy
    from lumos.rl.config import RLConfig
    from lumos.rl.experiment import shard_for_training
    from lumos.rl.sft import SFTConfig, sft_warm_start
    from lumos.rl.tasks import get_task
    from lumos.rl.trainer import RLTrainer

    task = get_task("addition", digits=2)
    sft_steps, batch = (2, 8) if quick else (10, 32)
    rl_steps = 1 if quick else 4
    rows = []
    variants = [("fsdp", 1)] + ([("fsdp+ep", world)] if world > 1 else [])
    for variant, ep in variants:
        model = shard_for_training(_model(name).to(device), expert_parallel=ep)
        sft_warm_start(model, task, SFTConfig(steps=1, batch_size=batch, seed=1))      # warm-up (allocations)
        _reset_peak()
        t0 = time.perf_counter()
        sft_warm_start(model, task, SFTConfig(steps=sft_steps, batch_size=batch, seed=0))
        sft_s = time.perf_counter() - t0
        moe = model.model.layers[0].block_sparse_moe
        a2a = (2 * moe.last_sent_rows * model.config.hidden_size * 4) if isinstance(moe, ExpertParallelMoE) else 0
        cfg = RLConfig(steps=rl_steps, prompts_per_step=4 if quick else 8, group_size=4, minibatches=2,
                       max_new_tokens=8, eval_every=0, eval_problems=4, checkpoint_every=0, seed=0)
        tr = RLTrainer(model, task, cfg)
        t1 = time.perf_counter()
        hist = tr.train()
        rl_s = time.perf_counter() - t1
        t2 = time.perf_counter()
        gathered_copy(model)
        gather_s = time.perf_counter() - t2
        gen_tokens = sum(r["response_length"] * r["batch_groups"] * cfg.group_size for r in hist)
        mem = torch.tensor([_local_bytes(model, tr.optimizer), _status("VmHWM")], dtype=torch.float64)
        peak = mem.clone()
        if dist.is_initialized():
            dist.all_reduce(peak, op=dist.ReduceOp.MAX)
        if rank == 0:
            rows.append({
                "bench": "train", "config": name, "variant": variant, "world": world, "ep": ep,
                "params": sum(p.numel() for p in model.parameters()),
                "sft_tokens_per_s": _sft_tokens(task, sft_steps, batch, 0) / sft_s,
                "sft_step_s": sft_s / sft_steps,
                "rl_tokens_per_s": 2 * gen_tokens / rl_s,      # each response token is generated and trained on
                "rl_step_s": rl_s / rl_steps, "gather_s": gather_s,
                "param_optim_bytes_rank0": int(mem[0]), "param_optim_bytes_max_rank": int(peak[0]),
                "peak_rss_mb_max_rank": float(peak[1]) / 2**20, "a2a_bytes_per_layer": a2a,
            })
    return rows


def _bench_load(quick: bool, world: int, rank: int, path: str, total: int, device: str) -> list[dict]:
    import torch.distributed as dist

    from lumos.distributed.parallel import make_mesh
    from lumos.models.checkpoint.sharded import load_sharded

    mesh = make_mesh(1)
    load_sharded(Path(path).parent / "warmup", mesh, dtype=torch.float32, device=device)
    _reset_peak()                  # after a first sharded load of a tiny checkpoint: imports are not counted
    before = _status("VmRSS")
    model = load_sharded(Path(path), mesh, dtype=torch.float32, device=device)
    peak = _status("VmHWM") - before
    t = torch.tensor([model.load_stats["local_param_bytes"], peak, model.load_stats["read_bytes"]],
                     dtype=torch.float64)
    if dist.is_initialized():
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
    del model
    if rank != 0:
        return []
    return [{"bench": "load", "world": world, "unsharded_param_bytes": total,
             "local_param_bytes_max_rank": int(t[0]), "local_fraction": float(t[0]) / total,
             "read_bytes_max_rank": int(t[2]), "peak_rss_increase_bytes_max_rank": int(t[1]),
             "peak_rss_fraction": float(t[1]) / total}]


def _worker(rank: int, world: int, quick: bool, configs: list[str], load_path: str, total: int, out: str,
            device: str) -> None:
    if device == "cuda":
        torch.cuda.set_device(rank)
    rows = _bench_load(quick, world, rank, load_path, total, device)
    for name in configs:
        rows += _bench_config(name, quick, world, rank, device)
    if rank == 0:
        Path(out).write_text(json.dumps(rows))


def _run_world(world: int, backend: str, *args) -> None:
    """``world`` processes (gloo through lumos.distributed.process_group.spawn; nccl with the same rendezvous)."""
    if backend == "gloo":
        from lumos.distributed.process_group import spawn

        spawn(_worker, nprocs=world, args=args)
        return
    import torch.distributed as dist

    from lumos.distributed.process_group import free_port

    if world != 1:
        raise SystemExit("--backend nccl runs world size 1 here (one GPU): use --worlds 1")
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()), RANK="0", WORLD_SIZE="1")
    dist.init_process_group("nccl", rank=0, world_size=1)
    try:
        _worker(0, 1, *args)
    finally:
        dist.destroy_process_group()


def _table(rows: list[dict], keys: list[str]) -> str:
    def fmt(v):
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(fmt(r.get(k, "")) for k in keys) + " |" for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny config, worlds 1 and 2, few steps (CI smoke test)")
    ap.add_argument("--json", default=None, help="write the rows to this JSON file")
    ap.add_argument("--worlds", default=None, help="comma-separated world sizes (default: 1,2 quick; 1,2,4 full)")
    ap.add_argument("--backend", choices=("gloo", "nccl"), default="gloo", help="gloo (CPU) or nccl (GPU, world 1)")
    args = ap.parse_args(argv)
    worlds = [int(w) for w in (args.worlds or ("1,2" if args.quick else "1,2,4")).split(",")]
    configs = ["tiny"] if args.quick else ["tiny", "small"]
    device = "cuda" if args.backend == "nccl" else "cpu"
    os.environ.setdefault("LUMOS_PROGRESS", "0")
    from lumos.models import save_pretrained, tiny_hybrid

    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as d:
        kw = dict(LOAD_CONFIGS[args.quick])
        big = tiny_hybrid(kw.pop("hidden_size"), kw.pop("num_layers"), seed=0, **kw)
        total = sum(p.numel() * p.element_size() for p in big.parameters())
        save_pretrained(big, Path(d) / "ckpt", max_shard_size=8 * 2**20)
        save_pretrained(tiny_hybrid(16, 1, seed=0), Path(d) / "warmup")
        del big
        for world in worlds:
            out = Path(d) / f"rows{world}.json"
            t0 = time.perf_counter()
            _run_world(world, args.backend, args.quick, configs, str(Path(d) / "ckpt"), total, str(out), device)
            print(f"world {world}: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
            rows += json.loads(out.read_text())
    train = [r for r in rows if r["bench"] == "train"]
    load = [r for r in rows if r["bench"] == "load"]
    print(f"## Training steps ({args.backend}, {torch.get_num_threads()} thread(s) per process)\n")
    print(_table(train, ["config", "variant", "world", "params", "sft_tokens_per_s", "rl_tokens_per_s", "rl_step_s",
                         "gather_s", "param_optim_bytes_max_rank", "peak_rss_mb_max_rank", "a2a_bytes_per_layer"]))
    print("\n## Sharded loading (per rank, max over ranks)\n")
    print(_table(load, ["world", "unsharded_param_bytes", "local_param_bytes_max_rank", "local_fraction",
                        "read_bytes_max_rank", "peak_rss_increase_bytes_max_rank", "peak_rss_fraction"]))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
