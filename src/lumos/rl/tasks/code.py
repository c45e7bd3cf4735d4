"""Code tasks scored by sandboxed execution (MiniMax-M1's competitive-programming and SWE environments).

Registered tasks (``lumos rl train --task NAME``):

- ``code-expr``: "Write a Python expression equal to N." The answer is the first line of the completion
  (or a fenced code block). Small enough for the built-in byte-level model to learn.
- ``code-functions``: write a function from a parameterised family (string, list and arithmetic); hidden
  unit tests run in the sandbox; reward = fraction of tests passed + 0.1 × format (a well-formed
  ```` ```python ```` block).
- ``code-repair``: a small repository with a failing test; the answer is a unified diff, applied to a copy
  (paths checked, tests protected) and the repository's tests run in the sandbox; reward 1 when the failing
  tests pass and every test that passed before still passes. Built-in repositories, or user tasks from a
  directory (``get_task("code-repair", root=DIR)``; see :func:`load_repair_dir`).

Every ``score`` call runs the batch through one :class:`~lumos.rl.sandbox.SandboxPool`, in order.
"""

from __future__ import annotations

import ast
import dataclasses
import random
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lumos.core.errors import LumosError, bad_param
from lumos.core.io import read_json
from lumos.core.progress import track
from lumos.core.validation import check_int, check_positive_int
from lumos.rl.sandbox import SandboxJob, SandboxLimits, SandboxPool, Verdict
from lumos.rl.sandbox.diff import PatchError, apply_patch, parse_unified_diff
from lumos.rl.sandbox.problems import FAMILIES, REPAIR_REPOS
from lumos.rl.tasks.base import Problem, Reward, Task, register_task

__all__ = ["extract_code_block", "ExpressionTask", "FunctionTask", "RepairTask", "load_repair_dir"]

_FENCE = re.compile(r"```([A-Za-z0-9_+-]*)[ \t]*\n(.*?)\n?```", re.S)


def extract_code_block(text: str, languages: tuple[str, ...] = ("python", "py", "")) -> tuple[str | None, bool]:
    """The first fenced block in one of ``languages`` → ``(code, well_formed)``.

    ``well_formed`` is True when the block is closed and, for Python, parses. An unclosed fence or no
    fence at all gives ``(None, False)``.
    """
    for m in _FENCE.finditer(text):
        lang = m.group(1).lower()
        if lang in languages:
            code = m.group(2)
            if lang in ("python", "py", ""):
                try:
                    ast.parse(code)
                except (SyntaxError, ValueError):
                    return code, False
            return code, True
    return None, False


class _SandboxTask(Task):
    """Owns a lazily started pool; subclasses build one job (or an early reward) per completion."""

    def __init__(self, workers: int | None = None, limits: SandboxLimits | None = None):
        self.workers = workers
        self.limits = limits or SandboxLimits(wall_time=5.0, cpu_time=5.0, per_test_time=1.0)
        self._pool: SandboxPool | None = None

    @property
    def pool(self) -> SandboxPool:
        if self._pool is None:
            self._pool = SandboxPool(self.workers)
        return self._pool

    def _job(self, problem: Problem, completion: str) -> SandboxJob | Reward:
        raise NotImplementedError

    def _reward(self, problem: Problem, completion: str, verdict: Verdict) -> Reward:
        raise NotImplementedError

    def score(self, problems: Sequence[Problem], completions: Sequence[str]) -> list[Reward]:
        if len(problems) != len(completions):
            raise bad_param("completions", f"one per problem ({len(problems)})", len(completions),
                            owner=f"{type(self).__name__}.score")
        jobs = [self._job(p, c) for p, c in zip(problems, completions)]
        todo = [j for j in jobs if isinstance(j, SandboxJob)]
        verdicts = iter(self.pool.map(todo)) if todo else iter(())
        out = []
        for p, c, j in zip(problems, completions, jobs):
            out.append(j if isinstance(j, Reward) else self._reward(p, c, next(verdicts)))
        return out


