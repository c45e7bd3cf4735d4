"""The ``lumos flops`` report: MiniMax-M1 vs DeepSeek-R1 tables, plots, and the paper's Figure 1 (right)."""

from __future__ import annotations

from typing import Any

from lumos.analysis.flops import (
    FIGURE1_RATIOS,
    MLA_COUNTS,
    ModelFlops,
    compare_table,
    deepseek_r1,
    fit_per_ctx,
    from_minimax_config,
    minimax_m1,
)

__all__ = ["flops_report", "claim_check", "accounting_candidates", "cumulative_figure"]


def claim_check(prompt: int = 0, mla: str = "naive") -> dict[str, float]:
    """M1/R1 FLOPs ratios at 64K and 100K generated tokens, per-token and cumulative."""
    m1, r1 = minimax_m1(), deepseek_r1(mla)
    out = {}
    for n, tag in ((65536, "64K"), (100000, "100K")):
        out[f"per_token_{tag}"] = m1.per_token(prompt + n) / r1.per_token(prompt + n)
        out[f"cumulative_{tag}"] = m1.cumulative(n, prompt) / r1.cumulative(n, prompt)
    return out


def _with(m: ModelFlops, per_ctx: float) -> ModelFlops:
    return ModelFlops(m.name, m.const, per_ctx, m.active_params, dict(m.parts))


def accounting_candidates(prompt: int = 0) -> list[dict[str, Any]]:
    """Ways of counting attention FLOPs, each with R1's cost per cached token and the Figure 1 ratios it gives.

    Every row keeps the context-independent terms of :mod:`lumos.analysis.flops` and changes only how attention
    is counted; ``max |Δ| vs figure`` is the largest distance (in ratio points) from :data:`FIGURE1_RATIOS`.
    """
    m1, naive = minimax_m1(), deepseek_r1("naive")
    cands: list[tuple[str, str, ModelFlops, ModelFlops, bool]] = [
        ("lumos default: MLA naive, 2 FLOPs per multiply-add, QKᵀ and AV, causal sum",
         "61 × 2 × 128 × (192 + 128)", m1, naive, True),
        ("v counted at the q/k head dim (MLA 'padded'; PaLM's 4·L·H·Q·T with Q = 192)",
         "61 × 2 × 128 × (192 + 192)", m1, deepseek_r1("padded"), True),
        ("MLA absorbed (attention in the 512 + 64-dim latent space)",
         "61 × 2 × 128 × (512 + 64 + 512)", m1, deepseek_r1("absorbed"), True),
        ("multiply-adds instead of FLOPs in attention (both models)",
         "61 × 1 × 128 × (192 + 128)", _with(m1, m1.per_ctx / 2), _with(naive, naive.per_ctx / 2), True),
        ("QKᵀ only, no AV (both models)", "61 × 2 × 128 × 192",
         _with(m1, m1.per_ctx / 2), _with(naive, 61 * 2 * 128 * 192), True),
        ("no causal halving: every token charged the final context (n · per-token(n))",
         "61 × 2 × 128 × (192 + 128), × 2 in the sum", m1, naive, False),
        ("R1 at 7.0 MFLOPs per cached token (issue #16's estimate)", "7.0e6 (fitted elsewhere)", m1,
         _with(naive, 7.0e6), True),
    ]
    rows = []
    for name, arithmetic, a, b, causal in cands:
        ratios = {n: (a.cumulative(n, prompt) / b.cumulative(n, prompt)) if causal
                  else a.per_token(prompt + n) / b.per_token(prompt + n) for n in FIGURE1_RATIOS}
        row: dict[str, Any] = {"accounting": name, "R1 attention per cached token": arithmetic,
                               "R1 MFLOPs": b.per_ctx / 1e6 * (1 if causal else 2)}
        for n, r in ratios.items():
            row[f"ratio @{_k(n)}"] = r
        row["max |Δ| vs figure"] = max(abs(ratios[n] - FIGURE1_RATIOS[n]) for n in FIGURE1_RATIOS)
        rows.append(row)
    return rows


def _k(n: int) -> str:
    return f"{n // 1024}K" if n % 1024 == 0 else f"{n // 1000}K"


