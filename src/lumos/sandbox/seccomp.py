"""The sandbox's seccomp filter, compiled on the host with libseccomp (``pyseccomp``) into raw BPF.

The launcher imports the standard library only, so the filter is built here with a maintained binding and
handed over as bytes; the launcher loads it with ``prctl(PR_SET_SECCOMP)`` after ``no_new_privs``. When the
binding or ``libseccomp.so.2`` is missing, :func:`filter_program` returns ``None`` and the reason, and every
verdict reports ``seccomp: false`` with that reason (the namespaces, uid drop and rlimits still apply).

Blocked with ``EPERM``: :data:`BLOCKED` (kernel keyrings, tracing, mounts and namespaces, BPF, perf, module
and kexec loading, ``memfd_create`` and the other ways around the per-sandbox memory and disk caps);
``clone`` with any ``CLONE_NEW*`` flag; ``clone3`` with ``ENOSYS`` (its flags sit behind a pointer that BPF
cannot read, and the C library then falls back to ``clone``).
"""

from __future__ import annotations

import errno
import functools
import os
import tempfile

__all__ = ["BLOCKED", "filter_program"]

BLOCKED = (
    "keyctl", "add_key", "request_key", "ptrace", "process_vm_readv", "process_vm_writev", "mount", "umount2",
    "pivot_root", "chroot", "unshare", "setns", "bpf", "perf_event_open", "kexec_load", "kexec_file_load",
    "init_module", "finit_module", "delete_module", "reboot", "swapon", "swapoff", "acct", "syslog",
    "open_by_handle_at", "name_to_handle_at", "userfaultfd", "io_uring_setup", "io_uring_enter",
    "io_uring_register", "memfd_create", "fanotify_init", "quotactl", "lookup_dcookie", "move_mount",
    "fsopen", "fsconfig", "fsmount", "fspick", "open_tree", "mount_setattr", "settimeofday", "clock_settime",
    "clock_adjtime", "adjtimex", "iopl", "ioperm", "vhangup", "pidfd_getfd",
)
_CLONE_NEW = (0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000, 0x00000080)


@functools.lru_cache(maxsize=1)
def filter_program() -> tuple[bytes | None, str]:
    """``(bpf_bytes, "")`` or ``(None, reason)``; built once per process."""
    try:
        import pyseccomp as sc
    except (ImportError, OSError) as exc:  # OSError: the binding loads libseccomp.so.2 at import
        return None, f"seccomp unavailable: pyseccomp/libseccomp not loadable ({exc}); pip install pyseccomp"
    try:
        f = sc.SyscallFilter(sc.ALLOW)
        missing = []
        for name in BLOCKED:
            try:
                f.add_rule(sc.ERRNO(errno.EPERM), name)
            except (OSError, ValueError, RuntimeError):
                missing.append(name)  # unknown to this libseccomp: the kernel is older than the call
        for flag in _CLONE_NEW:
            f.add_rule(sc.ERRNO(errno.EPERM), "clone", sc.Arg(0, sc.MASKED_EQ, flag, flag))
        f.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")
        with tempfile.TemporaryFile() as tmp:
            f.export_bpf(tmp)
            tmp.seek(0)
            program = tmp.read()
    except Exception as exc:  # noqa: BLE001 - any libseccomp failure means: no filter, reported
        return None, f"seccomp unavailable: libseccomp failed ({type(exc).__name__}: {exc})"
    if not program or len(program) % 8:
        return None, "seccomp unavailable: libseccomp exported no program"
    return program, ("" if not missing else f"not in this libseccomp: {', '.join(missing)}")


def _selftest() -> None:  # pragma: no cover - manual check: python -m lumos.sandbox.seccomp
    prog, why = filter_program()
    print(len(prog or b""), why, os.uname().machine)


if __name__ == "__main__":  # pragma: no cover
    _selftest()
