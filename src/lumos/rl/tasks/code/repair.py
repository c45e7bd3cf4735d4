"""``code-repair``: fix a small repository with a unified diff; its tests, run in the sandbox, decide."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path
from typing import Any

from lumos.core.errors import bad_param
from lumos.core.progress import track
from lumos.rl.tasks.base import Problem, Reward, register_task
from lumos.rl.tasks.code.common import SandboxTask, extract_code_block, verdict_info, zero_reward
from lumos.rl.tasks.code.diff import PatchError, apply_patch, parse_unified_diff
from lumos.rl.tasks.code.loader import (
    DEFAULT_HARNESS,
    HARNESSES,
    dirs_of_tests,
    load_repair_dir,
    support_files,
)
from lumos.rl.tasks.code.problems import REPAIR_REPOS
from lumos.sandbox import SandboxJob, Verdict

__all__ = ["RepairTask"]


@register_task("code-repair")
class RepairTask(SandboxTask):
    """Fix a repository with a unified diff; reward 1 iff the failing tests pass and nothing else breaks.

    ``root``: a directory of user tasks (:func:`load_repair_dir`); default: the built-in repositories.
    ``format`` is 1 when the completion holds a diff that parses and applies. The diff may not touch the
    test files or the tests' own files (:func:`~lumos.rl.tasks.code.loader.support_files`: a ``tests/``
    directory, ``conftest.py``, what ``test_support`` names), and those are always run as the task ships them.
    """

    name = "code-repair"

    def __init__(self, root: str | Path | None = None, **kw: Any):
        super().__init__(**kw)
        self.repos = load_repair_dir(root) if root is not None else [dict(r) for r in REPAIR_REPOS]
        for repo in self.repos:
            declared = repo.get("test_support") or []
            repo["support_files"] = support_files(repo["files"], repo["test_files"], declared)
            repo["dirs_of_tests"] = dirs_of_tests(repo["test_files"], declared)
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

    def _check_problem(self, problem: Problem) -> None:
        self._repo(problem)

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
        """Check each repository before training on it: at least one test must fail unpatched (else any diff
        earns reward 1), those must be exactly its ``failing_tests``, every test must be one the runner can run
        (not a generator), and its reference fix (when it has one) must earn reward 1. A runner-harness
        repository whose fix fails only there, and passes with the in-process harness, has tests that need
        the candidate's real objects: the row suggests ``"harness": "in-process"``.

        Returns one row per repository: ``task``, ``harness``, ``tests``, ``failing``, ``fix_reward`` (None
        without a fix) and ``problems`` (one-line strings; empty when the task is sound).
        """
        rows = []
        for repo in track(self.repos, description="checking repair tasks"):
            harness = "command" if repo.get("command") else repo.get("harness", DEFAULT_HARNESS)
            base = self.pool.map([self._repo_job(repo, repo["files"])])[0]
            self._baseline[repo["name"]] = base.passed
            row: dict[str, Any] = {"task": repo["name"], "harness": harness, "tests": base.n_tests,
                                   "failing": sorted(base.failed), "fix_reward": None, "problems": []}
            row["problems"] += self._baseline_problems(repo, base)
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

    @staticmethod
    def _baseline_problems(repo: dict[str, Any], base: Verdict) -> list[str]:
        out = []
        if base.load_error:
            out.append(f"tests do not load unpatched: {base.load_error}")
        if base.n_tests == 0:
            out.append("no tests were collected: the runner found no test* function or TestCase method")
        elif not base.failed:
            out.append("no test fails before the fix: any diff would earn reward 1 (error)")
        if not repo.get("command") and set(base.failed) != set(repo["failing"]):
            out.append(f"failing_tests says {sorted(repo['failing'])} but {sorted(base.failed)} fail")
        refused = sorted(t for t, e in base.errors.items() if e.startswith("AssertionError: refused"))
        if refused:
            out.append(f"tests the runner cannot run, which can never pass: {', '.join(refused)} "
                       f"({base.errors[refused[0]].split('refused: ', 1)[-1]})")
        return out

    def _fix_passes_in_process(self, problem: Problem) -> bool:
        job = self._job(problem, self.demonstration(problem))
        if not isinstance(job, SandboxJob):
            return False
        return self.pool.map([dataclasses.replace(job, mode="repo-inprocess")])[0].all_passed

    def _repo_job(self, repo: dict[str, Any], files: dict[str, str]) -> SandboxJob:
        if repo.get("command"):
            return SandboxJob("command", files=files, command=list(repo["command"]), limits=self.limits)
        mode = HARNESSES[repo.get("harness", DEFAULT_HARNESS)]
        return SandboxJob(mode, files=files, test_files=list(repo["test_files"]),
                          support_files=list(repo["support_files"]), limits=self.limits)

    def _job(self, problem: Problem, completion: str) -> SandboxJob | Reward:
        repo = self._repo(problem)
        code, _ = extract_code_block(completion, languages=("diff", "patch", ""))
        try:
            patches = parse_unified_diff(code if code is not None else completion)
            files = apply_patch(repo["files"], patches, protected=self._protected(repo))
        except PatchError as exc:
            return zero_reward("patch", str(exc))
        # the tests always run as the task ships them (the sandbox then makes them root-owned, read-only)
        files.update({t: repo["files"][t] for t in (*repo["test_files"], *repo["support_files"])})
        return self._repo_job(repo, files)

    @staticmethod
    def _protected(repo: dict[str, Any]) -> tuple[str, ...]:
        """What a diff may neither modify nor create: the test files, the tests' directories and files, and a
        ``conftest.py`` anywhere."""
        return (*repo["test_files"], *repo["support_files"], *repo["dirs_of_tests"], "**/conftest.py")

    def _reward(self, problem: Problem, completion: str, verdict: Verdict) -> Reward:
        repo = self._repo(problem)
        if repo.get("command"):
            ok = verdict.all_passed
        else:
            need = set(repo["failing"]) | set(self.baseline_passing(repo))
            ok = need <= set(verdict.passed)
        return Reward(float(ok), ok, 1.0, verdict_info(verdict))
