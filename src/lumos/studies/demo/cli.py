"""``lumos demo``."""

from __future__ import annotations

import argparse
import sys

from lumos.cli.common import add_run_options


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="tour of all three systems on built-in data; writes an HTML report")
    add_run_options(p)
    p.add_argument("--quick", action="store_true", help="smallest sizes (smoke test, seconds)")
    p.add_argument("--only", default=None, help="comma-separated section titles (substring match)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from lumos.studies.demo import run_demo

    only = [s.strip() for s in args.only.split(",")] if args.only else None
    run, failed = run_demo(out=args.out, quick=args.quick, seed=args.seed, only=only)
    print(f"report: {run.path / 'report.html'}")
    if failed:
        print(f"lumos: demo sections failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0
