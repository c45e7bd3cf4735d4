"""Compute–performance curves (ScaleRL, Khatri et al. 2025, arXiv 2510.13786): ``lumos rl curves``.

ScaleRL fits, per recipe, a sigmoid of the evaluation reward R against training compute C,

    R(C) = R0 + (A − R0) / (1 + (C_mid / C)^B),

with R0 the performance before RL (fixed, not fitted), A the asymptote, B the steepness (efficiency) and
C_mid the compute at which half of the gain A − R0 is reached. ScaleRL reads A as what a recipe can reach and
B, C_mid as how fast it gets there. Here:

- :func:`sigmoid` is the curve; :func:`fit_sigmoid` fits (A, B, C_mid) to points by least squares in
  (A, B, log C_mid) from a grid of starts (scipy's bounded trust-region solver);
- :func:`bootstrap_fit` refits on seeds resampled with replacement and gives percentile intervals on A, B
  and C_mid (a seed's whole curve is one unit, as the seeds are the independent replicates);
- :func:`rl_step_flops` is the compute of one RL step: rollout (prefill + generation) and training
  (forward + backward = 3 forwards over prompt + response) FLOPs from :mod:`lumos.analysis.flops`
  (weights and attention terms of the model's config; elementwise work not counted), with an extra forward
  per sample for a reference model (KL) or recomputed old log-probs; evaluation is not training compute.
  Lengths are the step's means (response length over all generated samples), so the context-dependent
  attention term is approximate; for the tiny study models it is < 5 % of the total.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from lumos.core.errors import LumosError
from lumos.core.validation import check_float, check_positive_int

__all__ = ["sigmoid", "fit_sigmoid", "bootstrap_fit", "rl_step_flops", "curve_points", "fit_curves", "format_rows",
           "curves_figure"]


def sigmoid(c: np.ndarray | float, A: float, B: float, c_mid: float, r0: float) -> np.ndarray:
    """ScaleRL's R(C) = R0 + (A − R0) / (1 + (C_mid / C)^B) for C > 0 (R0 at C = 0)."""
    c = np.asarray(c, dtype=np.float64)
    with np.errstate(divide="ignore", over="ignore"):
        ratio = np.where(c > 0, (c_mid / np.where(c > 0, c, 1.0)) ** B, np.inf)
    return r0 + (A - r0) / (1.0 + ratio)


def fit_sigmoid(compute: Sequence[float] | np.ndarray, reward: Sequence[float] | np.ndarray, r0: float, *,
                a_bounds: tuple[float, float] = (0.0, 1.0), b_bounds: tuple[float, float] = (0.05, 20.0),
                start: dict[str, float] | None = None) -> dict[str, float]:
    """Least-squares fit of (A, B, C_mid) with R0 fixed.

    Args:
        compute: (N,) compute of each point (> 0; points at C ≤ 0 are dropped: R there is R0 by definition).
        reward: (N,) the metric at those points.
        r0: R0, the metric before training.
        a_bounds: the range A may take (default [0, 1], a probability such as accuracy).
        b_bounds: the range of B.
        start: one starting point (A, B, C_mid) instead of the grid of 18 (the bootstrap starts at the full fit).

    Returns:
        ``A``, ``B``, ``C_mid``, ``rmse`` (root mean squared residual) and ``n`` (points used). C_mid is
        searched over [C_min / e^8, C_max · e^8]; ``C_mid`` beyond the largest observed compute means A is an
        extrapolation (:func:`fit_curves` says so).
    """
    from scipy.optimize import least_squares

    c = np.asarray(compute, dtype=np.float64)
    r = np.asarray(reward, dtype=np.float64)
    if c.shape != r.shape or c.ndim != 1:
        raise LumosError(f"fit_sigmoid needs compute and reward of the same length; got {c.shape} and {r.shape}.")
    check_float(r0, "r0", owner="fit_sigmoid")
    keep = (c > 0) & np.isfinite(c) & np.isfinite(r)
    c, r = c[keep], r[keep]
    if len(c) < 3 or len(np.unique(c)) < 3:
        raise LumosError(f"fit_sigmoid needs at least 3 points at distinct compute > 0; got {len(np.unique(c))}. "
                         "Evaluate more often (--eval-every) or train longer.")
    lo_c, hi_c = math.log(c.min()) - 8.0, math.log(c.max()) + 8.0

    def resid(p: np.ndarray) -> np.ndarray:
        return sigmoid(c, p[0], p[1], math.exp(p[2]), r0) - r

    best = None
    lo = [a_bounds[0], b_bounds[0], lo_c]
    hi = [a_bounds[1], b_bounds[1], hi_c]
    if start is not None:
        starts = [(start["A"], start["B"], math.log(start["C_mid"]))]
    else:
        a_grid = [float(np.clip(r.max(), *a_bounds)), float(np.mean(a_bounds)), float(np.clip(r.min(), *a_bounds))]
        starts = [(a0, b0, m0) for a0 in a_grid for b0 in (0.7, 3.0)
                  for m0 in np.quantile(np.log(c), [0.1, 0.5, 0.9]).tolist()]
    for x0 in starts:
        x0 = np.clip(x0, np.array(lo) + 1e-9, np.array(hi) - 1e-9)
        sol = least_squares(resid, x0, bounds=(lo, hi), method="trf", x_scale="jac", max_nfev=400)
        if best is None or sol.cost < best.cost:
            best = sol
    assert best is not None
    A, B, lm = (float(v) for v in best.x)
    return {"A": A, "B": B, "C_mid": math.exp(lm), "rmse": math.sqrt(2 * best.cost / len(c)), "n": int(len(c))}