def _info(v: Verdict) -> dict[str, Any]:
    # results_forgeable: True where the tests share the candidate's interpreter (command mode, in-process harness)
    return {"exit_reason": v.exit_reason, "passed": len(v.passed), "tests": v.n_tests,
            "wall_time": round(v.wall_time, 4),
            "results_forgeable": bool(v.integrity.get("results_forgeable_by_candidate", True))}


# ------------------------------------------------------------------------------------------------ code-expr
_EXPR_TEST = """
def test_value():
    value = solution.ANSWER
    report("value", value if isinstance(value, (int, float)) and not isinstance(value, bool) else None)
    assert type(value) is int and value == {target}
"""


@register_task("code-expr")
class ExpressionTask(_SandboxTask):
    """"Write a Python expression equal to N": the smallest code environment a tiny model can learn.

    Reward: 0.1 × format (one line that parses as a Python expression and contains an operator when
    ``require_operator``) + 0.9 when it evaluates (in the sandbox) to the int N, else
    0.4 × max(0, 1 − |value − N| / max(|N|, 1)) when it evaluates to a number (shaping).
    """

    name = "code-expr"

    def __init__(self, low: int = 0, high: int = 99, require_operator: bool = True, **kw: Any):
        super().__init__(**kw)
        check_int(low, "low", owner="ExpressionTask")
        check_int(high, "high", low, owner="ExpressionTask")
        self.low, self.high, self.require_operator = low, high, require_operator

    def generate(self, n: int, seed: int) -> list[Problem]:
        rng = random.Random(seed)
        out = []
        for _ in range(n):
            target = rng.randint(self.low, self.high)
            out.append(Problem(f"Write a Python expression equal to {target}.\n", target, {"target": target}))
        return out

    def demonstration(self, problem: Problem) -> str:
        target = int(problem.answer)
        a = random.Random(target).randint(0, max(target, 0))
        return f"{a}+{target - a}" if target >= 0 else f"{a}-{a - target}"

    @staticmethod
    def expression(completion: str) -> str:
        code, _ = extract_code_block(completion)
        text = code if code is not None else completion
        return text.strip().split("\n")[0].strip() if text.strip() else ""

    def _format_ok(self, expr: str) -> bool:
        try:
            tree = ast.parse(expr, mode="eval")
        except (SyntaxError, ValueError):
            return False
        has_op = any(isinstance(node, (ast.BinOp, ast.UnaryOp, ast.Call)) for node in ast.walk(tree))
        return has_op or not self.require_operator

    def _job(self, problem: Problem, completion: str) -> SandboxJob | Reward:
        expr = self.expression(completion)
        if not self._format_ok(expr):
            return Reward(0.0, False, 0.0, {"exit_reason": "format"})
        tests = _EXPR_TEST.format(target=int(problem.answer))
        return SandboxJob("tests", source=f"ANSWER = (\n{expr}\n)\n", tests=tests, limits=self.limits)

    def _reward(self, problem: Problem, completion: str, verdict: Verdict) -> Reward:
        target = int(problem.answer)
        value = verdict.reports.get("value")
        if verdict.all_passed:
            return Reward(1.0, True, 1.0, {**_info(verdict), "value": value})
        shaped = 0.0
        if isinstance(value, (int, float)) and abs(value) < 1e300:
            shaped = 0.4 * max(0.0, 1.0 - abs(value - target) / max(abs(target), 1))
        return Reward(0.1 + shaped, False, 1.0, {**_info(verdict), "value": value})


