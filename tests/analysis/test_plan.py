"""Deployment planner: every part by hand on a small config, the layouts' rules, MiniMax-M1 facts, the CLI."""

from __future__ import annotations

import math

import pytest

from analysis.test_sizes import SMALL
from lumos.analysis.flops import minimax_m1
from lumos.analysis.plan import (
    GiB,
    PlanSpec,
    activation_bytes_per_token,
    activation_terms,
    memory,
    plan,
    smallest_fit,
)
from lumos.analysis.sizes import preset_config
from lumos.cli.main import main
from lumos.core.errors import LumosError
from lumos.core.io import read_jsonl
from lumos.models import MiniMaxConfig

# Small config (tests/analysis/test_sizes.py): h 8, 2 heads × 4, 1 KV head, experts 4 × (3·8·6 = 144), top-2,
# vocab 10, layers [lightning, softmax]; per-layer params 952 and 816, 1,936 in all; block_size 4.


def spec(**kw) -> PlanSpec:
    base = dict(gpus=2, gpu_memory_gib=1.0, context=16, batch=3, name="small")
    base.update(kw)
    return PlanSpec(MiniMaxConfig(**SMALL), **base)


def test_activation_bytes_by_hand():
    cfg = MiniMaxConfig(**SMALL)
    t = {k: sum(v.values()) for k, v in activation_terms(cfg).items()}
    # lightning: 2h·2 B + 6·H·d·2 B + 4·H·d·2 B + fp32 state H·d·d·4 B every 4 tokens = 32 + 96 + 64 + 32
    assert t["lightning"] == 224
    # softmax: 2h·2 + (q 8 + k 4 + v 4)·2 + o 8·2 + lse 2 heads·4 = 32 + 32 + 16 + 8
    assert t["softmax"] == 88
    # MoE: 2h·2 + router 4·4 + top-2 · (2h + 3·6)·2 = 32 + 16 + 136
    assert t["moe"] == 184
    a = activation_bytes_per_token(cfg)
    assert a == {"all layers": 224 + 184 + 88 + 184, "largest layer": 408, "layer inputs": 2 * 8 * 2, "model": 32}


def test_inference_fsdp_by_hand():
    b = memory(spec(), "fsdp")
    p = b.parts
    assert b.degrees == {"dp": 2, "ep": 1, "tp": 1}
    assert p["weights (bf16)"] == 1936 / 2 * 2
    assert p["gathered layers (2 layers)"] == 2 * 952 * 2                     # the largest layer, twice, bf16
    assert p["KV cache (softmax layers)"] == 2 * 16 * 1 * (2 * 1 * 4) * 2     # ceil(3/2) seqs × L × 1 layer × K,V
    assert p["lightning states (H, D, D)"] == 2 * 1 * 2 * 4 * 4 * 4          # seqs × 1 layer × H·d·d fp32
    assert p["prefill workspace"] == 32 * (408 + 32)                          # min(8192, 2·16) tokens
    assert b.totals["inference"] == 1936 + 3808 + 512 + 256 + 14080


def test_inference_tp_and_ep_by_hand():
    tp = memory(spec(), "tp")
    small = 8 + 2 * (16 + 32) + 8                                              # norms + routers stay whole
    assert tp.parts["weights (bf16)"] == ((1936 - small) / 2 + small) * 2
    assert tp.parts["gathered layers (2 layers)"] == 0
    assert tp.parts["KV cache (softmax layers)"] == 3 * 16 * 1 * 2 * 1 * 4 * 2  # all 3 seqs; 1 KV head per rank
    assert tp.parts["lightning states (H, D, D)"] == 3 * 1 * 1 * 16 * 4         # 1 of 2 heads per rank
    assert tp.parts["prefill workspace"] == 48 / 2 * 440                        # sequence parallel
    assert tp.totals["inference"] == 2048 + 768 + 192 + 10560
    ep = memory(spec(), "fsdp+ep")
    assert ep.degrees == {"dp": 1, "ep": 2, "tp": 1}
    # dense part of the layer gathered over all ranks; the local experts are whole (dp = 1): nothing to gather
    assert ep.parts["gathered layers (2 layers)"] == 2 * (952 - 4 * 144) * 2
    assert ep.totals["inference"] == 1936 + 1504 + 512 + 256 + 14080
    # 8 GPUs, 4 experts: ep 4, dp 2. lumos's layout splits every parameter 4 ways (replicated over dp); the
    # fully sharded one 8 ways, and gathers its 4/4 = 1 expert per layer on top of the dense part
    ep8 = memory(spec(gpus=8), "fsdp+ep")
    assert ep8.degrees == {"dp": 2, "ep": 4, "tp": 1}
    assert ep8.parts["weights (bf16)"] == 1936 / 4 * 2
    assert ep8.parts["gathered layers (2 layers)"] == 2 * 376 * 2
    full = memory(spec(gpus=8), "fsdp+ep-full")
    assert full.parts["weights (bf16)"] == 1936 / 8 * 2
    assert full.parts["gathered layers (2 layers)"] == 2 * (376 + 144) * 2
    assert full.parts["KV cache (softmax layers)"] == 1 * 16 * 2 * 4 * 2          # ceil(3/8) = 1 sequence
    bad = memory(spec(gpus=3), "tp")
    assert not bad.valid and "divide the 2 attention heads" in bad.why_not
    assert "common factor > 1 with the 4 experts" in memory(spec(gpus=3), "fsdp+ep").why_not
    assert not memory(spec(gpus=3), "fsdp+tp").valid and memory(spec(gpus=6), "fsdp+tp").degrees["tp"] == 2


