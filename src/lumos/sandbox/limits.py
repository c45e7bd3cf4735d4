"""Resource limits of one sandboxed run."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from lumos.core.validation import Interval, Problems, constraint

__all__ = ["SandboxLimits", "LIMIT_BOUNDS"]

_DAY = 86_400.0
#: Each limit's range (bounds inclusive, except that wall_time, cpu_time and cpu_cores must be above 0): beyond
#: these the kernel refuses the setting (RLIMIT_NOFILE over nr_open, a pid cap over PID_MAX_LIMIT, an
#: interval timer of 1e300 s), so they are errors here, before any sandbox starts.
LIMIT_BOUNDS: dict[str, tuple[float, float]] = {
    "wall_time": (0.0, _DAY), "cpu_time": (0.0, _DAY), "memory_mb": (1, 1 << 20), "max_processes": (1, 1 << 22),
    "max_open_files": (16, 1 << 20), "max_file_mb": (1, 1 << 20), "max_output_bytes": (1, 1 << 34),
    "keep_output_bytes": (0, 1 << 30), "per_test_time": (0.0, _DAY), "disk_mb": (1, 1 << 20),
    "max_files": (1, 1 << 30), "shm_mb": (1, 1 << 20), "total_memory_mb": (1, 1 << 22), "cpu_cores": (0.0, 4096.0),
}
_INTS = ("memory_mb", "max_processes", "max_open_files", "max_file_mb", "max_output_bytes", "keep_output_bytes",
         "disk_mb", "max_files", "shm_mb", "total_memory_mb")
#: the interpreter itself needs ~30 MiB of address space
_MIN_MEMORY_MB = 64


def _limit(default: Any, name: str) -> Any:
    """A field whose constraint is its :data:`LIMIT_BOUNDS` range (declared once, checked by ``Problems.fields``)."""
    low, high = LIMIT_BOUNDS[name]
    if name in _INTS:
        accepted = Interval(int, max(int(low), _MIN_MEMORY_MB) if name == "memory_mb" else int(low), int(high))
    else:
        accepted = Interval(float, low, high, closed="both" if name == "per_test_time" else "right")
    return field(default=default, metadata=constraint(accepted, *([None] if name == "total_memory_mb" else [])))


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

    wall_time: float = _limit(10.0, "wall_time")
    cpu_time: float = _limit(10.0, "cpu_time")
    memory_mb: int = _limit(512, "memory_mb")
    max_processes: int = _limit(32, "max_processes")
    max_open_files: int = _limit(64, "max_open_files")
    max_file_mb: int = _limit(16, "max_file_mb")
    max_output_bytes: int = _limit(1 << 20, "max_output_bytes")
    keep_output_bytes: int = _limit(8192, "keep_output_bytes")
    per_test_time: float = _limit(0.0, "per_test_time")
    disk_mb: int = _limit(64, "disk_mb")
    max_files: int = _limit(4096, "max_files")
    shm_mb: int = _limit(16, "shm_mb")
    total_memory_mb: int | None = _limit(None, "total_memory_mb")
    cpu_cores: float = _limit(1.0, "cpu_cores")

    def __post_init__(self) -> None:
        p = Problems("SandboxLimits")
        p.fields(self)  # every limit in its LIMIT_BOUNDS range, all problems in one message
        p.raise_if_any()

    @property
    def total_memory_bytes(self) -> int:
        """The cgroup's memory cap in bytes."""
        total = self.total_memory_mb if self.total_memory_mb is not None else self.memory_mb + self.disk_mb + 128
        return int(total) * 2**20

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
