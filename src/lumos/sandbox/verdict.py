"""The :class:`Verdict` of a sandboxed run, built from bounded parses of what the sandbox wrote.

Three channels reach the host, with different trust:

- ``status`` (written only by the launcher and the sandbox's PID 1, never reachable by candidate code):
  exit statuses, resource usage, set-up failures, the in-sandbox wall-clock alarm;
- ``results``: in tests and repository modes written only by the test runner, a process that never
  executes candidate code; in script and in-process repository modes written by a harness that shares its
  interpreter with the candidate;
- ``stdout``/``stderr``: the candidate's own, never interpreted.

Only the status channel and kernel counters (cgroup OOM kills) can make a run an ``error`` (sandbox fault);
``memory``/``output_limit`` may also come from the results channel, which a candidate can at most use to
label its own failure. Every parse is bounded (line length, JSON depth) and cannot raise.
"""

from __future__ import annotations

import json
import signal
from dataclasses import asdict, dataclass, field
from typing import Any

from lumos.sandbox._shared import MAX_LINE

__all__ = ["Verdict", "EXIT_REASONS", "INTEGRITY", "SPLIT_MODES", "parse_lines", "collected_tests", "build_verdict"]

#: Why a sandboxed run ended. ``error`` means the sandbox itself could not be set up.
EXIT_REASONS = ("ok", "timeout", "memory", "crash", "output_limit", "error")

#: Modes whose tests run in a trusted runner process, apart from the candidate's (see ``_testrun``).
SPLIT_MODES = ("tests", "repo")

_RUNNER = {
    "results_from": "test runner process (another uid; never executes candidate code)",
    "tests_visible_to_candidate": False,
    "comparison": "in the test runner, on decoded plain values (None/bool/int/float/str/bytes/containers); "
                  "the candidate's other objects are proxies with identity equality and no truth value",
    "results_forgeable_by_candidate": False,
}

#: What each mode guarantees about the test results (``Verdict.integrity``).
INTEGRITY: dict[str, dict[str, Any]] = {
    "tests": dict(_RUNNER),
    "repo": dict(_RUNNER, candidate_modules="imported in the candidate's process when the tests import them; "
                                            "the test files never enter its working directory"),
    "repo-inprocess": {
        "results_from": "in-process harness (candidate modules share its interpreter)",
        "tests_visible_to_candidate": True,
        "tests_restored_readonly": True,
        "results_forgeable_by_candidate": True,
    },
    "command": {
        "results_from": "exit status of a command that imports candidate code",
        "tests_visible_to_candidate": True,
        "tests_restored_readonly": True,
        "stdlib_shadowing_blocked": True,
        "results_forgeable_by_candidate": True,
    },
    "script": {"results_from": "exit status of the candidate's own script", "results_forgeable_by_candidate": True},
}


@dataclass
class Verdict:
    """The outcome of one sandboxed run.

    ``passed``/``failed`` hold test ids (``test_name``, ``Class.test_method``, or ``file.py::test_name`` in
    repository mode): the tests the runner collected, each failed unless reported as passing. The isolation flags say what
    was actually in force for this run, as reported by the launcher; ``isolation`` has the details
    (seccomp, keyring, cgroup, filesystem) and ``integrity`` what the results can be trusted for.
    ``memory_peak_kb`` and ``cpu_throttled`` (CFS periods in which the CPU bandwidth cap held the sandbox
    back) are the cgroup leaf's kernel counters, 0 without a leaf.
    """

    exit_reason: str
    passed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    load_error: str | None = None
    reports: dict[str, Any] = field(default_factory=dict)
    stdout: str = ""
    stderr: str = ""
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    returncode: int | None = None
    signal: int | None = None
    wall_time: float = 0.0
    cpu_time: float = 0.0
    max_rss_kb: int = 0
    memory_peak_kb: int = 0
    cpu_throttled: int = 0
    network_isolated: bool = False
    pid_namespace: bool = False
    readonly_fs: bool = False
    uid_dropped: bool = False
    uid: int | None = None
    swept: bool = False
    setup_error: str | None = None
    isolation: dict[str, Any] = field(default_factory=dict)
    integrity: dict[str, Any] = field(default_factory=dict)

    @property
    def n_tests(self) -> int:
        return len(self.passed) + len(self.failed)

    @property
    def pass_fraction(self) -> float:
        """Fraction of tests passed (0.0 when there are no tests)."""
        return len(self.passed) / self.n_tests if self.n_tests else 0.0

    @property
    def all_passed(self) -> bool:
        return self.n_tests > 0 and not self.failed

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "pass_fraction": self.pass_fraction}


def parse_lines(buf: bytes | bytearray) -> list[dict[str, Any]]:
    """JSON objects, one per line; lines that are too long, malformed or too deeply nested are skipped."""
    out = []
    for line in bytes(buf).split(b"\n"):
        if not line.strip() or len(line) > MAX_LINE:
            continue
        try:
            obj = json.loads(line.decode("utf-8", "replace"))
        except (ValueError, RecursionError):
            continue
        if isinstance(obj, dict):
            out.append(obj)
    return out


