"""The statistics, tables, curves and report of ``lumos rl study`` (:mod:`lumos.studies.rl_study`).

A study's runs are a :data:`Runs` mapping (updates, arm, lr, eps_high, seed) → the run's history (metrics rows, step 0
first). Each arm's grid point is chosen on the tuning seeds (:func:`choose`, best mean :func:`score`), then compared
on the evaluation seeds (:func:`compare_at`: paired differences with :func:`paired_bootstrap` intervals).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:
    from lumos.core.rundir import RunDir
    from lumos.studies.rl_study import StudyConfig

__all__ = ["RunKey", "Runs", "score", "mean_kl", "paired_bootstrap", "choose", "compare_at", "summarise",
           "study_curves", "report_study", "markdown_table"]

#: a run: (updates, arm, lr, eps_high or None, seed)
RunKey = tuple[int, str, float, "float | None", int]
Runs = dict[RunKey, list[dict[str, Any]]]


def _mean_sd(xs: list[float]) -> tuple[float, float]:
    xs = [x for x in xs if not math.isnan(x)]
    if not xs:
        return math.nan, math.nan
    m = sum(xs) / len(xs)
    return m, math.sqrt(sum((x - m) ** 2 for x in xs) / max(len(xs) - 1, 1))


def _pm(xs: list[float], digits: int = 3) -> str:
    m, s = _mean_sd(xs)
    return f"{m:.{digits}f} ± {s:.{digits}f}"


def _last(h: list[dict[str, Any]], key: str) -> float:
    return next((r[key] for r in reversed(h) if key in r), math.nan)


def score(h: list[dict[str, Any]], k: int, key: str = "eval_accuracy") -> float:
    """Mean of ``key`` over the last ``k`` evaluations after step 0 (fewer when the run has fewer)."""
    vals = [r[key] for r in h if r["step"] > 0 and key in r and not math.isnan(r[key])]
    return sum(vals[-k:]) / len(vals[-k:]) if vals else math.nan


def mean_kl(h: list[dict[str, Any]]) -> float:
    """Mean over RL steps of the approx. KL(π_old‖π_θ) per batch (the k3 estimator on the sampled tokens, mean
    over the step's minibatches)."""
    vals = [r["approx_kl"] for r in h if "approx_kl" in r and not math.isnan(r["approx_kl"])]
    return sum(vals) / len(vals) if vals else math.nan


def paired_bootstrap(diffs: list[float], n_boot: int = 2000, seed: int = 0, level: float = 0.95
                     ) -> tuple[float, float, float]:
    """Mean of the paired differences and its bootstrap percentile interval (seeds resampled with replacement).
    One difference: the interval is (NaN, NaN)."""
    d = np.asarray([x for x in diffs if not math.isnan(x)], dtype=np.float64)
    if d.size == 0:
        return math.nan, math.nan, math.nan
    if d.size == 1:
        return float(d[0]), math.nan, math.nan
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, d.size, (n_boot, d.size))].mean(1)
    lo, hi = np.quantile(means, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(d.mean()), float(lo), float(hi)


def _pooled(hs: list[list[dict[str, Any]]], num: str, den: str) -> float:
    """Σ num / Σ den over every step of every run (per-step values are minibatch means, × minibatches)."""
    n = d = 0.0
    for h in hs:
        for r in h:
            if den in r and r.get("optimizer_steps"):
                n += r[num] * r["optimizer_steps"]
                d += r[den] * r["optimizer_steps"]
    return n / d if d else math.nan


def _fmt_point(lr: float, eps: float | None) -> str:
    return f"{lr:g}" + ("" if eps is None else f", ε_high {eps:g}")


def choose(runs: Runs, cfg: StudyConfig, u: int, arm: str) -> dict[str, Any] | None:
    """The grid point of ``arm`` with the best mean score on the tuning seeds (ties: the smaller lr), with the
    tuning table rows and whether the optimum is bracketed. None without finished tuning runs."""
    rows = []
    for lr, eps in cfg.grid(arm):
        hs = [runs[(u, arm, lr, eps, s)] for s in cfg.tune_seeds if (u, arm, lr, eps, s) in runs]
        if hs:
            rows.append({"lr": lr, "eps_high": eps, "score": _mean_sd([score(h, cfg.last_k) for h in hs])[0],
                         "kl": _mean_sd([mean_kl(h) for h in hs])[0], "n": len(hs)})
    rows = [r for r in rows if not math.isnan(r["score"])]
    if not rows:
        return None
    best = max(rows, key=lambda r: (r["score"], -r["lr"]))
    notes = []
    for name, values in (("lr", sorted({p[0] for p in cfg.grid(arm)})),
                         ("eps_high", sorted({p[1] for p in cfg.grid(arm) if p[1] is not None}))):
        if len(values) < 2:
            continue
        v = best[name]
        if v == values[0] or v == values[-1]:
            notes.append(f"{name} {v:g} at the grid's {'low' if v == values[0] else 'high'} edge: not bracketed")
    single = len(cfg.grid(arm)) == 1
    return {**best, "rows": rows, "bracketed": not notes and not single,
            "note": "; ".join(notes) if notes else ("one grid point: not tuned" if single else "bracketed")}


def compare_at(runs: Runs, cfg: StudyConfig, u: int, points: dict[str, tuple[float, float | None]], label: str
                ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Per-arm rows (evaluation seeds) and paired differences against the first arm (bootstrap intervals), with
    every arm at its grid point in ``points`` (arm → (lr, eps_high)); ``label`` names the comparison."""
    seeds = cfg.eval_seeds
    scores: dict[str, dict[int, float]] = {}
    rows = []
    for arm, (lr, eps) in points.items():
        hs = {s: runs[(u, arm, lr, eps, s)] for s in seeds if (u, arm, lr, eps, s) in runs}
        scores[arm] = {s: score(h, cfg.last_k) for s, h in hs.items()}
        if not hs:
            continue
        reached = [next((int(r["step"]) for r in h if r.get("eval_accuracy", -1.0) >= cfg.target), None)
                   for h in hs.values()]
        rows.append({
            "comparison": label, "updates/batch": u, "arm": arm, "lr": _fmt_point(lr, eps), "seeds": len(hs),
            f"accuracy, last {cfg.last_k} evals": _pm(list(scores[arm].values())),
            "approx KL/batch": f"{_mean_sd([mean_kl(h) for h in hs.values()])[0]:.3g}",
            "fork prob start → end": f"{_mean_sd([h[0]['fork_prob'] for h in hs.values()])[0]:.3f} → "
                                     f"{_pm([_last(h, 'fork_prob') for h in hs.values()])}",
            "fork tokens clipped": f"{100 * _pooled(list(hs.values()), 'fork_clipped_n', 'fork_live_n'):.1f} %",
            "fork gradient removed":
                f"{100 * (1 - _pooled(list(hs.values()), 'fork_grad_kept', 'fork_grad_full')):.1f} %",
            "reached target": f"{sum(s is not None for s in reached)}/{len(hs)}",
        })
    paired = []
    arms = list(points)
    if arms:
        ref = arms[0]
        for arm in arms[1:]:
            common = [s for s in seeds if s in scores.get(ref, {}) and s in scores.get(arm, {})]
            d = [scores[ref][s] - scores[arm][s] for s in common]
            if not d:
                continue
            m, lo, hi = paired_bootstrap(d, cfg.n_boot, seed=u)
            verdict = ("one seed: no interval" if math.isnan(lo) else
                       f"{ref} higher" if lo > 0 else f"{arm} higher" if hi < 0 else "tie (interval contains 0)")
            paired.append({"comparison": label, "updates/batch": u, "pair": f"{ref} − {arm}", "seeds": len(d),
                           "Δ accuracy": f"{m:+.3f}", "95% CI": "" if math.isnan(lo) else f"[{lo:+.3f}, {hi:+.3f}]",
                           "per seed": ", ".join(f"{x:+.2f}" for x in d), "verdict": verdict})
    return rows, paired


def summarise(runs: Runs, cfg: StudyConfig) -> dict[str, list[dict[str, Any]]]:
    """The study's tables: ``tuning`` (every grid point on the tuning seeds; the chosen one marked),
    ``summary`` (per arm on the evaluation seeds, for each comparison: tuned, matched lr, matched KL) and
    ``paired`` (differences against the first arm with bootstrap intervals)."""
    tuning, summary, paired = [], [], []
    for u in cfg.updates:
        chosen: dict[str, dict[str, Any]] = {}
        for arm in cfg.algos:
            c = choose(runs, cfg, u, arm)
            if c is None:
                continue
            chosen[arm] = c
            for r in c["rows"]:
                tuning.append({"updates/batch": u, "arm": arm, "lr": _fmt_point(r["lr"], r["eps_high"]),
                               "tune seeds": r["n"], f"accuracy, last {cfg.last_k} evals": f"{r['score']:.3f}",
                               "approx KL/batch": f"{r['kl']:.3g}",
                               "chosen": ("yes — " + c["note"]) if (r["lr"], r["eps_high"]) == (c["lr"], c["eps_high"])
                               else ""})
        comparisons: list[tuple[str, dict[str, tuple[float, float | None]]]] = []
        if chosen:
            comparisons.append(("tuned lr", {a: (c["lr"], c["eps_high"]) for a, c in chosen.items()}))
        elif not cfg.tune_seeds:
            comparisons.append(("shared lr (no tuning seeds)", {a: cfg.grid(a)[0] for a in cfg.algos}))
        same = {}
        for arm in cfg.algos:
            pts = [p for p in cfg.grid(arm) if p[0] == cfg.lr]
            if pts:
                eps = chosen[arm]["eps_high"] if arm in chosen and any(p[1] == chosen[arm]["eps_high"] for p in pts) \
                    else pts[0][1]
                same[arm] = (cfg.lr, eps)
        if len(same) == len(cfg.algos):
            # without tuning seeds the shared point is often this one: report it once, as the matched lr
            comparisons = [(label, pts) for label, pts in comparisons if not (label.startswith("shared") and pts == same)]
            comparisons.append((f"matched lr {cfg.lr:g}", same))
        kls = [c["kl"] for c in chosen.values() if c["kl"] > 0 and math.isfinite(c["kl"])]
        if len(chosen) == len(cfg.algos) and len(kls) == len(chosen) and len(chosen) > 1:
            target = math.exp(sum(math.log(k) for k in kls) / len(kls))
            matched = {}
            for arm, c in chosen.items():
                ok = [r for r in c["rows"] if r["kl"] > 0 and math.isfinite(r["kl"])]
                best = min(ok, key=lambda r: abs(math.log(r["kl"] / target)))
                matched[arm] = (best["lr"], best["eps_high"])
            comparisons.append((f"matched KL ≈ {target:.3g}", matched))
        for label, points in comparisons:
            rows, pairs = compare_at(runs, cfg, u, points, label)
            summary += rows
            paired += pairs
    return {"tuning": tuning, "summary": summary, "paired": paired}


def study_curves(runs: Runs, cfg: StudyConfig, u: int, points: dict[str, tuple[float, float | None]] | None = None,
                 seeds: tuple[int, ...] | None = None, metric: str = "eval_accuracy"
                 ) -> dict[str, list[tuple[list[float], list[float]]]]:
    """(cumulative compute, metric) curves per arm at schedule ``u``: the runs at ``points`` (default each arm's
    tuned point, else its first grid point) on ``seeds`` (default the evaluation seeds)."""
    from lumos.studies.curves import curve_points

    seeds = cfg.eval_seeds if seeds is None else seeds
    if points is None:
        points = {}
        for arm in cfg.algos:
            c = choose(runs, cfg, u, arm)
            points[arm] = (c["lr"], c["eps_high"]) if c else cfg.grid(arm)[0]
    out: dict[str, list[tuple[list[float], list[float]]]] = {}
    for arm, (lr, eps) in points.items():
        hs = [runs[(u, arm, lr, eps, s)] for s in seeds if (u, arm, lr, eps, s) in runs]
        if hs:
            out[arm] = [curve_points(h, lambda r: 0.0, metric) for h in hs]
            for (c, _), h in zip(out[arm], hs):      # compute_flops is logged cumulatively on every row
                c[:] = [float(r["compute_flops"]) for r in h if metric in r and math.isfinite(r[metric])]
    return out


# ------------------------------------------------------------------------------------------------ report


def _plot(runs: Runs, cfg: StudyConfig) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = (("fork_prob", "fork-token probability"), ("eval_accuracy", "eval accuracy (avg@k)"),
            ("fork_grad_zeroed", "share of fork gradient clipped"))
    fig, axes = plt.subplots(len(cfg.updates), len(keys), figsize=(4.2 * len(keys), 2.8 * len(cfg.updates)),
                             squeeze=False)
    for i, u in enumerate(cfg.updates):
        points = {}
        for arm in cfg.algos:
            c = choose(runs, cfg, u, arm)
            points[arm] = (c["lr"], c["eps_high"]) if c else cfg.grid(arm)[0]
        for j, (key, title) in enumerate(keys):
            ax = axes[i][j]
            for arm, (lr, eps) in points.items():
                hs = [runs[(u, arm, lr, eps, s)] for s in cfg.eval_seeds if (u, arm, lr, eps, s) in runs]
                steps = sorted({r["step"] for h in hs for r in h if key in r and not math.isnan(r[key])})
                if not steps:
                    continue
                vals = torch.tensor([[next((r[key] for r in h if r["step"] == s and key in r), math.nan)
                                      for s in steps] for h in hs], dtype=torch.float64)
                mean = vals.nanmean(0)
                ax.plot(steps, mean.tolist(), label=f"{arm} ({_fmt_point(lr, eps)})")
                if vals.shape[0] > 1:
                    sd = torch.sqrt(((vals - mean) ** 2).nanmean(0))
                    ax.fill_between(steps, (mean - sd).tolist(), (mean + sd).tolist(), alpha=0.15)
            ax.set_title(f"{title}, {u} update(s)/batch", fontsize=9)
            ax.set_xlabel("RL step")
            ax.grid(alpha=0.3)
        axes[i][0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def report_study(sec: Any, run: RunDir, cfg: StudyConfig, runs: Runs, tables: dict[str, list[dict[str, Any]]],
                 paired_ok: bool) -> None:
    """Describe the study in report section ``sec``: settings, plots (``plots/study.png``, ``plots/curves_u<U>.png``),
    the tuning, comparison and paired tables, and the compute curves; the tables also as ``results.md``."""
    from lumos.studies.curves import curves_figure, fit_curves, format_rows

    arms = "; ".join(f"{a}: {cfg.arm(a).help or 'objective defaults'}" + (", dynamic sampling" if cfg.dynamic_sampling_for(a)
                                                                        else "") for a in cfg.algos)
    grids = "; ".join(f"{a}: lr {', '.join(f'{x:g}' for x in sorted({p[0] for p in cfg.grid(a)}))}"
                      + (f", ε_high {', '.join(f'{e:g}' for e in cfg.eps_high_grid)}" if cfg.arm(a).objective == "cispo"
                         else "") for a in cfg.algos)
    sec.text(
        f"Task guess-check (operands 0..{cfg.max_operand}): a guess, optionally the fork token '?' and a "
        f"verification. Tiny hybrid model (hidden {cfg.hidden}, 2 layers), warm start {cfg.sft_steps} SFT steps "
        f"with every demonstration forking, then {cfg.sft_rare_steps} with {100 * cfg.demo_fork_rate:.0f} % forking. "
        f"RL: {cfg.steps} steps of {cfg.prompts_per_step} prompts × {cfg.group_size} samples, "
        f"{', '.join(map(str, cfg.updates))} optimizer update(s) per rollout batch. Arms — {arms}. Grids — {grids}. "
        f"Tuning seeds {list(cfg.tune_seeds)} choose each arm's point; evaluation seeds {list(cfg.eval_seeds)} "
        f"report it. Metric: eval accuracy avg@{cfg.eval_samples} at temperature 1 on {cfg.eval_problems} problems "
        f"({cfg.eval_problems * cfg.eval_samples} samples) every {cfg.eval_every} steps, averaged over the last "
        f"{cfg.last_k} evaluations of each run. Paired differences: bootstrap 95 % interval over evaluation seeds "
        f"({cfg.n_boot} resamples); an interval containing 0 is a tie. Paired runs: every run of a seed starts "
        "from the same weights with the same problems and sampling seeds — "
        + ("verified (identical step-0 evaluations; identical first rollout batches without dynamic sampling)."
           if paired_ok else "NOT verified: step-0 evaluations or first rollout batches differ."))
    fig = _plot(runs, cfg)
    run.save_figure(fig, "study")
    sec.figure(fig)
    if tables["tuning"]:
        sec.table(tables["tuning"], caption="Tuning: every grid point on the tuning seeds; the chosen point per arm "
                  "(best mean accuracy) and whether it is bracketed by the grid.")
    sec.table(tables["summary"], caption="Evaluation seeds, per comparison and arm. 'fork tokens clipped': "
              "occurrences of '?' with a non-zero advantage whose gradient the objective zeroes (PPO-clip) or caps "
              "(CISPO); 'fork gradient removed': share of their importance-weighted gradient magnitude lost.")
    if tables["paired"]:
        sec.table(tables["paired"], caption="Paired differences (same seed, same warm start), bootstrap 95 % "
                  "intervals over evaluation seeds.")
    md = []
    for name, title in (("tuning", "Tuning (tuning seeds)"), ("summary", "Evaluation seeds, per comparison"),
                        ("paired", "Paired differences (bootstrap 95 % CI over evaluation seeds)")):
        if tables[name]:
            md += [f"### {title}", "", *markdown_table(tables[name]), ""]
    for u in cfg.updates:
        curves = study_curves(runs, cfg, u)
        if not curves:
            continue
        rows = fit_curves(curves, n_boot=min(cfg.n_boot, 200))
        fits = format_rows(rows)
        sec.table(fits, caption=f"ScaleRL sigmoid fits, {u} update(s)/batch, tuned points, "
                  "evaluation seeds: R(C) = R0 + (A − R0)/(1 + (C_mid/C)^B), C = rollout + training FLOPs "
                  "(lumos.analysis.flops); bootstrap 95 % intervals over seeds.")
        md += [f"### ScaleRL sigmoid fits, {u} update(s)/batch (tuned points, evaluation seeds)", "",
               *markdown_table(fits), ""]
        fig = curves_figure(curves, rows, title=f"accuracy vs compute, {u} update(s)/batch")
        run.save_figure(fig, f"curves_u{u}")
        sec.figure(fig)
    from lumos.core.io import atomic_write_text

    atomic_write_text(run.path / "results.md", "\n".join(md) + "\n")


def markdown_table(table: list[dict[str, Any]]) -> list[str]:
    """A list of rows as the lines of a markdown table (columns in first-seen order)."""
    cols = list(dict.fromkeys(k for r in table for k in r))
    return ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols),
            *("| " + " | ".join(str(r.get(c, "")) for c in cols) + " |" for r in table)]