def test_training_fsdp_by_hand():
    b = memory(spec(train=True), "fsdp")
    p = b.parts
    assert (p["weights (fp32 shards)"], p["gradients (fp32)"], p["AdamW m, v (fp32)"]) == (3872, 3872, 7744)
    assert p["gathered layers (2 bf16 + 1 layer's bf16 grads)"] == 3 * 952 * 2
    assert p["logits"] == 32 * 10 * 6                       # every token of the micro-step at once (as lumos)
    assert p["activations (every layer)"] == 32 * (680 + 32)  # lumos's trainer has no activation checkpointing
    assert set(p) == {"weights (fp32 shards)", "gradients (fp32)", "AdamW m, v (fp32)", "logits",
                      "gathered layers (2 bf16 + 1 layer's bf16 grads)", "activations (every layer)"}
    assert b.totals == {"training": 23120 + 22784}
    assert memory(spec(train=True, logits_chunk=8), "fsdp").parts["logits"] == 8 * 10 * 6


def test_quantized_inference_by_hand():
    """int4: 0.5 B + a bf16 scale per 128 weights = 0.515625 B per projection/expert weight; embedding, head, norms
    and routers stay bf16. SMALL: total 1936 = 1664 quantizable + 160 embedding/head + 112 norms/routers."""
    w = 0.5 + 2 / 128
    b = memory(spec(dtype="int4"), "fsdp")
    assert b.parts["weights (int4)"] == (1664 * w + 160 * 2) / 2 + 112 * 2 / 2       # = 701.0
    # gathered: the lightning layer's dense part 376 (56 of it norms + router + attention norm) and, dp = 2 > 1,
    # its 4 experts (576); twice
    assert b.parts["gathered layers (2 layers)"] == 2 * ((376 - 56) * w + 56 * 2 + 576 * w)
    assert b.parts["KV cache (softmax layers)"] == 2 * 16 * 1 * (2 * 1 * 4) * 2    # int4 weights leave KV bf16
    fp8 = memory(spec(dtype="fp8"), "fsdp")
    assert fp8.parts["weights (fp8)"] == (1664 * (1 + 4 / 16384) + 320) / 2 + 112
    assert fp8.parts["KV cache (softmax layers)"] == 2 * 16 * 1 * (2 * 1 * 4) * 1  # fp8 weights → fp8 KV
    assert memory(spec(dtype="int8", kv_dtype="int8"), "fsdp").parts["KV cache (softmax layers)"] == 256
    ep = memory(spec(dtype="int8"), "fsdp+ep")                                        # ep 2: 1/2 of everything
    assert ep.parts["weights (int8)"] == (1664 * (1 + 2 / 128) + 272 * 2) / 2
    assert memory(spec(), "fsdp").parts["weights (bf16)"] == 1936                     # bf16: 2 B each, 2 GPUs


def test_fp8_halves_m1_gpus_at_128k():
    m1 = preset_config("minimax-m1")
    kw = dict(gpus=8, gpu_memory_gib=80, context=131072, batch=1)
    bf16, fp8 = PlanSpec(m1, **kw), PlanSpec(m1, dtype="fp8", **kw)
    assert smallest_fit(fp8, "tp", "inference") * 2 <= smallest_fit(bf16, "tp", "inference")
    w = memory(bf16, "tp").parts["weights (bf16)"] / memory(fp8, "tp").parts["weights (fp8)"]
    assert 1.9 < w < 2.0                                    # embedding, head, norms, routers stay bf16


def test_dtype_errors():
    with pytest.raises(LumosError, match="--dtype / --kv-dtype plan inference"):
        spec(train=True, dtype="fp8")
    with pytest.raises(LumosError, match="'--kv-dtype' parameter of lumos plan must be one of"):
        spec(kv_dtype="int4")
    with pytest.raises(LumosError, match=r"'--context' parameter of lumos plan must be an int in the range"):
        spec(context=10 ** 400)


def test_smallest_fit_is_the_first_count_that_fits():
    s = spec(gpu_memory_gib=14000 / GiB, headroom=0.0, batch=4)
    n = smallest_fit(s, "fsdp", "inference")
    assert n is not None and memory(s, "fsdp", n).totals["inference"] <= 14000
    assert all(memory(s, "fsdp", k).totals["inference"] > 14000 for k in range(1, n))
    assert smallest_fit(spec(gpu_memory_gib=1e-9), "fsdp", "inference", max_gpus=64) is None