def bootstrap_fit(curves: Sequence[tuple[Sequence[float], Sequence[float]]], r0: float, *, n_boot: int = 200,
                  seed: int = 0, level: float = 0.95, **fit_kw: Any) -> dict[str, Any]:
    """Fit on all points of all ``curves`` (one (compute, reward) pair per seed), then ``n_boot`` refits on seeds
    drawn with replacement; percentile intervals at ``level``.

    Returns:
        ``fit`` (:func:`fit_sigmoid` on everything) and ``ci``: name → (low, high) for A, B, C_mid (NaN with
        fewer than 3 curves, or when fewer than half of the resamples could be fitted: no honest interval), and
        ``n_boot`` (refits that succeeded).
    """
    check_positive_int(n_boot, "n_boot", owner="bootstrap_fit")
    if not curves:
        raise LumosError("bootstrap_fit needs at least one curve.")

    def pooled(idx: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        return (np.concatenate([np.asarray(curves[i][0], dtype=np.float64) for i in idx]),
                np.concatenate([np.asarray(curves[i][1], dtype=np.float64) for i in idx]))

    fit = fit_sigmoid(*pooled(range(len(curves))), r0, **fit_kw)
    nan = (math.nan, math.nan)
    if len(curves) < 3:       # 2 seeds: every usable resample is the original pair, a zero-width "interval"
        return {"fit": fit, "ci": {"A": nan, "B": nan, "C_mid": nan}, "n_boot": 0}
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {"A": [], "B": [], "C_mid": []}
    for _ in range(n_boot):
        idx = rng.integers(0, len(curves), len(curves)).tolist()
        try:
            f = fit_sigmoid(*pooled(idx), r0, start=fit, **fit_kw)
        except LumosError:            # a draw of identical seeds with < 3 distinct compute points
            continue
        for k in draws:
            draws[k].append(f[k])
    q = ((1 - level) / 2, 1 - (1 - level) / 2)
    enough = len(draws["A"]) >= n_boot / 2
    ci = {k: (tuple(float(x) for x in np.quantile(v, q)) if enough else nan) for k, v in draws.items()}
    return {"fit": fit, "ci": ci, "n_boot": len(draws["A"])}


def rl_step_flops(model_flops: Any, row: dict[str, Any], *, prompt_tokens: float, prompts_per_step: int,
                  group_size: int, extra_forwards: int = 0) -> float:
    """Rollout + training FLOPs of one logged RL step (a trainer metrics row).

    rollout  = rounds · P · G · [prefill of ``prompt_tokens`` + generation of n tokens after them],
    training = (3 + ``extra_forwards``) · groups · G · forward(prompt + n), where forward(L) = Σ_{t=1}^{L}
    per_token(t) and n is the step's mean ``response_length`` (``generation_rounds`` and ``batch_groups`` from
    the row: dynamic sampling's extra rounds count as rollout compute). ``model_flops`` is a
    :class:`lumos.analysis.flops.ModelFlops`.
    """
    n = float(row["response_length"])
    rounds = float(row.get("generation_rounds", 1))
    groups = float(row.get("batch_groups", prompts_per_step))
    p = float(prompt_tokens)
    prefill = model_flops.cumulative(p, 0.0)
    gen = model_flops.cumulative(n, p)
    forward = model_flops.cumulative(p + n, 0.0)
    return rounds * prompts_per_step * group_size * (prefill + gen) + (3 + extra_forwards) * groups * group_size * forward


def curve_points(history: list[dict[str, Any]], step_flops: Any, metric: str = "eval_accuracy"
                 ) -> tuple[list[float], list[float]]:
    """(cumulative compute, metric) at every evaluated step of one run's history (step 0 included at C = 0);
    ``step_flops(row)`` gives the compute of a training row."""
    cs, rs, total = [], [], 0.0
    for row in history:
        if row.get("step", 0) > 0 and "response_length" in row:
            total += step_flops(row)
        if metric in row and isinstance(row[metric], (int, float)) and math.isfinite(row[metric]):
            cs.append(total)
            rs.append(float(row[metric]))
    return cs, rs


def fit_curves(curves: dict[str, list[tuple[list[float], list[float]]]], *, n_boot: int = 200, seed: int = 0,
               **fit_kw: Any) -> list[dict[str, Any]]:
    """One row per arm: R0 (mean metric at C = 0 over seeds), the fit (A, B, C_mid with bootstrap intervals),
    the largest compute seen and whether A is extrapolated (C_mid beyond it). Arms whose curves cannot be
    fitted get the reason instead of numbers."""
    rows = []
    for arm, cs in curves.items():
        starts = [r[0] for c, r in cs if c and c[0] == 0.0]
        r0 = float(np.mean(starts)) if starts else math.nan
        c_max = max((max(c) for c, _ in cs if c), default=0.0)
        row: dict[str, Any] = {"arm": arm, "seeds": len(cs), "R0": r0, "C_max": c_max}
        if not math.isfinite(r0):
            rows.append({**row, "note": "no step-0 evaluation: R0 unknown"})
            continue
        try:
            b = bootstrap_fit(cs, r0, n_boot=n_boot, seed=seed, **fit_kw)
        except LumosError as e:
            rows.append({**row, "note": str(e)})
            continue
        f, ci = b["fit"], b["ci"]
        notes = []
        if f["C_mid"] > c_max:
            notes.append("C_mid beyond the compute seen: A is an extrapolation")
        a_lo, a_hi = fit_kw.get("a_bounds", (0.0, 1.0))
        b_lo, b_hi = fit_kw.get("b_bounds", (0.05, 20.0))
        at = [n for n, v, lo, hi in (("A", f["A"], a_lo, a_hi), ("B", f["B"], b_lo, b_hi))
              if min(abs(v - lo), abs(v - hi)) < 1e-3 * max(1.0, abs(hi - lo))]
        if at:
            notes.append(f"{' and '.join(at)} at the bound of the search: not identified by these points")
        if not math.isfinite(ci["A"][0]):
            notes.append("no interval (fewer than 3 seeds or too few fittable resamples)")
        row.update(A=f["A"], A_ci=ci["A"], B=f["B"], B_ci=ci["B"], C_mid=f["C_mid"], C_mid_ci=ci["C_mid"],
                   rmse=f["rmse"], n_boot=b["n_boot"], note="; ".join(notes))
        rows.append(row)
    return rows


def format_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """:func:`fit_curves` rows as report cells (intervals in brackets)."""
    def iv(v: float, ci: tuple[float, float], fmt: str) -> str:
        return f"{v:{fmt}} [{ci[0]:{fmt}}, {ci[1]:{fmt}}]" if all(math.isfinite(x) for x in ci) else f"{v:{fmt}}"

    out = []
    for r in rows:
        if "A" not in r:
            out.append({"arm": r["arm"], "seeds": r["seeds"], "R0": f"{r['R0']:.3f}", "note": r.get("note", "")})
            continue
        out.append({"arm": r["arm"], "seeds": r["seeds"], "R0": f"{r['R0']:.3f}", "A (95% CI)": iv(r["A"], r["A_ci"], ".3f"),
                    "B (95% CI)": iv(r["B"], r["B_ci"], ".2f"), "C_mid FLOPs (95% CI)": iv(r["C_mid"], r["C_mid_ci"], ".3g"),
                    "C max": f"{r['C_max']:.3g}", "rmse": f"{r['rmse']:.3f}", "note": r["note"]})
    return out


def curves_figure(curves: dict[str, list[tuple[list[float], list[float]]]], rows: list[dict[str, Any]],
                  metric: str = "eval_accuracy", title: str = "") -> Any:
    """Every arm on one axis: the points of every seed (dots) and the fitted sigmoid (line), compute on a log
    axis (the C = 0 points are drawn at the smallest positive compute / 2)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    fits = {r["arm"]: r for r in rows}
    positive = [x for cs in curves.values() for c, _ in cs for x in c if x > 0]
    floor = min(positive) / 2 if positive else 1.0
    for i, (arm, cs) in enumerate(curves.items()):
        color = f"C{i}"
        xs = [max(x, floor) for c, _ in cs for x in c]
        ys = [y for _, r in cs for y in r]
        ax.scatter(xs, ys, s=8, alpha=0.35, color=color)
        f = fits.get(arm, {})
        if "A" in f and positive:
            grid = np.geomspace(floor, max(positive) * 1.5, 200)
            ax.plot(grid, sigmoid(grid, f["A"], f["B"], f["C_mid"], f["R0"]), color=color,
                    label=f"{arm}: A={f['A']:.2f}, B={f['B']:.2f}")
        else:
            ax.plot([], [], color=color, label=f"{arm}: no fit")
    ax.set_xscale("log")
    ax.set_xlabel("training compute C (rollout + training FLOPs, cumulative)")
    ax.set_ylabel(metric)
    if title:
        ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
