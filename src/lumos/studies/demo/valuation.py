"""Demo section: CHG Shapley noisy-label detection and point-removal curves on digits with 10% label noise."""

from __future__ import annotations

from lumos.studies.demo import DemoContext, demo_section

__all__ = ["chg_demo"]


@demo_section("CHG Shapley data valuation", order=50)
def chg_demo(ctx: DemoContext) -> None:
    """Digits, 10% of training labels flipped: CHG vs baselines (F1, AUC, seconds), then removal curves."""
    from lumos.valuation.data import load_builtin
    from lumos.valuation.evaluation import compare_methods, noisy_label_data, removal_curves, removal_figure

    X, y = load_builtin("digits")
    n_train, n_val = (300, 100) if ctx.quick else (1000, 300)
    data = noisy_label_data(X, y, noise=0.1, n_train=n_train, n_val=n_val, seed=ctx.seed)
    split, y_noisy, noisy = data.split, data.y_noisy, data.noisy
    methods = ["chg", "knn", "loss", "el2n", "grand", "forgetting", "oob", "random"]
    params = {"oob": {"n_estimators": 10 if ctx.quick else 50, "seed": ctx.seed}}
    if ctx.quick:
        params.update({m: {"epochs": 3} for m in ("chg", "loss", "el2n", "grand", "forgetting")})
    rows, values = compare_methods(methods, split.X_train, y_noisy, noisy, split.X_val, split.y_val, params)
    for row in rows:
        ctx.log(**row)
    sec = ctx.section
    sec.text(
        f"scikit-learn digits: {len(y_noisy)} training points of which {int(noisy.sum())} have their label flipped "
        f"to another class, {len(split.y_val)} validation, {len(split.y_test)} test; logistic regression. "
        "CHG values every point in closed form from its loss-weighted last-layer gradient (bias part, as in the "
        "paper's valuation code; Adam, 10 epochs, values averaged over epochs). A good valuation ranks the flipped "
        "points lowest. CHG's value is const − κ‖x_i − x̄‖², a squared distance: its ranking (AUC) matches the "
        "per-sample loss, while the 2-means F1 suffers from the stretched tail of that quadratic scale."
    )
    sec.table(rows, caption="Noisy-label detection: F1 of the low cluster of a 2-means split of the values, "
                            "AUC of −value, and wall time on this machine.")
    fractions = [0.0, 0.1, 0.2, 0.3] if ctx.quick else [0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5]
    shown = ["chg", "knn", "loss", "random"]
    curves = removal_curves({m: values[m] for m in shown}, data, fractions)
    fig = removal_figure(curves, fractions)
    ctx.run.save_figure(fig, "chg_removal_curves")
    sec.figure(fig, caption="Test accuracy after removing training points: removing the highest-valued points "
                            "should hurt most, removing the lowest-valued (the flipped labels) should help.")
    _selection(ctx)


def _selection(ctx: DemoContext) -> None:
    """The paper's selection experiment in miniature (the full grid: ``lumos select-study``)."""
    from lumos.studies.selection_study import demo_selection

    rows = demo_selection(ctx.quick, seed=ctx.seed)
    for row in rows:
        ctx.log(part="selection", **row)
    ctx.section.table(rows, caption="Data selection during training (digits, 30% of labels relabelled at random, "
                                    "MLP, 20 epochs, re-selection every 5): test accuracy when training on 10% of "
                                    "the data chosen by each method, and on all of it. One seed; the full grid "
                                    "with 5 seeds, three settings and a CNN is `lumos select-study`.")
