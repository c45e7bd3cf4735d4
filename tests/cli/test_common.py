"""cli/common.py: the one KEY=VALUE parser, registry-aware lists, and parameter → flag naming."""

import errno

import pytest

from lumos.cli.common import (
    command_flags,
    name_flags,
    parse_csv_list,
    parse_key_values,
    user_error_message,
)
from lumos.core.errors import LumosError
from lumos.core.registry import Registry


def test_parse_key_values():
    got = parse_key_values(["a=1", "b=x", "c=[1, 2]", "d=", " e =true", "a=2"], "--task-arg")
    assert got == {"a": 2, "b": "x", "c": [1, 2], "d": "", "e": True}
    for bad in ("novalue", "=3"):
        with pytest.raises(LumosError, match=f"--task-arg expects KEY=VALUE; got '{bad}'"):
            parse_key_values([bad], "--task-arg")


def test_parse_csv_list_resolves_through_a_registry():
    reg: Registry = Registry("widget", param="method", case_insensitive=True)
    reg.register("alpha", len, aliases=("a",))
    reg.register("beta", len)
    assert parse_csv_list("Alpha, a ,beta", reg) == ["alpha", "alpha", "beta"]
    with pytest.raises(LumosError, match="registered widgets: alpha, beta. Got 'alpah' instead. Did you mean 'alpha'"):
        parse_csv_list("alpah", reg)
    assert parse_csv_list("x,y", ("x", "y")) == ["x", "y"]


def test_name_flags_only_for_flags_the_command_has():
    msg = "2 problems in RLConfig: The 'group_size' parameter of RLConfig must be ... The 'task_kwargs' parameter of " \
          "RLConfig must be ... The 'minibatches' parameter of RLConfig must be ..."
    out = name_flags(msg, {"--group-size", "--task-arg"})
    assert "'group_size' parameter of RLConfig (--group-size) must" in out
    assert "'task_kwargs' parameter of RLConfig (--task-arg) must" in out
    assert "'minibatches' parameter of RLConfig must" in out  # no such flag in this command: no hint


def test_command_flags_of_the_chosen_subcommand():
    from lumos.cli.main import build_parser

    parser = build_parser()
    args = parser.parse_args(["rl", "train", "--steps", "2"])
    flags = command_flags(parser, args)
    assert {"--group-size", "--task-arg", "--resume", "--version"} <= flags and "--merge" not in flags


def test_full_disk_and_read_only_are_user_errors():
    assert user_error_message(OSError(errno.ENOSPC, "No space left on device", "/x/config.json")) == \
        "No space left on device: /x/config.json; free space there or write elsewhere (--out)"
    assert "write elsewhere" in user_error_message(OSError(errno.EROFS, "Read-only file system"))
    assert user_error_message(RuntimeError("bug")) is None
