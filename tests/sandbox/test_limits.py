import resource

import pytest

from lumos.core.errors import LumosError
from lumos.sandbox import SandboxLimits


def test_defaults_and_dict():
    lim = SandboxLimits()
    assert lim.to_dict()["memory_mb"] == 512 and lim.wall_time > 0


@pytest.mark.parametrize("kw, match", [
    ({"wall_time": 0}, "wall_time"), ({"memory_mb": 16}, "memory_mb"), ({"max_processes": -1}, "max_processes"),
    ({"max_open_files": 3}, "max_open_files"), ({"per_test_time": -1}, "per_test_time"),
    ({"cpu_time": True}, "cpu_time"), ({"cpu_time": 0}, "cpu_time"), ({"wall_time": 1e300}, "wall_time"),
    ({"max_processes": 10**9}, "max_processes"), ({"memory_mb": 512.5}, "memory_mb"), ({"cpu_cores": 0}, "cpu_cores"),
    ({"max_open_files": 1 << 30}, "max_open_files"), ({"total_memory_mb": 0}, "total_memory_mb"),
    ({"wall_time": float("nan")}, "wall_time"),
])
def test_bad_limits(kw, match):
    with pytest.raises(LumosError, match=match):
        SandboxLimits(**kw)


def test_the_largest_limits_still_run():
    """Every limit at its upper bound is a sandbox that starts (the bounds are what the kernel accepts)."""
    from lumos.sandbox import run_script
    from lumos.sandbox.limits import LIMIT_BOUNDS

    top = {k: (int(hi) if isinstance(lo, int) else hi) for k, (lo, hi) in LIMIT_BOUNDS.items()}
    top.update(total_memory_mb=4096, memory_mb=4096, disk_mb=64, shm_mb=16)  # what this machine can hold
    for name, which in (("max_open_files", resource.RLIMIT_NOFILE), ("max_processes", resource.RLIMIT_NPROC)):
        hard = resource.getrlimit(which)[1]  # above this process's own hard limit: a clear error instead
        if hard != resource.RLIM_INFINITY and hard < top[name]:
            with pytest.raises(LumosError, match=f"{name}.*at most {hard} on this machine"):
                run_script("pass\n", SandboxLimits(**top))
            top[name] = hard
    v = run_script("print('up')\n", SandboxLimits(**top))
    assert v.exit_reason == "ok" and v.stdout == "up\n", (v.exit_reason, v.setup_error, v.stderr)


@pytest.mark.parametrize("kw, match", [
    ({"wall_time": 1e300}, r"'wall_time' parameter of SandboxLimits must be a float in the range \(0, 86400\]"),
    ({"max_processes": 10**9}, r"'max_processes' parameter of SandboxLimits must be an int in the range \[1, 4194304\]"),
    ({"memory_mb": 16}, r"'memory_mb' parameter of SandboxLimits must be an int in the range \[64, 1048576\]"),
    ({"memory_mb": 512.5}, r"'memory_mb' parameter of SandboxLimits must be an int"),
    ({"cpu_time": float("nan")}, r"'cpu_time' parameter .* Got nan instead"),
])
def test_limits_are_declared_constraints_in_the_one_message_shape(kw, match):
    with pytest.raises(LumosError, match=match):
        SandboxLimits(**kw)


def test_every_bad_limit_in_one_message():
    with pytest.raises(LumosError) as exc:
        SandboxLimits(wall_time=0, memory_mb=16, keep_output_bytes=-1)
    msg = str(exc.value)
    assert msg.startswith("3 problems in SandboxLimits: ")
    for name in ("wall_time", "memory_mb", "keep_output_bytes"):
        assert f"The '{name}' parameter of SandboxLimits must be" in msg
