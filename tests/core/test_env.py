"""core/env.py: one truthiness rule, numbers naming their variable, torchrun's variables checked together."""

import pytest

from lumos.core.env import check_environment, distributed_env, env_flag, env_int
from lumos.core.errors import LumosError


@pytest.fixture(autouse=True)
def _clean(monkeypatch):
    for k in ("LUMOS_X", "WORLD_SIZE", "RANK", "MASTER_ADDR", "MASTER_PORT", "LUMOS_DEBUG", "LUMOS_PROGRESS",
              "LUMOS_MAX_DATA_BYTES", "LUMOS_MAX_IMAGE_PIXELS"):
        monkeypatch.delenv(k, raising=False)


@pytest.mark.parametrize("value,want", [("1", True), ("true", True), ("YES", True), (" on ", True), ("0", False),
                                         ("false", False), ("No", False), ("off", False), ("", False)])
def test_flag_rule(value, want, monkeypatch):
    monkeypatch.setenv("LUMOS_X", value)
    assert env_flag("LUMOS_X") is want


def test_flag_unset_and_bad(monkeypatch):
    assert env_flag("LUMOS_X") is False and env_flag("LUMOS_X", default=None) is None
    monkeypatch.setenv("LUMOS_X", "2")
    with pytest.raises(LumosError, match=r"^The environment variable LUMOS_X must be one of .* Got '2' instead"):
        env_flag("LUMOS_X")


def test_int(monkeypatch):
    assert env_int("LUMOS_X", 7, low=1) == 7
    monkeypatch.setenv("LUMOS_X", " 12 ")
    assert env_int("LUMOS_X", 7, low=1) == 12
    for bad in ("abc", "1.5", "0"):
        monkeypatch.setenv("LUMOS_X", bad)
        with pytest.raises(LumosError, match=f"LUMOS_X must be an integer ≥ 1. Got '{bad}' instead"):
            env_int("LUMOS_X", 7, low=1)


def test_distributed_env(monkeypatch):
    assert distributed_env() == (1, 0)
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(LumosError, match="RANK is not set"):
        distributed_env()
    monkeypatch.setenv("RANK", "1")
    with pytest.raises(LumosError, match="MASTER_ADDR and MASTER_PORT are not set"):
        distributed_env()
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", "29500")
    assert distributed_env() == (2, 1)


def test_check_environment_reads_every_variable(monkeypatch):
    check_environment()
    monkeypatch.setenv("LUMOS_MAX_IMAGE_PIXELS", "many")
    with pytest.raises(LumosError, match="LUMOS_MAX_IMAGE_PIXELS"):
        check_environment()
