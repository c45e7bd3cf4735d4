"""Demo section "Hybrid MiniMax model": both checkpoint formats, and decode cost vs context with the hybrid cache."""

from __future__ import annotations

import time
from typing import Any

import torch

from lumos.models.checkpoint.pretrained import INDEX_NAME, checkpoint_size, load_pretrained, save_pretrained
from lumos.models.fast_decode import FastDecoder
from lumos.models.minimax.config import MiniMaxConfig
from lumos.models.minimax.modeling import HybridLM
from lumos.studies.demo import DemoContext, demo_section

__all__ = ["hybrid_model_section"]


def _decode_ms(model: HybridLM, ctx_len: int, steps: int, seed: int, compiled: bool = False) -> tuple[float, int]:
    """Fastest ms per decoded token (over ``steps``) after a ``ctx_len`` prompt, and the cache size in bytes; with
    ``compiled`` through the compiled one-token step (its first, compiling, step not counted).

    The minimum, not the median: on a shared machine other load only ever adds time."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, 256, (1, ctx_len), generator=g)
    cache = model.new_cache(1, capacity=ctx_len + steps + 2)
    logits = model(ids, cache=cache)[:, -1]
    decoder = FastDecoder(model, cache, backend="compiled" if compiled else "model")
    if compiled:
        logits = decoder.step(logits.argmax(-1))
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        logits = decoder.step(logits.argmax(-1))
        times.append(time.perf_counter() - t0)
    return 1000 * min(times), cache.nbytes()


def _formats(ctx: DemoContext, model: HybridLM) -> None:
    import json

    ids = torch.randint(0, 256, (1, 24), generator=torch.Generator().manual_seed(ctx.seed))
    ref = model(ids)
    rows = []
    for fmt in ("minimax_m1", "transformers"):
        d = ctx.workdir / fmt
        save_pretrained(model, d, format=fmt, max_shard_size=256 * 1024)
        keys = json.loads((d / INDEX_NAME).read_text())["weight_map"]
        back = load_pretrained(d)
        example = next(k for k in keys if (".experts." in k or ".mlp." in k) and k.startswith("model.layers.0."))
        rows.append({"format": fmt, "shards": len(set(keys.values())), "keys": len(keys),
                     "bytes": checkpoint_size(d), "example MoE key": example,
                     "max |Δ logits| after reload": float((back(ids) - ref).abs().max())})
        ctx.log(step="formats", **{k: v for k, v in rows[-1].items() if k != "example MoE key"})
    ctx.section.table(rows, caption="The same model saved in MiniMax's release layout (per-expert w1/w2/w3) and "
                      "in transformers' layout (fused gate_up_proj/down_proj, plus its decay buffers), then "
                      "reloaded (meta-device build, shard by shard).")


@demo_section("Hybrid MiniMax model", order=20)
@torch.no_grad()
def hybrid_model_section(ctx: DemoContext) -> None:
    """Tiny MiniMax-M1-shaped model: checkpoint round trips and per-token decode time vs context length."""
    import matplotlib.pyplot as plt

    layers = 4 if ctx.quick else 8
    base: dict[str, Any] = dict(hidden_size=64, num_hidden_layers=layers, num_attention_heads=4, head_dim=16,
                                num_key_value_heads=2, intermediate_size=64, num_local_experts=4,
                                num_experts_per_tok=2)
    torch.manual_seed(ctx.seed)
    hybrid = HybridLM(MiniMaxConfig(**base)).eval()
    linear = HybridLM(MiniMaxConfig(**base, attn_type_list=[0] * layers)).eval()
    kinds = "".join("S" if k == "softmax" else "L" for k in hybrid.config.layer_kinds)
    ctx.section.text(f"A random {layers}-layer model in MiniMax-M1's layout ({kinds}: L = lightning, S = softmax), "
                     f"hidden 64, 4 experts top-2, {hybrid.num_parameters():,} parameters, byte vocabulary.")
    _formats(ctx, hybrid)
    contexts = [32, 128] if ctx.quick else [128, 512, 2048]
    steps = 4 if ctx.quick else 12
    rows = []
    for n in contexts:
        h_ms, h_bytes = _decode_ms(hybrid, n, steps, ctx.seed)
        l_ms, l_bytes = _decode_ms(linear, n, steps, ctx.seed)
        row = {"context": n, "hybrid ms/token": round(h_ms, 2), "hybrid cache KiB": h_bytes // 1024,
               "all-lightning ms/token": round(l_ms, 2), "all-lightning cache KiB": l_bytes // 1024}
        if not ctx.quick:  # compiling costs seconds: the full demo only
            row["hybrid compiled ms/token"] = round(_decode_ms(hybrid, n, steps, ctx.seed, compiled=True)[0], 2)
        rows.append(row)
        ctx.log(step="decode", **rows[-1])
    ctx.section.table(rows, caption="Decode time per token (fastest of several steps) after a prompt of the given length. Lightning "
                      "layers keep one (B, H, D, D) float32 state, so their cost and cache size do not depend on the "
                      "context; only the softmax layer's KV cache grows. \"compiled\": generate(compile=True), the "
                      "torch.compile-d one-token step (compiled once; not counted).")
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.2))
    ax[0].plot(contexts, [r["hybrid ms/token"] for r in rows], "o-", label="hybrid (7:1)")
    ax[0].plot(contexts, [r["all-lightning ms/token"] for r in rows], "s-", label="all lightning")
    if "hybrid compiled ms/token" in rows[0]:
        ax[0].plot(contexts, [r["hybrid compiled ms/token"] for r in rows], "^-", label="hybrid, compiled step")
    ax[1].plot(contexts, [r["hybrid cache KiB"] for r in rows], "o-", label="hybrid (7:1)")
    ax[1].plot(contexts, [r["all-lightning cache KiB"] for r in rows], "s-", label="all lightning")
    for a, title in zip(ax, ("decode ms / token", "cache KiB")):
        a.set_xscale("log", base=2)
        a.set_xlabel("context tokens")
        a.set_title(title)
        a.legend()
    fig.tight_layout()
    ctx.section.figure(fig, caption="Decode cost and cache size vs context length.")
    ctx.run.save_figure(fig, "hybrid_decode_vs_context")
    plt.close(fig)
