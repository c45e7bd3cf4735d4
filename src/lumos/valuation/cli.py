"""``lumos value``: value the rows of a CSV/NPZ file or a built-in dataset with CHG and baselines.

    lumos value DATA.csv --label-col y --id-col customer_id             # values the training split's rows
    lumos value DATA.csv --val-data VAL.csv --label-col y                # values every row of DATA.csv
    lumos value builtin:digits --noise 0.1                               # noisy-label detection benchmark

Tables as users have them: an ``--id-col`` (kept as identity), ``--drop-cols``, text columns one-hot encoded
(``--categorical`` for numeric codes), missing cells imputed (``--impute mean|median|drop``); every choice is
printed once. Without ``--val-data`` the rows are split (train / validation / test, stated in the report) and
the training rows are valued. ``--noise`` flips that fraction of the training labels to another class and
measures how well each method finds them (F1/AUC; without it they are ``null``, with the reason).

The run directory holds ``values.csv`` (one line per valued row, sorted by ``row``: its 0-based row in the
file (header and blank lines not counted, as ``pandas.read_csv`` numbers them), the ``--id-col`` value, the
label, with ``--noise`` the label used and a ``flipped`` flag, and one column per method; higher = more
valuable), ``results.json`` (no NaN: absent metrics are ``null``) and a report with point-removal curves.
"""

from __future__ import annotations

import argparse
from typing import Any

from lumos.cli.common import add_run_options, parse_csv_list
from lumos.valuation.data import DEFAULT_SPLIT
from lumos.valuation.table import IMPUTE

__all__ = ["register"]



def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("value", help="CHG Shapley data valuation with baselines; values CSV + report")
    p.add_argument("data", help="DATA.csv (a header row), DATA.npz (arrays X and the label column) or builtin:NAME "
                                "(digits, breast_cancer, wine, gaussian)")
    p.add_argument("--label-col", default="y", help="label column (CSV) or array name (NPZ) (default: y)")
    p.add_argument("--val-data", default=None, metavar="FILE",
                   help="validation rows from FILE (same columns); every row of DATA is then valued")
    p.add_argument("--id-col", default=None, help="a column naming each row (not a feature), copied into values.csv")
    p.add_argument("--drop-cols", default=None, metavar="COLS", help="comma-separated columns to ignore")
    p.add_argument("--categorical", default=None, metavar="COLS",
                   help="comma-separated numeric columns to one-hot encode (text columns always are)")
    p.add_argument("--impute", default="mean", choices=IMPUTE,
                   help="missing cells: the training mean or median (text columns: the most frequent category), "
                        "or drop the rows (default: mean)")
    p.add_argument("--noise", type=float, default=0.0, help="fraction of training labels flipped to another class")
    p.add_argument("--methods", default="chg,knn,loss,random", help="comma-separated methods (default: chg,knn,loss,random)")
    p.add_argument("--train", type=float, default=None,
                   help=f"training split: fraction (< 1) or count (default {DEFAULT_SPLIT[0]}; not with --val-data)")
    p.add_argument("--val", type=float, default=None,
                   help=f"validation split: fraction (< 1) or count (default {DEFAULT_SPLIT[1]}; not with --val-data)")
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


def _check_args(args: argparse.Namespace) -> list[str]:
    """Validate every option before any data is read; returns the methods."""
    from lumos.core.validation import check_float, check_in_range, check_positive_int

    methods = parse_csv_list(args.methods, _methods(), "method")
    check_in_range(args.noise, "--noise", 0.0, 1.0, owner="lumos value", high_inclusive=False)
    check_positive_int(args.epochs, "--epochs", owner="lumos value")
    check_float(args.tmc_max_time, "--tmc-max-time", 0.0, owner="lumos value", low_inclusive=False)
    for name in ("train", "val"):
        check_float(getattr(args, name), f"--{name}", 0.0, owner="lumos value", low_inclusive=False, allow_none=True)
    return methods


def _methods() -> Any:
    """The valuer registry (names resolve through it; an unknown one gets its error)."""
    from lumos.valuation.baselines import REGISTRY

    return REGISTRY


def _detection(noise: float, n_flipped: int, n: int) -> str | None:
    """Why noisy-label detection is not measured, or None when it is."""
    if noise == 0:
        return "no labels were flipped (--noise 0), so there is nothing to detect; pass e.g. --noise 0.1"
    if n_flipped == 0:
        return f"--noise {noise} flips int({noise} x {n}) = 0 of the {n} training labels; raise --noise"
    return None


