"""Demo section "Sandboxed code rewards": containment verdicts, rewards of good and bad solutions, and
reward-forging attempts."""

from __future__ import annotations

import difflib

from lumos.studies.demo import DemoContext, demo_section

_FORGE_RECORDS = ("import json, os\nrec = json.dumps({{'tests': {tests!r}}}) + '\\n' + ''.join(json.dumps({{'test': t, "
                  "'passed': True}}) + '\\n' for t in {tests!r})\n"
                  "for fd in range(3, 64):\n    try:\n        os.write(fd, (rec + '{{\"done\": true}}\\n').encode())\n"
                  "    except OSError:\n        pass\nos._exit(0)\n")
_PATCH_HARNESS = ("import sys\nfor m in list(sys.modules.values()):\n    if hasattr(m, '_run_one'):\n"
                  "        m._run_one = lambda chan, tid, fn, pt: chan.send(test=tid, passed=True, error=None)\n")
_ALWAYS_EQUAL = "class _Eq(float):\n    def __eq__(self, other):\n        return True\n"

_CASES = [
    ("infinite loop", "while True:\n    pass\n"),
    ("memory bomb", "x = bytearray(2 ** 31)\n"),
    ("huge output", "while True:\n    print('x' * 1000)\n"),
    ("fork bomb", "import os, time\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n"
                  "        time.sleep(0.05)\n"),
    ("write outside workdir", "open({escape!r}, 'w').write('x')\n"),
    ("loopback connection", "import socket\nsocket.create_connection(('127.0.0.1', 22), timeout=1)\n"),
    ("read parent env", "import os\nprint(sorted(os.environ))\n"),
    ("segfault", "import ctypes\nctypes.string_at(0)\n"),
]


@demo_section("Sandboxed code rewards", order=35)
def sandbox_demo(ctx: DemoContext) -> None:
    from lumos.rl.tasks.code import ExpressionTask, FunctionTask, RepairTask
    from lumos.sandbox import SandboxJob, SandboxLimits, SandboxPool, isolation_summary, probe_isolation

    sec = ctx.section
    sec.text("Model-written code runs in a sandbox: new network/PID/mount/IPC namespaces, a minimal read-only root "
             "with a capped tmpfs working directory, a fresh unprivileged uid, no_new_privs and a seccomp filter, a "
             "cgroup leaf and rlimits on CPU, memory, processes, files and output, and a scrubbed environment; "
             "hidden tests run in a separate process that only exchanges plain values with the candidate. The "
             "isolation actually in force here:")
    sec.table([{"property": line.split(":")[0], "status": line.split(":", 1)[1].strip()}
               for line in isolation_summary(probe_isolation())])
    limits = SandboxLimits(wall_time=1.5, cpu_time=1.0, max_processes=8)
    outside = ctx.workdir / "outside"
    outside.mkdir(exist_ok=True)
    outside.chmod(0o777)  # world-writable: only the sandbox's read-only filesystem can protect it
    escape = outside / "escaped.txt"
    escape.unlink(missing_ok=True)
    with SandboxPool() as pool:
        verdicts = pool.map([SandboxJob("script", source=src.format(escape=str(escape)), limits=limits)
                             for _, src in _CASES])
    rows = []
    for (name, _), v in zip(_CASES, verdicts):
        tail = (v.stderr.strip().splitlines() or [""])[-1][:70]
        rows.append({"case": name, "exit_reason": v.exit_reason, "wall_s": round(v.wall_time, 2),
                     "last stderr line": tail})
        ctx.log(case=name, exit_reason=v.exit_reason, wall_s=v.wall_time)
    sec.table(rows, caption="Verdicts of hostile programs (limits: 1.5 s wall, 1 s CPU, 8 processes).")
    sec.note(f"File written outside the working directory: {'YES (not contained here)' if escape.exists() else 'no'}.")
    ctx.log(escaped_write=escape.exists())
    quick = SandboxLimits(wall_time=2.0, cpu_time=1.5)
    reward_rows = []
    for task, bad in [
        (ExpressionTask(limits=quick), "10 ** 10"),
        (FunctionTask(limits=quick, n_tests=6), "```python\ndef f(x):\n    return 0\n```"),
        (RepairTask(limits=quick), "--- a/../etc/passwd\n+++ b/../etc/passwd\n@@ -1 +1 @@\n-x\n+y\n"),
    ]:
        p = task.generate(1, seed=ctx.seed)[0]
        good, wrong = task.score([p, p], [task.demonstration(p), bad])
        for label, r in (("reference", good), ("bad", wrong)):
            reward_rows.append({"task": task.name, "answer": label, "reward": round(r.total, 3),
                                "correct": r.correct, "why": r.info.get("error", r.info.get("exit_reason", ""))[:60]})
            ctx.log(task=task.name, answer=label, reward=r.total)
    sec.table(reward_rows, caption="Rewards of a reference and a bad answer per code task.")
    forge_rows = []
    for task_name, attack, r in _forgeries(ctx.seed, quick):
        forge_rows.append({"task": task_name, "attack": attack, "reward": round(r.total, 3), "correct": r.correct,
                           "tests passed": f"{r.info.get('passed', 0)}/{r.info.get('tests', 0)}",
                           "results forgeable": r.info.get("results_forgeable")})
        ctx.log(task=task_name, attack=attack, reward=r.total)
    sec.table(forge_rows, caption="Wrong answers that try to forge their reward. The tests run in a separate "
                                  "process that never runs candidate code and compares plain values only; with "
                                  "the in-process harness (for tests that need real objects) the forgery works, "
                                  "and the reward says so.")


