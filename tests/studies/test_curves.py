"""ScaleRL sigmoid fits: known parameters recovered from synthetic curves, intervals that cover them, the FLOPs
count of one RL step by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lumos.analysis.flops import ModelFlops
from lumos.core.errors import LumosError
from lumos.studies.curves import (
    bootstrap_fit,
    curve_points,
    curves_figure,
    fit_curves,
    fit_sigmoid,
    format_rows,
    rl_step_flops,
    sigmoid,
)


def _synthetic(A, B, c_mid, r0, seeds=5, noise=0.01, seed=0):
    rng = np.random.default_rng(seed)
    curves = []
    for s in range(seeds):
        c = np.concatenate([[0.0], np.geomspace(1e9, 1e13, 12) * (1 + 0.05 * s)])
        r = sigmoid(c, A, B, c_mid, r0) + rng.normal(0, noise, c.shape)
        r[0] = r0
        curves.append((c.tolist(), r.tolist()))
    return curves


def test_sigmoid_definition():
    # at C = C_mid the curve is half-way: R0 + (A − R0)/2; at C = 0 it is R0; as C → ∞ it tends to A
    assert abs(float(sigmoid(1e11, 0.8, 1.5, 1e11, 0.1)) - 0.45) < 1e-12
    assert float(sigmoid(0.0, 0.8, 1.5, 1e11, 0.1)) == 0.1
    assert abs(float(sigmoid(1e20, 0.8, 1.5, 1e11, 0.1)) - 0.8) < 1e-9
    # (C_mid / C)^B = (1e11 / 1e12)^2 = 0.01 → R = 0.1 + 0.7 / 1.01
    assert abs(float(sigmoid(1e12, 0.8, 2.0, 1e11, 0.1)) - (0.1 + 0.7 / 1.01)) < 1e-12


@pytest.mark.parametrize("A,B,c_mid", [(0.8, 1.5, 1e11), (0.55, 0.8, 3e10), (0.3, 3.0, 5e11)])
def test_fit_recovers_known_parameters(A, B, c_mid):
    curves = _synthetic(A, B, c_mid, r0=0.1)
    c = np.concatenate([x for x, _ in curves])
    r = np.concatenate([y for _, y in curves])
    f = fit_sigmoid(c, r, 0.1)
    assert abs(f["A"] - A) < 0.02
    assert abs(f["B"] - B) / B < 0.15
    assert abs(math.log(f["C_mid"] / c_mid)) < 0.15
    assert f["rmse"] < 0.015


def test_fit_is_exact_without_noise():
    curves = _synthetic(0.7, 1.2, 2e11, r0=0.05, seeds=1, noise=0.0)
    f = fit_sigmoid(*curves[0], 0.05)
    assert abs(f["A"] - 0.7) < 1e-5 and abs(f["B"] - 1.2) < 1e-4 and abs(f["C_mid"] / 2e11 - 1) < 1e-4


def test_bootstrap_intervals_cover_the_truth_and_shrink_with_less_noise():
    wide = bootstrap_fit(_synthetic(0.8, 1.5, 1e11, 0.1, noise=0.03), 0.1, n_boot=30, seed=1)
    narrow = bootstrap_fit(_synthetic(0.8, 1.5, 1e11, 0.1, noise=0.005), 0.1, n_boot=30, seed=1)
    for b in (wide, narrow):
        lo, hi = b["ci"]["A"]
        assert lo <= 0.8 <= hi or abs(b["fit"]["A"] - 0.8) < 0.01
        assert lo <= b["fit"]["A"] <= hi
    width = {k: b["ci"]["A"][1] - b["ci"]["A"][0] for k, b in (("wide", wide), ("narrow", narrow))}
    assert width["narrow"] < width["wide"]


def test_fewer_than_three_seeds_have_no_interval_and_too_few_points_is_an_error():
    for seeds in (1, 2):     # with 2 seeds every fittable resample is the original pair: a zero-width interval
        b = bootstrap_fit(_synthetic(0.8, 1.5, 1e11, 0.1, seeds=seeds), 0.1, n_boot=5)
        assert b["n_boot"] == 0 and all(math.isnan(x) for x in b["ci"]["A"])
    with pytest.raises(LumosError, match="at least 3 points"):
        fit_sigmoid([0.0, 1.0, 2.0], [0.1, 0.2, 0.3], 0.1)


def test_fit_curves_flags_extrapolation_and_draws_one_figure():
    curves = {"fast": _synthetic(0.8, 1.5, 1e10, 0.1, seeds=3), "slow": _synthetic(0.9, 1.5, 3e13, 0.1, seeds=3, noise=0.003)}
    rows = fit_curves(curves, n_boot=10)
    by = {r["arm"]: r for r in rows}
    assert by["fast"]["note"] == "" and "extrapolation" in by["slow"]["note"]
    two = fit_curves({"two seeds": _synthetic(0.8, 1.5, 1e11, 0.1, seeds=2)}, n_boot=5)[0]
    assert math.isnan(two["A_ci"][0]) and "no interval" in two["note"]
    assert abs(by["fast"]["R0"] - 0.1) < 1e-12
    assert all("A (95% CI)" in r for r in format_rows(rows))
    fig = curves_figure(curves, rows)
    assert len(fig.axes) == 1 and len(fig.axes[0].lines) == 2


def test_rl_step_flops_by_hand():
    # per_token(t) = 10 + 1·t. Prompt 3 tokens, mean response 2 tokens, 1 round of P·G = 2·2 samples, 2 groups kept.
    # prefill = Σ_{t=1..3} (10 + t) = 36; generation = Σ_{t=4..5} (10 + t) = 29; forward(5) = Σ_{t=1..5} = 65.
    # rollout = 4 · (36 + 29) = 260; training = 3 · 2 · 2 · 65 = 780 → 1040; with a reference forward 4·4·65 → 1300.
    mf = ModelFlops("toy", const=10.0, per_ctx=1.0, active_params=5.0)
    row = {"response_length": 2.0, "generation_rounds": 1, "batch_groups": 2}
    assert rl_step_flops(mf, row, prompt_tokens=3, prompts_per_step=2, group_size=2) == 1040.0
    assert rl_step_flops(mf, row, prompt_tokens=3, prompts_per_step=2, group_size=2, extra_forwards=1) == 1300.0
    hist = [{"step": 0, "eval_accuracy": 0.1}, {"step": 1, **row}, {"step": 2, **row, "eval_accuracy": 0.3}]
    c, r = curve_points(hist, lambda x: rl_step_flops(mf, x, prompt_tokens=3, prompts_per_step=2, group_size=2))
    assert c == [0.0, 2080.0] and r == [0.1, 0.3]