def _values_table(inp: Any, y_noisy: Any, noisy: Any, values: dict[str, Any], flipped: bool) -> dict[str, Any]:
    """values.csv's columns, one line per valued row, sorted by the row's number in the file."""
    import numpy as np

    order = np.argsort(inp.rows, kind="stable")
    cols: dict[str, Any] = {"row": inp.rows[order]}
    if inp.ids is not None:
        reserved = {"row", "label", "noisy_label", "flipped", *values}
        cols[inp.id_col if inp.id_col not in reserved else "id"] = inp.ids[order]
    cols["label"] = inp.classes[inp.split.y_train][order]
    if flipped:
        cols["noisy_label"] = inp.classes[y_noisy][order]
        cols["flipped"] = noisy.astype(int)[order]
    cols.update((m, v[order]) for m, v in values.items())
    return cols


def _run(args: argparse.Namespace) -> int:
    import json

    from lumos.core.io import atomic_write_text
    from lumos.core.rundir import RunDir
    from lumos.valuation.base import write_values_csv
    from lumos.valuation.baselines import valuer_params
    from lumos.valuation.data import load_valuation_data
    from lumos.valuation.evaluation import (
        NoisyData,
        compare_methods,
        inject_label_noise,
        removal_curves,
        removal_figure,
    )

    methods = _check_args(args)
    lists = {k: parse_csv_list(getattr(args, k), what="column") if getattr(args, k) is not None else []
             for k in ("drop_cols", "categorical")}
    inp = load_valuation_data(args.data, args.label_col, val_data=args.val_data, id_col=args.id_col,
                              impute=args.impute, n_train=args.train, n_val=args.val, seed=args.seed, **lists)
    split = inp.split
    y_noisy, noisy = inject_label_noise(split.y_train, args.noise, len(inp.classes), seed=args.seed)
    why_not = _detection(args.noise, int(noisy.sum()), len(noisy))
    print(inp.description)
    for note in inp.notes:
        print(f"note: {note}")
    if why_not:
        print(f"noisy-label detection (F1/AUC): not measured: {why_not}")
    # the options each method's constructor takes (variant/alpha: CHG only, max_time: TMC only)
    params = valuer_params(methods, variant=args.variant, alpha=args.alpha, epochs=args.epochs, model=args.model,
                           max_time=args.tmc_max_time, seed=args.seed)
    config = {**vars(args), "func": None, "n_train": len(y_noisy), "n_val": len(split.y_val), "n_test": len(split.y_test)}
    with RunDir.create("value", config, out=args.out, seed=args.seed, title="lumos value") as run:
        rows, values = compare_methods(methods, split.X_train, y_noisy, noisy, split.X_val, split.y_val, params)
        for row in rows:
            run.log(row)
            scores = "" if why_not else f"  F1 {row['f1']:.3f}  AUC {row['auc']:.3f}"
            print(f"{row['method']:>10}  {row['seconds']:9.3f} s{scores}")
        write_values_csv(run.path / "values.csv", _values_table(inp, y_noisy, noisy, values, args.noise > 0))
        sec = run.report.section("Data")
        sec.text(inp.description + ".")
        for note in inp.notes:
            sec.text(note + ".")
        sec = run.report.section("Noisy-label detection" if not why_not else "Values")
        sec.text(f"{len(y_noisy)} training rows valued ({int(noisy.sum())} labels flipped, noise {args.noise}), "
                 f"{len(split.y_val)} validation rows. values.csv: one line per valued row, keyed by its row.")
        shown = rows if not why_not else [{k: v for k, v in r.items() if k not in ("f1", "auc")} for r in rows]
        sec.table(shown, caption=("F1: low cluster of a 1-D 2-means split of the values; AUC: −value as the noisy "
                                  "score." if not why_not else f"F1/AUC not measured: {why_not}."))
        result: dict[str, Any] = {
            "data": {"source": args.data, "val_data": args.val_data, "description": inp.description,
                     "notes": inp.notes, "n_valued": len(y_noisy), "classes": inp.classes.tolist()},
            "detection": {"measured": why_not is None, "reason": why_not},
            "rows": rows,
        }
        if not args.no_removal:
            fractions = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]
            curves = removal_curves(values, NoisyData(split, y_noisy, noisy), fractions)
            fig = removal_figure(curves, fractions)
            run.save_figure(fig, "removal_curves")
            test = "the validation file" if args.val_data else "the test split"
            run.report.section("Point removal").figure(fig, caption="Accuracy on " + test + " of logistic "
                                                       "regression retrained after removing points by value.")
            result["removal"] = {"fractions": fractions, "curves": curves, "evaluated_on": test}
        # allow_nan=False: a NaN would be a bug here (absent metrics are null), never silently written
        atomic_write_text(run.path / "results.json", json.dumps(result, indent=2, allow_nan=False) + "\n")
    print(f"values: {run.path / 'values.csv'}\nreport: {run.path / 'report.html'}")
    return 0