# ------------------------------------------------------------------------------------------- code-functions
@register_task("code-functions")
class FunctionTask(_SandboxTask):
    """Write a function from a parameterised family; hidden tests decide the reward.

    Reward: fraction of hidden tests passed + ``format_weight`` × (a well-formed ```` ```python ```` block).
    ``correct`` means every test passed. ``families`` restricts the families (default: all).
    """

    name = "code-functions"

    def __init__(self, families: Sequence[str] | None = None, n_tests: int = 8, format_weight: float = 0.1,
                 **kw: Any):
        super().__init__(**kw)
        names = list(families) if families else sorted(FAMILIES)
        unknown = [f for f in names if f not in FAMILIES]
        if unknown:
            raise bad_param("families", f"names from {', '.join(sorted(FAMILIES))}", unknown, owner="FunctionTask")
        check_positive_int(n_tests, "n_tests", owner="FunctionTask")
        self.families, self.n_tests, self.format_weight = names, n_tests, float(format_weight)

    def generate(self, n: int, seed: int) -> list[Problem]:
        rng = random.Random(seed)
        out = []
        for _ in range(n):
            fam = FAMILIES[rng.choice(self.families)]
            params = fam.params(rng)
            ref = fam.reference(**params)
            namespace: dict[str, Any] = {}
            exec(compile(ref, "<reference>", "exec"), namespace)  # noqa: S102 - our own reference code
            fn = namespace[fam.func]
            cases = [fam.inputs(rng) for _ in range(self.n_tests)]
            expected = [fn(*args) for args in cases]
            tests = "".join(f"\ndef test_{i}():\n    assert {fam.func}(*{args!r}) == {exp!r}\n"
                            for i, (args, exp) in enumerate(zip(cases, expected)))
            example = f"{fam.func}{tuple(cases[0])!r} == {expected[0]!r}".replace(",)", ")")
            prompt = (f"{fam.describe(**params)}\nExample: {example}\n"
                      f"Answer with the function `{fam.func}` in a ```python code block.\n")
            out.append(Problem(prompt, ref, {"family": fam.name, "params": params, "tests": tests}))
        return out

    def demonstration(self, problem: Problem) -> str:
        return f"```python\n{problem.answer}```\n"

    def _job(self, problem: Problem, completion: str) -> SandboxJob | Reward:
        code, ok = extract_code_block(completion)
        if code is None or not ok:
            return Reward(0.0, False, 0.0, {"exit_reason": "format"})
        return SandboxJob("tests", source=code + "\n", tests=problem.meta["tests"], limits=self.limits)

    def _reward(self, problem: Problem, completion: str, verdict: Verdict) -> Reward:
        frac = verdict.pass_fraction
        return Reward(frac + self.format_weight, verdict.all_passed, 1.0, _info(verdict))


# ---------------------------------------------------------------------------------------------- code-repair
_HARNESSES = {"runner": "repo", "in-process": "repo-inprocess"}


_META_LISTS = ("failing_tests", "test_files", "test_command")
_META_TEXTS = ("description", "fix", "harness")


def _task_meta(path: Path) -> dict[str, Any]:
    """``task.json``, checked: an object, ``failing_tests`` present, list keys lists of strings, text keys strings."""
    meta = read_json(path)
    if not isinstance(meta, dict):
        raise LumosError(f"{path} must hold a JSON object with 'failing_tests'; got {type(meta).__name__}.")
    if "failing_tests" not in meta:
        raise LumosError(f"{path} needs 'failing_tests': the test ids (file.py::test_name) that fail before the fix.")
    for key in _META_LISTS:
        v = meta.get(key)
        if v is not None and not (isinstance(v, list) and all(isinstance(x, str) for x in v)):
            raise LumosError(f"{path}: {key!r} must be a list of strings; got {v!r:.80}.")
    for key in _META_TEXTS:
        v = meta.get(key)
        if v is not None and not isinstance(v, str):
            raise LumosError(f"{path}: {key!r} must be a string; got {v!r:.80}.")
    if meta.get("harness", "runner") not in _HARNESSES:
        raise LumosError(f"{path}: 'harness' must be one of {', '.join(_HARNESSES)}; got {meta['harness']!r}.")
    return meta