def _forgeries(seed: int, limits) -> list:  # noqa: ANN001 - SandboxLimits
    """(task, attack, reward) for wrong answers that also attack the harness: a repository fix that writes
    pass records into every descriptor and exits, one that returns an always-equal object, and a function
    that patches the test runner's per-test function."""
    from lumos.rl.tasks.base import Problem
    from lumos.rl.tasks.code import FunctionTask, RepairTask
    from lumos.rl.tasks.code.problems import FAMILIES

    repair = RepairTask(limits=limits)
    stats = next(r for r in repair.repos if r["name"] == "stats")
    buggy = stats["files"]["stats.py"]
    problem = Problem("", None, {"repo": "stats"})

    def diff(new: str) -> str:
        return "```diff\n" + "".join(difflib.unified_diff(buggy.splitlines(True), new.splitlines(True),
                                                            "a/stats.py", "b/stats.py")) + "```\n"

    tests = sorted(set(repair.baseline_passing(stats)) | set(stats["failing"]))
    records = diff(buggy + _FORGE_RECORDS.format(tests=tests))
    equal = diff(_ALWAYS_EQUAL + buggy.replace("return sum(xs) / (len(xs) - 1)", "return _Eq(0)"))
    out = [("code-repair", "write pass records into every fd, exit 0", r)
           for r in repair.score([problem], [records])]
    inprocess = RepairTask(limits=limits)  # the same repositories with the in-process harness, for contrast
    inprocess.repos = [dict(r, harness="in-process") for r in inprocess.repos]
    out += [("code-repair (in-process harness)", "write pass records into every fd, exit 0", r)
            for r in inprocess.score([problem], [records])]
    out += [("code-repair", "return an always-equal object", r) for r in repair.score([problem], [equal])]
    fn = FunctionTask(limits=limits, n_tests=6)
    p = fn.generate(1, seed=seed)[0]
    name = FAMILIES[p.meta["family"]].func
    wrong = f"```python\n{_PATCH_HARNESS}def {name}(*args):\n    return 0\n```"
    out += [("code-functions", "patch the harness's per-test runner", r) for r in fn.score([p], [wrong])]
    return out
