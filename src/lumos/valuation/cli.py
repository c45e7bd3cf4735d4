"""``lumos value``: value the training points of a CSV/NPZ file or a built-in dataset with CHG and baselines.

    lumos value DATA.csv --label-col y --noise 0.1 --methods chg,knn,tmc,loss
    lumos value builtin:digits --noise 0.1

Splits the data (train / validation / test, features standardised with training statistics), flips
``--noise`` of the training labels to another class, runs every method, and writes into the run directory
``values.csv`` (one row per training point: label used, original label, noisy flag, one column per method),
``results.json`` and a report with the F1/AUC/time table and point-removal curves.
"""

from __future__ import annotations

import argparse

from lumos.cli.common import add_run_options, parse_csv_list

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("value", help="CHG Shapley data valuation with baselines; values CSV + report")
    p.add_argument("data", help="DATA.csv, DATA.npz (arrays X and the label column) or builtin:NAME "
                                "(digits, breast_cancer, wine, gaussian)")
    p.add_argument("--label-col", default="y", help="label column (CSV) or array name (NPZ) (default: y)")
    p.add_argument("--noise", type=float, default=0.0, help="fraction of training labels flipped to another class")
    p.add_argument("--methods", default="chg,knn,loss,random", help="comma-separated methods (default: chg,knn,loss,random)")
    p.add_argument("--train", type=float, default=0.6, help="training split: fraction (< 1) or count (default 0.6)")
    p.add_argument("--val", type=float, default=0.15, help="validation split: fraction (< 1) or count (default 0.15)")
    p.add_argument("--variant", default="bias", choices=["bias", "full"],
                   help="CHG gradient variant: bias (paper valuation code, default) or full (bias + weight)")
    p.add_argument("--alpha", default="train", choices=["train", "valid"],
                   help="CHG target direction: mean training vector (paper, default) or mean validation vector")
    p.add_argument("--epochs", type=int, default=10, help="training epochs of the built-in model (default 10)")
    p.add_argument("--model", default="logreg", choices=["logreg", "mlp"], help="built-in model (default logreg)")
    p.add_argument("--tmc-max-time", type=float, default=120.0, help="time cap of TMC in seconds (default 120)")
    p.add_argument("--no-removal", action="store_true", help="skip the point-removal curves")
    add_run_options(p)
    p.set_defaults(func=_run)
    from lumos.studies.selection_cli import register as register_select_study

    register_select_study(sub)


def _load(spec: str, label_col: str, seed: int):  # noqa: ANN202 - numpy arrays
    from lumos.valuation.data import load_builtin, load_table

    if spec.startswith("builtin:"):
        return load_builtin(spec.split(":", 1)[1], seed=seed)
    return load_table(spec, label_col)


def _run(args: argparse.Namespace) -> int:
    from lumos.core.io import atomic_write_json
    from lumos.core.rundir import RunDir
    from lumos.core.validation import check_float, check_in_range, check_positive_int
    from lumos.valuation.base import write_values_csv
    from lumos.valuation.baselines import REGISTRY, valuer_params
    from lumos.valuation.evaluation import compare_methods, noisy_label_data, removal_curves, removal_figure

    methods = parse_csv_list(args.methods, REGISTRY, "method")
    check_in_range(args.noise, "--noise", 0.0, 1.0, owner="lumos value", high_inclusive=False)
    check_positive_int(args.epochs, "--epochs", owner="lumos value")
    check_float(args.tmc_max_time, "--tmc-max-time", 0.0, owner="lumos value", low_inclusive=False)
    for name in ("train", "val"):
        check_float(getattr(args, name), f"--{name}", 0.0, owner="lumos value", low_inclusive=False)
    X, y = _load(args.data, args.label_col, args.seed)
    data = noisy_label_data(X, y, noise=args.noise, n_train=args.train, n_val=args.val, seed=args.seed)
    split, y_noisy, noisy = data.split, data.y_noisy, data.noisy
    # the options each method's constructor takes (variant/alpha: CHG only, max_time: TMC only)
    params = valuer_params(methods, variant=args.variant, alpha=args.alpha, epochs=args.epochs, model=args.model,
                           max_time=args.tmc_max_time, seed=args.seed)
    config = {**vars(args), "func": None, "n_train": len(y_noisy), "n_val": len(split.y_val), "n_test": len(split.y_test)}
    with RunDir.create("value", config, out=args.out, seed=args.seed, title="lumos value") as run:
        rows, values = compare_methods(methods, split.X_train, y_noisy, noisy, split.X_val, split.y_val, params)
        for row in rows:
            run.log(row)
            print(f"{row['method']:>10}  {row['seconds']:9.3f} s  F1 {row['f1']:.3f}  AUC {row['auc']:.3f}")
        cols = {"label": y_noisy, "original_label": split.y_train, "noisy": noisy.astype(int), **values}
        write_values_csv(run.path / "values.csv", cols)
        sec = run.report.section("Noisy-label detection")
        sec.text(f"{args.data}: {len(y_noisy)} training points ({int(noisy.sum())} labels flipped, noise "
                 f"{args.noise}), {len(split.y_val)} validation, {len(split.y_test)} test.")
        sec.table(rows, caption="F1: low cluster of a 1-D 2-means split of the values; AUC: −value as the noisy score.")
        result = {"rows": rows}
        if not args.no_removal:
            fractions = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]
            curves = removal_curves(values, data, fractions)
            fig = removal_figure(curves, fractions)
            run.save_figure(fig, "removal_curves")
            run.report.section("Point removal").figure(fig, caption="Test accuracy of logistic regression "
                                                       "retrained after removing points by value.")
            result["removal"] = {"fractions": fractions, "curves": curves}
        atomic_write_json(run.path / "results.json", result)
    print(f"values: {run.path / 'values.csv'}\nreport: {run.path / 'report.html'}")
    return 0
