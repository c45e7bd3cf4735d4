"""What isolation this machine allows, detected by running one sandbox (never assumed).

The launcher reports, for every run, which namespaces it obtained and whether it dropped privileges; a
:class:`~lumos.sandbox.runner.Verdict` carries those flags. :func:`probe_isolation` runs one trivial
sandbox to learn them up front (cached), and :func:`isolation_summary` turns them into sentences for CLIs
and reports, so a machine without network namespaces is reported as such instead of claimed safe.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

__all__ = ["Isolation", "probe_isolation", "isolation_summary"]


@dataclass(frozen=True)
class Isolation:
    """Isolation in force for sandboxed runs on this machine."""

    network: bool  #: new network namespace: no route anywhere, loopback of the host unreachable
    pid_namespace: bool  #: processes left behind die with the sandbox's PID 1
    readonly_fs: bool  #: minimal read-only root; only the working directory (a capped tmpfs) is writable
    uid_dropped: bool  #: runs as a fresh unprivileged uid (process limit is per sandbox; sweepable)
    seccomp: bool = False  #: no_new_privs + the seccomp filter of :mod:`lumos.sandbox.seccomp`
    cgroup: str = "none"  #: "v2"/"v1": one memory and process cap for the whole sandbox; "none": rlimits only
    seccomp_note: str = ""  #: why there is no filter, when there is none
    cgroup_note: str = ""  #: why there is no cgroup leaf, when there is none


@functools.lru_cache(maxsize=1)
def probe_isolation() -> Isolation:
    """Run one trivial sandbox and report what isolation it obtained (cached per process)."""
    from lumos.sandbox.runner import run_script

    v = run_script("pass\n")
    return Isolation(v.network_isolated, v.pid_namespace, v.readonly_fs, v.uid_dropped,
                     bool(v.isolation.get("seccomp")), str(v.isolation.get("cgroup", "none")),
                     str(v.isolation.get("seccomp_note", "")), str(v.isolation.get("cgroup_note", "")))


def isolation_summary(iso: Isolation | None = None) -> list[str]:
    """One line per isolation property, saying plainly when it is missing and what that means."""
    iso = iso or probe_isolation()
    return [
        "network: isolated (new network namespace)" if iso.network
        else "network: NOT isolated (network namespaces unavailable; sandboxed code can open connections)",
        "processes: PID namespace (leftovers die with the sandbox)" if iso.pid_namespace
        else "processes: no PID namespace (leftovers are killed by uid sweep or process group only)",
        "filesystem: read-only outside the working directory" if iso.readonly_fs
        else "filesystem: NOT read-only (only file permissions protect files outside the working directory)",
        "user: fresh unprivileged uid per run" if iso.uid_dropped
        else "user: same uid as the host (no per-sandbox process limit; not running as root)",
        "syscalls: no_new_privs + seccomp filter (keyrings, ptrace, mount, namespaces, bpf, ... blocked)"
        if iso.seccomp else f"syscalls: NOT filtered, no seccomp ({iso.seccomp_note or 'not root or unavailable'})",
        f"memory: cgroup {iso.cgroup} leaf caps all processes, tmpfs and shared memory together"
        if iso.cgroup != "none"
        else f"memory: per-process rlimits only (no cgroup leaf: {iso.cgroup_note or 'none could be created here'})",
    ]
