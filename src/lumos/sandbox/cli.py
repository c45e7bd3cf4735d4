"""``lumos sandbox run FILE.py [--tests TESTS.py]`` and ``lumos sandbox info`` (code-repair tasks are checked by
``lumos rl check-tasks``, in :mod:`lumos.rl.tasks.code.check`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from lumos.cli.common import add_run_options
from lumos.core.errors import LumosError

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sandbox", help="run untrusted Python in the sandbox and print the verdict")
    ssub = p.add_subparsers(dest="sandbox_command", metavar="SUBCOMMAND", parser_class=type(p))
    run = ssub.add_parser("run", help="run FILE.py (against the test_* functions of --tests) in a sandbox")
    run.add_argument("file", help="the candidate Python file")
    run.add_argument("--tests", default=None, help="Python file of test_* functions (see the candidate's names)")
    run.add_argument("--wall-time", type=float, default=10.0,
                     help="wall-clock limit in seconds, > 0 and at most 86400 (default 10)")
    run.add_argument("--cpu-time", type=float, default=None,
                     help="CPU-time limit in seconds, > 0 and at most 86400 (default: the wall time)")
    run.add_argument("--memory-mb", type=int, default=512, help="address-space limit in MiB, at least 64 (default 512)")
    run.add_argument("--max-processes", type=int, default=32, help="process limit, at least 1 (default 32)")
    run.add_argument("--json", action="store_true", help="print the verdict as JSON")
    add_run_options(run)
    run.set_defaults(func=_run)
    info = ssub.add_parser("info", help="report which isolation this machine allows")
    info.set_defaults(func=_info)
    p.set_defaults(func=lambda args: (p.print_help(), 0)[1])


def _read(path: str, what: str) -> str:
    f = Path(path)
    if not f.is_file():
        raise LumosError(f"The {what} {path!r} does not exist or is not a file; pass a Python file.")
    try:
        return f.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise LumosError(f"The {what} {path} is not UTF-8 text (byte {exc.start}: {exc.reason}); save it as "
                         "UTF-8.") from None


def _limits(args: argparse.Namespace) -> dict:
    """The limits the flags ask for (``--cpu-time`` defaults to ``--wall-time``); :class:`SandboxLimits` checks them
    against :data:`~lumos.sandbox.limits.LIMIT_BOUNDS`, all problems in one message, named by flag by the CLI."""
    cpu = args.wall_time if args.cpu_time is None else args.cpu_time
    return {"wall_time": args.wall_time, "cpu_time": cpu, "memory_mb": args.memory_mb,
            "max_processes": args.max_processes}


def _run(args: argparse.Namespace) -> int:
    from lumos.core.io import atomic_write_json
    from lumos.core.rundir import RunDir
    from lumos.sandbox import SandboxLimits, run_script, run_tests

    limits = SandboxLimits(**_limits(args))
    source = _read(args.file, "candidate file")
    tests = _read(args.tests, "tests file") if args.tests else None
    verdict = run_tests(source, tests, limits) if tests is not None else run_script(source, limits)
    config = {"file": args.file, "tests": args.tests, "limits": limits.to_dict()}
    with RunDir.create("sandbox-run", config, out=args.out, seed=args.seed) as rd:
        rd.log(verdict.to_dict())
        atomic_write_json(rd.path / "verdict.json", verdict.to_dict())
        sec = rd.report.section("Verdict")
        sec.table([_summary(verdict)])
        sec.code(verdict.stdout or "(no stdout)")
    if args.json:
        print(json.dumps(verdict.to_dict(), indent=2))
    else:
        for key, value in _summary(verdict).items():
            print(f"{key:>18}: {value}")
        for name, err in verdict.errors.items():
            print(f"{'FAILED ' + name:>18}: {err}")
        if verdict.exit_reason == "error":
            print(f"{'why':>18}: {verdict.setup_error or verdict.stderr.strip() or 'the sandbox could not be set up'}")
        if verdict.stdout:
            print("--- stdout ---\n" + verdict.stdout.rstrip())
        if verdict.stderr:
            print("--- stderr ---\n" + verdict.stderr.rstrip())
        print(f"run: {rd.path}")
    ok = verdict.exit_reason == "ok" and (tests is None or verdict.all_passed)
    return 0 if ok else 1


def _summary(v) -> dict:  # noqa: ANN001 - a Verdict
    return {"exit_reason": v.exit_reason, "tests passed": f"{len(v.passed)}/{v.n_tests}",
            "wall time (s)": round(v.wall_time, 3), "cpu time (s)": round(v.cpu_time, 3),
            "max rss (MiB)": round(v.max_rss_kb / 1024, 1), "network isolated": v.network_isolated,
            "pid namespace": v.pid_namespace, "read-only fs": v.readonly_fs, "fresh uid": v.uid_dropped}


def _info(args: argparse.Namespace) -> int:
    from lumos.sandbox import isolation_summary

    for line in isolation_summary():
        print(line)
    return 0