def _num(x: Any, kind: type = float, default: Any = 0) -> Any:
    return kind(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else default


def _exit_info(d: Any) -> dict[str, Any] | None:
    if not isinstance(d, dict):
        return None
    return {"code": _num(d.get("code"), int, None), "signal": _num(d.get("signal"), int, None),
            "cpu_time": _num(d.get("cpu_time")), "max_rss_kb": _num(d.get("max_rss_kb"), int)}


def collected_tests(mode: str, events: list[dict[str, Any]]) -> list[str]:
    """The tests of a run: the ids the test runner collected by loading the test files (its first ``tests``
    record; in tests and repository modes only the runner writes that channel), ``["command"]`` in command
    mode, none for a script."""
    if mode == "command":
        return ["command"]
    listed = next((e["tests"] for e in events if isinstance(e.get("tests"), list)), [])
    return list(dict.fromkeys(t[:400] for t in listed[:100_000] if isinstance(t, str)))


def build_verdict(mode: str, bufs: dict[str, bytearray], dropped: dict[str, bool], killed: str | None, limits: Any,
                  wall: float, cgroup_stats: dict[str, int] | None) -> Verdict:
    """Assemble the verdict; ``killed`` is the host's own kill reason (``timeout``/``output_limit``) or None."""
    status = parse_lines(bufs["status"])
    events = parse_lines(bufs["results"])
    iso = next((d["isolation"] for d in status if isinstance(d.get("isolation"), dict)), {})
    final = next((d for d in status if "exit" in d), None)
    setup_error = next((str(d["setup_error"])[:500] for d in status if d.get("setup_error")), None)
    v = Verdict(exit_reason="ok", wall_time=wall, isolation=iso, integrity=dict(INTEGRITY[mode]))
    v.stdout = bytes(bufs["stdout"]).decode("utf-8", "replace")
    v.stderr = bytes(bufs["stderr"]).decode("utf-8", "replace")
    v.stdout_truncated, v.stderr_truncated = dropped["stdout"], dropped["stderr"]
    v.network_isolated, v.pid_namespace = bool(iso.get("net")), bool(iso.get("pid"))
    v.readonly_fs, v.uid_dropped = bool(iso.get("readonly_fs")), bool(iso.get("uid_dropped"))
    v.setup_error = setup_error
    if mode in SPLIT_MODES and not v.uid_dropped:
        # candidate and runner share a uid (the host is not root): /proc/<runner>/fd and /mem are reachable
        v.integrity.update(results_forgeable_by_candidate=True, tests_visible_to_candidate=True,
                           note="not root: the candidate and the test runner run as the same uid")
    cand = _exit_info(final.get("exit")) if final else None
    if cand:
        v.returncode, v.signal = cand["code"], cand["signal"]
        v.cpu_time, v.max_rss_kb = cand["cpu_time"], cand["max_rss_kb"]
    if cgroup_stats:
        v.memory_peak_kb = cgroup_stats.get("peak_kb", 0)
        v.cpu_throttled = cgroup_stats.get("cpu_throttled", 0)
    v.load_error = next((str(e["load_error"])[:2000] for e in events if e.get("load_error")), None)
    v.reports = {str(e["report"])[:100]: e.get("value") for e in events if "report" in e}
    results = {e["test"]: e for e in events if isinstance(e.get("test"), str)}
    if mode == "command":
        results = {"command": {"passed": bool(cand) and cand["code"] == 0 and not killed}}
    for name in collected_tests(mode, events):
        r = results.get(name)
        if r is not None and r.get("passed") is True:
            v.passed.append(name)
        else:
            v.failed.append(name)
            v.errors[name] = str((r or {}).get("error") or ("did not finish" if r is None else "failed"))[:400]
    claims = {"memory": any(e.get("memory") is True for e in events),
              "too_large": any(e.get("file_too_large") is True for e in events)}
    harness = next((str(e["harness_error"])[:400] for e in events if e.get("harness_error")), None)
    done = any(e.get("done") is True for e in events)
    v.exit_reason = _exit_reason(mode, killed, final, cand, setup_error, claims, done, limits, cgroup_stats)
    if harness and v.exit_reason == "ok":
        v.exit_reason, v.load_error = "crash", v.load_error or harness
    return v


def _exit_reason(mode: str, killed: str | None, final: dict | None, cand: dict | None, setup_error: str | None,
                 claims: dict[str, bool], done: bool, limits: Any, cg: dict[str, int] | None) -> str:
    if killed in ("timeout", "output_limit"):
        return killed
    if cg and cg.get("oom_kills", 0) > 0:
        return "memory"  # the kernel's count: the cgroup's memory cap was hit
    if setup_error or final is None:
        return "error"  # only the launcher and PID 1 write the status channel
    if final.get("wall_timeout") is True:
        return "timeout"
    if cand is None:
        return "error"
    sig, code = cand["signal"], cand["code"]
    # RLIMIT_CPU's SIGKILL: the CPU time wait4 reports can fall short of the kernel's own clock on a loaded
    # virtual machine (0.8-0.96 s at a 1 s limit, measured), hence half the limit as the threshold
    if sig == signal.SIGXCPU or (sig == signal.SIGKILL and cand["cpu_time"] >= 0.5 * limits.cpu_time):
        return "timeout"
    if sig == signal.SIGXFSZ or claims["too_large"]:
        return "output_limit"
    if claims["memory"]:
        return "memory"
    if mode in SPLIT_MODES:
        crashed = (sig is not None and not final.get("after_tests")) or code not in (0, None)
        return "crash" if crashed or not done else "ok"
    return "ok" if code == 0 and sig is None else "crash"
