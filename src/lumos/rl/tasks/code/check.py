"""``lumos rl check-tasks DIR``: check a directory of code-repair tasks before training on it.

Every task runs unpatched and with its reference fix (see :meth:`~lumos.rl.tasks.code.RepairTask.check`);
one line per task, then its problems. Exit status 1 when any task has a problem, 2 for a directory that
cannot be loaded (a symlink, a file outside the task, bad ``task.json``: one line naming it).
"""

from __future__ import annotations

import argparse
import json

__all__ = ["add_check_tasks", "check_tasks"]


def add_check_tasks(sub: argparse._SubParsersAction) -> None:
    """Add ``check-tasks`` to the ``lumos rl`` subcommands."""
    check = sub.add_parser("check-tasks", help="check a directory of code-repair tasks: failing tests as declared, "
                                               "reference fixes rewarded")
    check.add_argument("root", help="directory with one sub-directory (task.json + repo/) per task")
    check.add_argument("--json", action="store_true", help="print the rows as JSON")
    check.set_defaults(func=check_tasks)


def check_tasks(args: argparse.Namespace) -> int:
    """Run the check; print the rows; 0 when every task is sound, else 1."""
    from lumos.rl.tasks.code.repair import RepairTask

    task = RepairTask(root=args.root)
    try:
        rows = task.check()
    finally:
        task.pool.close()
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for r in rows:
            fix = "no fix" if r["fix_reward"] is None else f"fix reward {r['fix_reward']:g}"
            print(f"{r['task']}: {r['harness']} harness, {r['tests']} tests, failing {', '.join(r['failing']) or '-'}; "
                  f"{fix}; {'ok' if not r['problems'] else 'PROBLEMS'}")
            for msg in r["problems"]:
                print(f"  - {msg}")
    return 1 if any(r["problems"] for r in rows) else 0
