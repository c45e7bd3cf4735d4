"""Checkpoints in both MiniMax-M1 formats, and a deployment plan.

A tiny MiniMax hybrid (lightning + softmax layers, MoE) is saved in the release layout, converted to transformers'
layout and back, opened by transformers' `MiniMaxForCausalLM` with the same logits, then the planner sizes the
released MiniMax-M1 (456B) for 128K-token inference in bf16 and fp8.

Run: python examples/m1_checkpoints_and_plan.py
"""

import tempfile
from pathlib import Path

import torch

from lumos.analysis import PlanSpec, plan, preset_config
from lumos.models import load_pretrained, save_pretrained, tiny_hybrid
from lumos.models.checkpoint.export import export_checkpoint


def convert(work: Path) -> None:
    model = tiny_hybrid(hidden_size=32, num_layers=2, seed=0).eval()
    release = save_pretrained(model, work / "release", format="minimax_m1")          # MiniMax's release layout
    hf = export_checkpoint(release, work / "hf", format="transformers")              # transformers' `minimax`
    back = export_checkpoint(hf, work / "release-again", format="minimax_m1")
    ids = torch.tensor([[1, 5, 9, 3, 7, 2]])
    with torch.no_grad():
        ref = model(ids)                                   # HybridLM returns the logits (B, L, V)
        again = load_pretrained(back)(ids)
    print(f"release -> transformers -> release: max |logit diff| = {(ref - again).abs().max().item():.2e}")
    from transformers import AutoModelForCausalLM

    tf = AutoModelForCausalLM.from_pretrained(hf).eval()
    with torch.no_grad():
        tf_logits = tf(ids).logits
    print(f"transformers MiniMaxForCausalLM on the export: max |logit diff| = {(ref - tf_logits).abs().max():.2e}")


def deployment() -> None:
    config = preset_config("minimax-m1")
    for dtype in ("bf16", "fp8"):
        spec = PlanSpec(config=config, gpus=16, gpu_memory_gib=80, context=131072, batch=1, name="minimax-m1",
                        dtype=dtype)
        smallest = plan(spec)["smallest"]
        fits = {s: v["inference"] for s, v in smallest.items()}
        print(f"MiniMax-M1, 128K context, weights+KV {dtype}: smallest GPU count per layout {fits}")


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        convert(Path(tmp))
    deployment()