def load_repair_dir(root: str | Path) -> list[dict[str, Any]]:
    """User repair tasks: one sub-directory per task with ``task.json`` and a ``repo/`` directory.

    ``task.json`` keys: ``failing_tests`` (test ids ``file.py::test_name`` that fail before the fix,
    required), ``test_files`` (default: every ``test_*.py``), ``description`` (optional prompt text),
    ``test_command`` (optional argv run instead of the built-in harness; then the reward needs exit
    status 0), ``harness`` (``"runner"``, the default: the tests run in the trusted test runner and use the
    repository's modules through proxies, so the candidate cannot forge the results; ``"in-process"``: the
    tests import the repository in one interpreter, for tests that need real objects, and the results are
    forgeable), ``fix`` (optional reference diff, used for demonstrations). Text files only, ≤ 256 KiB each.
    """
    root = Path(root)
    if not root.is_dir():
        raise bad_param("root", "a directory of repair tasks", str(root), owner="load_repair_dir")
    repos = []
    for task_dir in sorted(p for p in root.iterdir() if (p / "task.json").is_file()):
        meta = _task_meta(task_dir / "task.json")
        repo = task_dir / "repo"
        if not repo.is_dir():
            raise LumosError(f"Repair task {task_dir} needs a repo/ directory next to its task.json.")
        files = {}
        for path in sorted(p for p in repo.rglob("*") if p.is_file() and ".git" not in p.parts):
            if path.stat().st_size > 256 * 1024:
                raise LumosError(f"{path} is larger than 256 KiB; repair tasks hold small text repositories.")
            try:
                files[path.relative_to(repo).as_posix()] = path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                raise LumosError(f"{path} is not UTF-8 text; repair tasks hold text files only.") from None
        test_files = meta.get("test_files") or [f for f in files if Path(f).name.startswith("test_")]
        repos.append({"name": task_dir.name, "files": files, "test_files": test_files,
                      "failing": meta["failing_tests"], "description": meta.get("description", ""),
                      "command": meta.get("test_command"), "fix": meta.get("fix"),
                      "harness": meta.get("harness", "runner")})
    if not repos:
        raise LumosError(f"No repair tasks (sub-directories with task.json) found in {root}.")
    return repos


