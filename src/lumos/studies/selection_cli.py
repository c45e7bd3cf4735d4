"""``lumos select-study``: CHG data selection against AdaptiveRandom, GradMatch-PB and GLISTER-PB.

    lumos select-study                      # the README grid (about 30–40 min of one core)
    lumos select-study --quick              # smoke size (seconds)
    lumos select-study --datasets digits --settings noise30 --seeds 5

Writes a run directory: ``metrics.jsonl`` (one row per training run), ``results.json`` / ``results.md``
(mean ± sd tables), ``plots/selection_<setting>.png`` and ``report.html``. ``--resume`` with the same ``--out``
skips the runs already logged (an interrupted study continues where it stopped). Seeds are ``--seed`` ..
``--seed + --seeds − 1``, so a grid can be split across processes (``--seed 2 --seeds 1``) and the
``metrics.jsonl`` rows concatenated into one directory for the report (``--resume``). A resume must repeat the
stored configuration (only the seed range may grow) and is refused, before anything is written, on a directory
that another command wrote.
"""

from __future__ import annotations

import argparse

from lumos.cli.common import add_run_options, parse_csv_list

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("select-study", help="CHG data selection vs AdaptiveRandom/GradMatch/GLISTER; tables + plots")
    p.add_argument("--quick", action="store_true", help="smoke size: 1 seed, 2 fractions, 2 epochs (seconds)")
    p.add_argument("--datasets", default=None, help="comma-separated: shapes,digits (default: both)")
    p.add_argument("--settings", default=None, help="comma-separated: clean,noise30,imbalance (default: all)")
    p.add_argument("--methods", default=None, help="comma-separated: chg,random,gradmatch,glister (default: all)")
    p.add_argument("--fractions", default=None, help="comma-separated fractions in (0, 1) (default: 0.05,0.1,0.3,0.5)")
    p.add_argument("--seeds", type=int, default=None, help="number of seeds (default 3; --quick 1)")
    p.add_argument("--epochs", type=int, default=None, help="training epochs per run (default 20; --quick 2)")
    p.add_argument("--select-every", type=int, default=None, help="re-select every R epochs (default 5)")
    p.add_argument("--no-full", action="store_true", help="skip the full-data reference runs")
    p.add_argument("--resume", action="store_true", help="reuse --out and skip the runs already in metrics.jsonl")
    add_run_options(p)  # --seed: the first of the --seeds consecutive seeds
    p.set_defaults(func=_run)


def _config(args: argparse.Namespace):  # noqa: ANN202 - SelectionStudyConfig (imported lazily)
    from lumos.core.errors import LumosError
    from lumos.studies.selection_study import STUDY_DATASETS, SelectionStudyConfig
    from lumos.valuation.evaluation import SETTINGS
    from lumos.valuation.selection_baselines import SELECTORS

    over: dict = {}
    if args.datasets:
        over["datasets"] = tuple(parse_csv_list(args.datasets, STUDY_DATASETS, "dataset"))
    if args.settings:
        over["settings"] = tuple(parse_csv_list(args.settings, SETTINGS, "setting"))
    if args.methods:
        over["methods"] = tuple(parse_csv_list(args.methods, SELECTORS, "method"))
    if args.fractions:
        try:
            over["fractions"] = tuple(float(v) for v in parse_csv_list(args.fractions, None, "fraction"))
        except ValueError:
            raise LumosError(f"--fractions must be comma-separated numbers in (0, 1); got {args.fractions!r}.") from None
    for name in ("seeds", "epochs", "select_every"):
        if getattr(args, name) is not None:
            over[name] = getattr(args, name)
    if args.no_full:
        over["full"] = False
    over["first_seed"] = args.seed
    return SelectionStudyConfig.quick(**over) if args.quick else SelectionStudyConfig(**over)


#: config fields a resume may change: the seed range (a grid split over processes by seed is resumed whole)
_RESUMABLE = ("seeds", "first_seed")


def _check_resume(out: str | None, cfg) -> None:  # noqa: ANN001 - SelectionStudyConfig
    """Before any write: ``--out`` must be a select-study run whose stored configuration equals ``cfg`` but for
    the seed range; otherwise its logged rows would be reused under another configuration."""
    import json
    from pathlib import Path

    from lumos.core.errors import LumosError
    from lumos.core.io import read_json, to_json
    from lumos.core.rundir import is_run_dir

    if out is None:
        raise LumosError("--resume needs --out DIR, the select-study run directory to continue.")
    d = Path(out)
    if not is_run_dir(d):
        raise LumosError(f"--resume: {d} is not a run directory; check --out, or drop --resume to start a new study.")
    manifest = read_json(d / "manifest.json") if (d / "manifest.json").is_file() else {}
    if not isinstance(manifest, dict) or manifest.get("command") != "select-study":
        return      # another command's run: RunDir.create refuses it, before any write
    stored = read_json(d / "config.json")
    mine = json.loads(to_json(cfg.to_dict()))
    if not isinstance(stored, dict):
        raise LumosError(f"--resume: {d}/config.json is not an object; the run directory is damaged.")
    diff = sorted(k for k in set(mine) | set(stored) if k not in _RESUMABLE and mine.get(k) != stored.get(k))
    if diff:
        shown = ", ".join(f"{k} {mine.get(k)!r} (stored {stored.get(k)!r})" for k in diff[:4])
        raise LumosError(f"--resume: {d} was run with another configuration: {shown}; its rows would be reused "
                         "under the new one. Pass the stored settings, or start a new --out.")


def _run(args: argparse.Namespace) -> int:
    from lumos.core.io import read_jsonl
    from lumos.core.rundir import RunDir
    from lumos.studies.selection_study import run_selection_study, write_study_report

    cfg = _config(args)  # every problem reported before the run directory exists
    if args.resume:
        _check_resume(args.out, cfg)
    with RunDir.create("select-study", cfg.to_dict(), out=args.out, seed=args.seed, resume=args.resume,
                       title="lumos select-study: CHG data selection vs baselines") as run:
        done = read_jsonl(run.metrics_path) if args.resume else []
        rows = run_selection_study(cfg, log=run.log, done=done, progress=lambda line: print(line, flush=True))
        write_study_report(run, cfg, rows)
    print(f"tables: {run.path / 'results.md'}\nreport: {run.path / 'report.html'}")
    return 0
