import pytest

from lumos.core.errors import LumosError
from lumos.sandbox import SandboxLimits


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
