"""Resource limits of one sandboxed run."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from lumos.core.validation import Constraint, Interval, Problems, constraint

__all__ = ["SandboxLimits"]

#: the bounds (a day of time, 1 TiB of memory, the kernel's own maxima) keep every limit a value the kernel
#: and the clocks accept, so an absurd one is refused here rather than failing inside the sandbox
_DAY = 86_400.0
_MIB = 1 << 20


def _seconds(low: float, closed: str) -> Interval:
    return Interval(float, low, _DAY, closed="both" if closed == "left" else "right")


def _f(default: Any, *accepted: Constraint | None, help: str | None = None) -> Any:
    return field(default=default, metadata=constraint(*accepted, help=help))


@dataclass(frozen=True)
class SandboxLimits:
    """Limits applied to every process of a sandboxed run.

    Args:
        wall_time: seconds of wall-clock time before the whole sandbox is killed (verdict ``timeout``).
        cpu_time: seconds of CPU time per process (``RLIMIT_CPU``; verdict ``timeout``).
        memory_mb: address space per process in MiB (``RLIMIT_AS``; verdict ``memory``).
        max_processes: processes and threads of the sandbox user (``RLIMIT_NPROC``; effective only when
            the host runs as root and the sandbox drops to a fresh uid, since root ignores it).
        max_open_files: open file descriptors per process (``RLIMIT_NOFILE``).
        max_file_mb: size of any file written, in MiB (``RLIMIT_FSIZE``; verdict ``output_limit``).
        max_output_bytes: stdout + stderr bytes before the sandbox is killed (verdict ``output_limit``).
        keep_output_bytes: bytes of stdout and of stderr kept in the verdict.
        per_test_time: seconds per test in the harness (an alarm; 0 disables it).
        disk_mb: size of the working directory's tmpfs in MiB (total bytes written; verdict ``output_limit``).
        max_files: inodes of that tmpfs (files + directories).
        shm_mb: SysV shared memory of the sandbox's IPC namespace, in MiB.
        total_memory_mb: memory of all the sandbox's processes, tmpfs and shared memory together (a cgroup
            leaf where the host allows one; default ``memory_mb + disk_mb + 128``).
        cpu_cores: CPU bandwidth of the whole sandbox in cores (the same cgroup leaf).
    """

    wall_time: float = _f(10.0, _seconds(0, "neither"))
    cpu_time: float = _f(10.0, _seconds(0, "neither"))
    memory_mb: int = _f(512, Interval(int, 64, _MIB, closed="both"), help="the interpreter itself needs ~30 MiB")
    max_processes: int = _f(32, Interval(int, 1, 1 << 22, closed="both"), help="Linux's pid_max bounds it")
    max_open_files: int = _f(64, Interval(int, 16, 1 << 20, closed="both"), help="Linux's nr_open bounds it")
    max_file_mb: int = _f(16, Interval(int, 1, _MIB, closed="both"))
    max_output_bytes: int = _f(1 << 20, Interval(int, 1, 1 << 40, closed="both"))
    keep_output_bytes: int = _f(8192, Interval(int, 0, 1 << 40, closed="both"))
    per_test_time: float = _f(0.0, _seconds(0, "left"))
    disk_mb: int = _f(64, Interval(int, 1, _MIB, closed="both"))
    max_files: int = _f(4096, Interval(int, 1, 1 << 31, closed="both"))
    shm_mb: int = _f(16, Interval(int, 1, _MIB, closed="both"))
    total_memory_mb: int | None = _f(None, Interval(int, 1, _MIB, closed="both"), None)
    cpu_cores: float = _f(1.0, Interval(float, 0, 4096, closed="right"))

    def __post_init__(self) -> None:
        p = Problems("SandboxLimits")
        p.fields(self)
        p.raise_if_any()

    @property
    def total_memory_bytes(self) -> int:
        """The cgroup's memory cap in bytes."""
        total = self.total_memory_mb if self.total_memory_mb is not None else self.memory_mb + self.disk_mb + 128
        return int(total) * 2**20

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