@register_task("code-repair")
class RepairTask(_SandboxTask):
    """Fix a repository with a unified diff; reward 1 iff the failing tests pass and nothing else breaks.

    ``root``: a directory of user tasks (:func:`load_repair_dir`); default: the built-in repositories.
    ``format`` is 1 when the completion holds a diff that parses and applies.
    """

    name = "code-repair"

    def __init__(self, root: str | Path | None = None, **kw: Any):
        super().__init__(**kw)
        self.repos = load_repair_dir(root) if root is not None else [dict(r) for r in REPAIR_REPOS]
        self._baseline: dict[str, list[str]] = {}

    def generate(self, n: int, seed: int) -> list[Problem]:
        rng = random.Random(seed)
        out = []
        for _ in range(n):
            repo = rng.choice(self.repos)
            listing = "".join(f"--- {path} ---\n{text}\n" for path, text in sorted(repo["files"].items()))
            prompt = (f"The repository below has failing tests: {', '.join(repo['failing'])}.\n"
                      f"{repo['description']}\n{listing}\nAnswer with a unified diff in a ```diff block "
                      f"that fixes the code (the tests may not be edited).\n")
            out.append(Problem(prompt, repo.get("fix"), {"repo": repo["name"]}))
        return out

    def _repo(self, problem: Problem) -> dict[str, Any]:
        for repo in self.repos:
            if repo["name"] == problem.meta.get("repo"):
                return repo
        raise bad_param("problem.meta['repo']", "a repository of this task", problem.meta.get("repo"))

    def demonstration(self, problem: Problem) -> str:
        if not problem.answer:
            raise NotImplementedError(f"repair task {problem.meta.get('repo')!r} ships no reference fix")
        return f"```diff\n{problem.answer}```\n"

    def baseline_passing(self, repo: dict[str, Any]) -> list[str]:
        """Tests that pass on the unpatched repository (run once per repository, cached)."""
        if repo["name"] not in self._baseline:
            v = self.pool.map([self._repo_job(repo, repo["files"])])[0]
            self._baseline[repo["name"]] = v.passed
        return self._baseline[repo["name"]]

    def check(self) -> list[dict[str, Any]]:
        """Check each repository before training on it: the tests that fail unpatched must be exactly its
        ``failing_tests``, and its reference fix (when it has one) must earn reward 1. A runner-harness
        repository whose fix fails only there, and passes with the in-process harness, has tests that need
        the candidate's real objects: the row suggests ``"harness": "in-process"``.

        Returns one row per repository: ``task``, ``harness``, ``tests``, ``failing``, ``fix_reward`` (None
        without a fix) and ``problems`` (one-line strings; empty when the task is sound).
        """
        rows = []
        for repo in track(self.repos, description="checking repair tasks"):
            harness = "command" if repo.get("command") else repo.get("harness", "runner")
            base = self.pool.map([self._repo_job(repo, repo["files"])])[0]
            self._baseline[repo["name"]] = base.passed
            row: dict[str, Any] = {"task": repo["name"], "harness": harness, "tests": base.n_tests,
                                   "failing": sorted(base.failed), "fix_reward": None, "problems": []}
            if base.load_error:
                row["problems"].append(f"tests do not load unpatched: {base.load_error}")
            if not repo.get("command") and set(base.failed) != set(repo["failing"]):
                row["problems"].append(f"failing_tests says {sorted(repo['failing'])} but {sorted(base.failed)} fail")
            fix = repo.get("fix")
            if fix:
                problem = Problem("", fix, {"repo": repo["name"]})
                reward = self.score([problem], [self.demonstration(problem)])[0]
                row["fix_reward"] = reward.total
                if reward.total < 1.0:
                    why = reward.info.get("error") or reward.info.get("exit_reason")
                    row["problems"].append(f"the reference fix earns {reward.total:g} ({why})")
                    if harness == "runner" and self._fix_passes_in_process(problem):
                        row["problems"].append('the fix passes with the in-process harness: the tests need real '
                                               'objects; set "harness": "in-process" in task.json (results '
                                               'then forgeable)')
            rows.append(row)
        return rows

    def _fix_passes_in_process(self, problem: Problem) -> bool:
        job = self._job(problem, self.demonstration(problem))
        if not isinstance(job, SandboxJob):
            return False
        return self.pool.map([dataclasses.replace(job, mode="repo-inprocess")])[0].all_passed

    def _repo_job(self, repo: dict[str, Any], files: dict[str, str]) -> SandboxJob:
        if repo.get("command"):
            return SandboxJob("command", files=files, command=list(repo["command"]), limits=self.limits)
        mode = _HARNESSES[repo.get("harness", "runner")]
        return SandboxJob(mode, files=files, test_files=list(repo["test_files"]), limits=self.limits)

    def _job(self, problem: Problem, completion: str) -> SandboxJob | Reward:
        repo = self._repo(problem)
        code, _ = extract_code_block(completion, languages=("diff", "patch", ""))
        try:
            patches = parse_unified_diff(code if code is not None else completion)
            files = apply_patch(repo["files"], patches, protected=tuple(repo["test_files"]))
        except PatchError as exc:
            return Reward(0.0, False, 0.0, {"exit_reason": "patch", "error": str(exc)})
        # the tests always run as the task ships them (the sandbox then makes them root-owned, read-only)
        files.update({t: repo["files"][t] for t in repo["test_files"] if t in repo["files"]})
        return self._repo_job(repo, files)

    def _reward(self, problem: Problem, completion: str, verdict: Verdict) -> Reward:
        repo = self._repo(problem)
        if repo.get("command"):
            ok = verdict.all_passed
        else:
            need = set(repo["failing"]) | set(self.baseline_passing(repo))
            ok = need <= set(verdict.passed)
        return Reward(float(ok), ok, 1.0, _info(verdict))