def test_minimax_m1_facts():
    m1 = preset_config("minimax-m1")
    s = PlanSpec(m1, gpus=1, gpu_memory_gib=80, context=131072, batch=1)
    b = memory(s, "fsdp")
    assert b.parts["KV cache (softmax layers)"] == 131072 * 10 * 2 * 8 * 128 * 2    # 40 KiB per token
    assert b.parts["lightning states (H, D, D)"] == 70 * 4 * 2 ** 20                 # 4 MiB per layer (§1.5)
    assert b.parts["weights (bf16)"] == 2 * 456_089_655_296
    twin = PlanSpec(MiniMaxConfig(**{**m1.to_dict(), "attn_type_list": [1] * 80}), gpus=1, gpu_memory_gib=80,
                    context=131072, batch=1)
    assert memory(twin, "fsdp").parts["KV cache (softmax layers)"] == 8 * b.parts["KV cache (softmax layers)"]
    r = plan(s)
    assert r["decode_gflops_per_token"] == pytest.approx(minimax_m1().per_token(131072) / 1e9)
    assert r["all_softmax_decode_gflops_per_token"] > 3 * r["decode_gflops_per_token"]
    assert math.ceil(2 * 456.09e9 / (72 * GiB)) <= r["smallest"]["tp"]["inference"]  # at least the weights


def test_spec_reports_every_problem():
    with pytest.raises(LumosError, match=r"3 problems.*--gpus.*--gpu-memory.*--headroom"):
        spec(gpus=0, gpu_memory_gib=-1, headroom=1.5)


def test_plan_cli(tmp_path, capsys):
    out = tmp_path / "p"
    assert main(["plan", "--gpus", "16", "--gpu-memory", "80", "--context", "131072", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "456.1B parameters, 45.9B active" in text and "Assumptions" in text and "GFLOPs per token" in text
    assert text.isascii() and max(len(line) for line in text.splitlines()[:-1]) <= 120   # the run path may be long
    assert (out / "plots" / "memory_vs_context.png").is_file() and (out / "report.html").is_file()
    assert [r["layout"] for r in read_jsonl(out / "metrics.jsonl")] == ["fsdp", "fsdp+ep", "fsdp+ep-full", "tp", "fsdp+tp"]
    assert main(["plan", "--gpus", "8", "--gpu-memory", "141", "--context", "65536", "--train",
                 "--out", str(tmp_path / "t")]) == 0
    text = capsys.readouterr().out
    assert "No activation checkpointing: lumos's trainer" in text and "total (GiB)" in text
    assert text.isascii() and max(len(line) for line in text.splitlines()[:-1]) <= 120
    assert main(["plan", "--gpus", "8", "--gpu-memory", "141", "--context", "65536", "--train", "--wide",
                 "--out", str(tmp_path / "w")]) == 0
    assert "activations (every layer) (GiB)" in capsys.readouterr().out
    assert main(["plan", "--gpus", "0", "--gpu-memory", "80", "--context", "10", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "'--gpus' parameter of lumos plan must be an int in the range [1, " in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()
    assert main(["plan", "--model", "nope", "--gpus", "1", "--gpu-memory", "80", "--context", "10"]) == 2
    assert "neither a known model name" in capsys.readouterr().err


def test_plan_cli_small_model_units(tmp_path, capsys):
    """A small model reads in K parameters, KFLOPs and MiB, not "0.0B" and "0.0 GFLOPs"."""
    cfg = tmp_path / "small.json"
    MiniMaxConfig(**SMALL).to_json(cfg)
    assert main(["plan", "--model", str(cfg), "--gpus", "3", "--gpu-memory", "0.001", "--context", "64",
                 "--out", str(tmp_path / "s")]) == 0
    text = capsys.readouterr().out
    assert "small: 1.9K parameters, 1.2K active per token" in text      # 1936; 1936 - 160 - 2 * 2 * 144
    assert "KFLOPs per token" in text and "total (KiB)" in text and "[1] fsdp+ep on 3 GPUs" in text


def _saved_bytes(cfg: MiniMaxConfig, tokens: int) -> int:
    """Bytes autograd saves for backward in one bf16 forward of lumos's HybridLM (parameters excluded)."""
    import torch

    from lumos.models import HybridLM

    torch.manual_seed(0)
    model = HybridLM(cfg).to(torch.bfloat16)
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack(t):
        ptr = t.untyped_storage().data_ptr()
        if ptr not in params:
            seen[ptr] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(torch.randint(0, cfg.vocab_size, (1, tokens)))
    return sum(seen.values())


def test_activation_count_against_autograd():
    """The planner counts the bf16 tensors a fused implementation saves; lumos's eager modules save more (fp32
    upcasts in the norms and the lightning attention), by a fixed factor per token: measured 1.55× here."""
    cfg = MiniMaxConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, head_dim=16, num_key_value_heads=2,
                        intermediate_size=96, num_local_experts=4, num_experts_per_tok=2, attn_type_list=[0, 1],
                        rotary_dim=8, block_size=64)
    a = activation_bytes_per_token(cfg)
    ratios = [_saved_bytes(cfg, t) / (t * (a["all layers"] + a["model"])) for t in (128, 256)]
    assert all(1.0 <= r <= 2.0 for r in ratios), ratios
    assert abs(ratios[0] - ratios[1]) < 0.05, ratios       # both linear in the token count