def _verdict(prompt: int) -> str:
    m1 = minimax_m1()
    c = {mla: [m1.cumulative(n, prompt) / deepseek_r1(mla).cumulative(n, prompt) for n in FIGURE1_RATIOS]
         for mla in MLA_COUNTS}
    fit = list(fit_per_ctx(m1, deepseek_r1("naive"), prompt=prompt).values())
    pct = " / ".join
    paper = pct(f"{r:.1%}" for r in FIGURE1_RATIOS.values())
    pt = [m1.per_token(prompt + n) / deepseek_r1().per_token(prompt + n) for n in FIGURE1_RATIOS]
    return (
        f"Paper: M1 needs < 50% of DeepSeek-R1's FLOPs at 64K generated tokens and ~25% at 100K; its Figure 1 "
        f"(right) plots cumulative generation FLOPs, whose M1/R1 ratios read {paper} at 64K / 100K / 128K. "
        f"lumos's count (R1's MLA as ordinary attention, q/k 192 and v 128 dims: "
        f"{deepseek_r1().per_ctx / 1e6:.2f} MFLOPs per cached token) gives cumulative "
        f"{pct(f'{r:.1%}' for r in c['naive'])}: '< 50% at 64K' holds, '~25% at 100K' does not. "
        f"The figure's three points imply {min(fit) / 1e6:.2f}-{max(fit) / 1e6:.2f} MFLOPs per cached token for R1 "
        f"(M1 and R1's context-independent FLOPs held at lumos's values); counting v at the 192-dim q/k head "
        f"size ('padded', PaLM's 4·L·H·Q·T) gives {deepseek_r1('padded').per_ctx / 1e6:.2f} MFLOPs and "
        f"{pct(f'{r:.1%}' for r in c['padded'])}, within 0.6 points of the figure. The per-token (marginal) "
        f"ratios, {pct(f'{r:.1%}' for r in pt)}, are a different quantity; that the 100K one is near 25% is a "
        f"coincidence, not the figure's reading. Absorbed MLA ({deepseek_r1('absorbed').per_ctx / 1e6:.1f} MFLOPs) "
        f"would give {pct(f'{r:.1%}' for r in c['absorbed'])}. Active parameters counted: M1 "
        f"{m1.active_params / 1e9:.1f}B, R1 {deepseek_r1().active_params / 1e9:.1f}B including the LM head "
        f"(model cards: 45.9B and 37B)."
    )


def cumulative_figure(run: Any, prompt: int = 0) -> list[dict[str, Any]]:
    """Figure 1 (right) of the paper: cumulative FLOPs vs generated tokens, both R1 counts, the paper's points."""
    import matplotlib.pyplot as plt

    m1 = minimax_m1()
    r1s = {mla: deepseek_r1(mla) for mla in ("naive", "padded")}
    xs = [1024 * k for k in range(1, 129)]
    fig, (ax, axr) = plt.subplots(1, 2, figsize=(10.5, 3.8))
    ax.plot([x / 1024 for x in xs], [m1.cumulative(n, prompt) / 1e18 for n in xs], color="C0", label="MiniMax-M1")
    for (mla, r1), style in zip(r1s.items(), ("-", "--")):
        ax.plot([x / 1024 for x in xs], [r1.cumulative(n, prompt) / 1e18 for n in xs], "C1" + style,
                label=f"DeepSeek-R1 (MLA {mla})")
        axr.plot([x / 1024 for x in xs], [m1.cumulative(n, prompt) / r1.cumulative(n, prompt) for n in xs],
                 "k" + style, label=f"M1/R1, R1 counted {mla}" + (" (lumos default)" if mla == "naive" else ""))
    axr.plot([n / 1024 for n in FIGURE1_RATIOS], list(FIGURE1_RATIOS.values()), "rs", ms=7,
             label="paper, Figure 1 (right), read off")
    ax.set_xlabel("generated tokens (K)")
    ax.set_ylabel("cumulative generation FLOPs (EFLOPs)")
    ax.set_title("cumulative FLOPs to generate n tokens")
    ax.legend(fontsize=8)
    axr.set_xlabel("generated tokens (K)")
    axr.set_ylabel("ratio M1 / R1")
    axr.set_ylim(0, 1.4)
    axr.set_title("M1 / R1 (cumulative)")
    axr.legend(fontsize=8)
    fig.tight_layout()
    run.save_figure(fig, "flops_cumulative")
    rows = accounting_candidates(prompt)
    fit = fit_per_ctx(m1, r1s["naive"], prompt=prompt)
    sec = run.report.section("Figure 1 (right): cumulative generation FLOPs, MiniMax-M1 vs DeepSeek-R1")
    sec.text(_verdict(prompt))
    sec.figure(fig)
    sec.table(rows, caption="How attention is counted decides the ratio. Each row keeps the context-independent "
              "FLOPs and changes only the attention count; ratios are cumulative M1/R1 at the figure's points.")
    sec.table([{"generated tokens": n, "paper ratio": FIGURE1_RATIOS[n], "implied R1 MFLOPs per cached token": v / 1e6}
               for n, v in fit.items()],
              caption="R1 attention cost per cached token that each of the paper's points implies (M1 and R1's "
              "context-independent FLOPs fixed at lumos's values).")
    return rows


def flops_report(run: Any, lengths: list[int], prompt: int = 0, mla: str = "naive",
                 config_path: str | None = None, cumulative: bool = False) -> tuple[list[dict[str, Any]], str]:
    """Fill ``run``'s report with the table, a plot and the verdict; log rows; return (rows, verdict).

    ``cumulative=True`` adds the reproduction of the paper's Figure 1 (right) (:func:`cumulative_figure`).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = compare_table(lengths, prompt=prompt, mla=mla)
    for r in rows:
        run.log(r)
    verdict = _verdict(prompt)
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
    if cumulative:
        cumulative_figure(run, prompt)
    return rows, verdict
