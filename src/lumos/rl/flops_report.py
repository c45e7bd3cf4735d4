"""The ``lumos flops`` report: MiniMax-M1 vs DeepSeek-R1 table, plot, and the check of the paper's claim."""

from __future__ import annotations

from typing import Any

from lumos.rl.flops import compare_table, deepseek_r1, from_minimax_config, minimax_m1

__all__ = ["flops_report", "claim_check"]


def claim_check(prompt: int = 0, mla: str = "naive") -> dict[str, float]:
    """M1/R1 FLOPs ratios at 64K and 100K generated tokens, per-token and cumulative."""
    m1, r1 = minimax_m1(), deepseek_r1(mla)
    out = {}
    for n, tag in ((65536, "64K"), (100000, "100K")):
        out[f"per_token_{tag}"] = m1.per_token(prompt + n) / r1.per_token(prompt + n)
        out[f"cumulative_{tag}"] = m1.cumulative(n, prompt) / r1.cumulative(n, prompt)
    return out


def _verdict(prompt: int, mla: str) -> str:
    c = claim_check(prompt, mla)
    a = claim_check(prompt, "absorbed" if mla == "naive" else "naive")
    other = "absorbed" if mla == "naive" else "naive"
    return (
        f"Paper: M1 needs < 50% of DeepSeek-R1's FLOPs at 64K generated tokens and ~25% at 100K. "
        f"With MLA counted '{mla}': per-token (marginal) ratio {c['per_token_64K']:.1%} at 64K and "
        f"{c['per_token_100K']:.1%} at 100K; cumulative (all tokens 1..n) {c['cumulative_64K']:.1%} at 64K and "
        f"{c['cumulative_100K']:.1%} at 100K. Both readings give < 50% at 64K; ~25% at 100K is matched by the "
        f"per-token reading ({c['per_token_100K']:.1%}), while the cumulative reading gives {c['cumulative_100K']:.1%} "
        f"because the cumulative sum still carries the context-independent cost (2 × active parameters) of every "
        f"short-context token. With MLA counted '{other}' the ratios would be {a['per_token_64K']:.1%} / "
        f"{a['per_token_100K']:.1%} (per token) and {a['cumulative_64K']:.1%} / {a['cumulative_100K']:.1%} "
        f"(cumulative), far from the paper's numbers, so the paper's figure is consistent with the MHA-equivalent "
        f"count of MLA attention (q/k 192 dims, v 128 dims per head). Remaining differences come from what is "
        f"counted (we include the LM head and router, exclude elementwise ops) and from active-parameter "
        f"totals (ours: M1 {minimax_m1().active_params / 1e9:.1f}B, R1 {deepseek_r1().active_params / 1e9:.1f}B; "
        f"model cards: 45.9B and 37B)."
    )


def flops_report(run: Any, lengths: list[int], prompt: int = 0, mla: str = "naive",
                 config_path: str | None = None) -> tuple[list[dict[str, Any]], str]:
    """Fill ``run``'s report with the table, a plot and the verdict; log rows; return (rows, verdict)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = compare_table(lengths, prompt=prompt, mla=mla)
    for r in rows:
        run.log(r)
    verdict = _verdict(prompt, mla)
    m1, r1 = minimax_m1(), deepseek_r1(mla)
    xs = sorted(set([1024 * k for k in range(1, 129)] + lengths))
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, kind in zip(axes, ("per_token", "cumulative")):
        if kind == "per_token":
            a = [m1.per_token(prompt + n) / 1e9 for n in xs]
            b = [r1.per_token(prompt + n) / 1e9 for n in xs]
            ax.set_ylabel("GFLOPs per generated token")
        else:
            a = [m1.cumulative(n, prompt) / 1e15 for n in xs]
            b = [r1.cumulative(n, prompt) / 1e15 for n in xs]
            ax.set_ylabel("PFLOPs to generate n tokens")
        ax.plot([x / 1024 for x in xs], a, label="MiniMax-M1")
        ax.plot([x / 1024 for x in xs], b, label=r1.name)
        ax2 = ax.twinx()
        ax2.plot([x / 1024 for x in xs], [u / v for u, v in zip(a, b)], "k:", label="ratio M1/R1")
        ax2.set_ylim(0, 1.05)
        ax2.set_ylabel("ratio M1/R1")
        ax.set_xlabel("generated tokens (K)")
        ax.set_title(kind.replace("_", "-"))
        ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    run.save_figure(fig, "flops")
    sec = run.report.section("Generation FLOPs: MiniMax-M1 vs DeepSeek-R1")
    sec.text(verdict)
    sec.figure(fig)
    sec.table(rows, caption=f"prompt = {prompt} tokens; MLA counted '{mla}'.")
    parts = [{"model": m.name, "part": k, "GFLOPs/token": v / 1e9} for m in (m1, r1) for k, v in m.parts.items()]
    parts += [{"model": m.name, "part": "attention per 1K context", "GFLOPs/token": m.per_ctx * 1024 / 1e9}
              for m in (m1, r1)]
    if config_path:
        from lumos.models import MiniMaxConfig

        mc = from_minimax_config(MiniMaxConfig.from_json(config_path), name=str(config_path))
        parts += [{"model": mc.name, "part": k, "GFLOPs/token": v / 1e9} for k, v in mc.parts.items()]
        parts.append({"model": mc.name, "part": "attention per 1K context", "GFLOPs/token": mc.per_ctx * 1024 / 1e9})
    sec.table(parts, caption="Context-independent FLOPs per token by part, and the context-dependent attention term.")
    return rows, verdict
