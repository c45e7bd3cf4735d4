"""Sandboxed execution of untrusted Python for code rewards (MiniMax-M1's RL environments).

:func:`run_tests` / :func:`run_script` / :func:`run_repo` / :func:`run_job` run one job and return a
:class:`Verdict`; :class:`SandboxPool` runs many concurrently, results in order; :class:`SandboxLimits`
sets the limits; :func:`probe_isolation` reports what isolation this machine actually allows.

Sandboxed code sees the Python standard library only (``python -I -S``: no site-packages, no lumos), a
fresh working directory (its ``HOME`` and ``TMPDIR``; a capped tmpfs), and an environment of ``PATH``,
``HOME``, ``TMPDIR`` and ``LANG``. In tests and repository modes the tests run in a separate process that
calls the candidate over a plain-value channel (see :mod:`lumos.sandbox.verdict` for what each mode guarantees).
Full isolation (namespaces, minimal read-only root, fresh uids, seccomp, cgroup leaf) needs root; without it
the verdict's ``isolation`` says what is missing and only the rlimits and process-group kill apply.
"""

from lumos.sandbox.limits import SandboxLimits
from lumos.sandbox.netns import Isolation, isolation_summary, probe_isolation
from lumos.sandbox.pool import SandboxPool
from lumos.sandbox.runner import (
    EXIT_REASONS,
    SandboxJob,
    Verdict,
    run_job,
    run_repo,
    run_script,
    run_tests,
)

__all__ = [
    "EXIT_REASONS", "Isolation", "SandboxJob", "SandboxLimits", "SandboxPool", "Verdict",
    "isolation_summary", "probe_isolation", "run_job", "run_repo", "run_script", "run_tests",
]
