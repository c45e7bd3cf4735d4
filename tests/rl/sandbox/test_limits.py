import pytest

from lumos.core.errors import LumosError
from lumos.rl.sandbox import SandboxLimits


def test_defaults_and_dict():
    lim = SandboxLimits()
    assert lim.to_dict()["memory_mb"] == 512 and lim.wall_time > 0


@pytest.mark.parametrize("kw, match", [
    ({"wall_time": 0}, "wall_time"), ({"memory_mb": 16}, "memory_mb"), ({"max_processes": -1}, "max_processes"),
    ({"max_open_files": 3}, "max_open_files"), ({"per_test_time": -1}, "per_test_time"),
    ({"cpu_time": True}, "cpu_time"),
])
def test_bad_limits(kw, match):
    with pytest.raises(LumosError, match=match):
        SandboxLimits(**kw)


@pytest.mark.parametrize("kw, match", [
    ({"wall_time": 1e300}, r"'wall_time' parameter of SandboxLimits must be a float in the range \(0, 86400\]"),
    ({"max_processes": 10**9}, r"'max_processes' parameter of SandboxLimits must be an int in the range \[1, 4194304\]"),
    ({"memory_mb": 512.5}, r"'memory_mb' parameter of SandboxLimits must be an int"),
    ({"cpu_time": float("nan")}, r"'cpu_time' parameter .* Got nan instead"),
])
def test_absurd_limits_are_refused_before_the_sandbox(kw, match):
    with pytest.raises(LumosError, match=match):
        SandboxLimits(**kw)


def test_every_bad_limit_in_one_message():
    with pytest.raises(LumosError) as exc:
        SandboxLimits(wall_time=0, memory_mb=16, keep_output_bytes=-1)
    msg = str(exc.value)
    assert msg.startswith("3 problems in SandboxLimits: ")
    for name in ("wall_time", "memory_mb", "keep_output_bytes"):
        assert f"The '{name}' parameter of SandboxLimits must be" in msg
