"""The wire codec of the sandbox's channels: round trips of plain data, refusals of everything else."""

from __future__ import annotations

import json
import math
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lumos.sandbox import _wire

_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20),
                     st.binary(max_size=20))
_hashable = st.recursive(_scalars, lambda c: st.one_of(st.tuples(c, c), st.frozensets(c, max_size=3)), max_leaves=8)
_values = st.recursive(
    _scalars,
    lambda c: st.one_of(st.lists(c, max_size=4), st.tuples(c, c), st.dictionaries(_hashable, c, max_size=4),
                        st.sets(_hashable, max_size=4), st.frozensets(_hashable, max_size=4)),
    max_leaves=20)


def _same(a, b) -> bool:
    """Equal values of exactly the same types, all the way down (``1 == 1.0 == True`` is not enough here)."""
    if type(a) is not type(b):
        return False
    if type(a) in (list, tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if type(a) is dict:
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b


@settings(max_examples=150, deadline=None)
@given(_values)
def test_plain_values_round_trip_through_a_json_line(value):
    line = _wire.dumps({"ok": _wire.encode(value)})
    assert line.endswith(b"\n") and b"\n" not in line[:-1]
    back = _wire.decode(_wire.loads(line[:-1])["ok"])
    assert _same(back, value)


@pytest.mark.parametrize("x", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_floats_cross_tagged(x):
    back = _wire.decode(_wire.loads(_wire.dumps(_wire.encode(x))[:-1]))
    assert type(back) is float and (math.isnan(back) if math.isnan(x) else back == x)


class _Int(int):
    def __eq__(self, other):
        return True

    __hash__ = int.__hash__


@pytest.mark.parametrize("x", [_Int(3), object(), [1, object()], {"a": lambda: 1}, type, ValueError("x")])
def test_anything_but_exact_plain_data_is_refused(x):
    with pytest.raises(_wire.EncodeError):
        _wire.encode(x)
    seen = []
    # the hook decides
    assert _wire.encode(x, 0, lambda o: seen.append(o) or {"$r": len(seen)}) is not None and seen


def test_depth_and_size_are_bounded():
    deep = []
    for _ in range(_wire.MAX_DEPTH + 2):
        deep = [deep]
    with pytest.raises(_wire.EncodeError, match="deeper"):
        _wire.encode(deep)
    nested = json.loads("[" * (_wire.MAX_DEPTH + 2) + "]" * (_wire.MAX_DEPTH + 2))
    with pytest.raises(ValueError, match="deeper"):
        _wire.decode(nested)
    with pytest.raises(_wire.EncodeError, match="larger"):
        _wire.dumps("x" * _wire.MAX_LINE)
    with pytest.raises(ValueError, match="too long"):
        _wire.loads(b"1" * (_wire.MAX_LINE + 1))
    with pytest.raises(ValueError, match="nested too deeply"):
        _wire.loads(b"[" * 100_000)


@pytest.mark.parametrize("obj", [
    {"$f": "1.5"}, {"$b": "zz"}, {"$b": 3}, {"$t": 3}, {"$d": [[1]]}, {"$d": [[[1], 2]]}, {"$s": [[1]]},
    {"$x": []}, {"a": 1, "b": 2}, {"$h": [1, "object", "x", []]}, {"$r": 1},
])
def test_malformed_values_are_refused(obj):
    with pytest.raises(ValueError):
        _wire.decode(obj)


def test_handles_go_to_the_hook_only():
    assert _wire.decode({"$r": 7}, 0, lambda tag, body: (tag, body)) == ("$r", 7)
    assert _wire.decode({"$t": [{"$h": 1}]}, 0, lambda tag, body: body) == (1,)


def test_line_reader_splits_bounds_and_ends(tmp_path):
    r, w = os.pipe()
    try:
        assert _wire.write_all(w, b'{"a": 1}\n{"b"')
        _wire.write_all(w, b': 2}\n')
        os.close(w)
        w = None
        reader = _wire.LineReader(r)
        assert [reader.readline(), reader.readline(), reader.readline()] == [b'{"a": 1}', b'{"b": 2}', None]
    finally:
        os.close(r)
        if w is not None:
            os.close(w)
    long_line = tmp_path / "long"
    long_line.write_bytes(b"x" * (_wire.MAX_LINE + 10) + b"\n")
    fd = os.open(long_line, os.O_RDONLY)
    try:
        with pytest.raises(ValueError, match="too long"):
            _wire.LineReader(fd).readline()
    finally:
        os.close(fd)


def test_channel_and_describe():
    r, w = os.pipe()
    _wire.Channel(w).send(test="t", passed=True, value=object())  # not JSON: repr'd, never raises
    os.close(w)
    rec = json.loads(os.read(r, 65536))
    os.close(r)
    assert rec["test"] == "t" and rec["passed"] is True and rec["value"].startswith("<object")
    assert _wire.write_all(-1, b"x") is False
    try:
        assert 1 == 2
    except AssertionError as exc:
        assert _wire.describe(exc) == "AssertionError: assert 1 == 2"
    assert _wire.describe(MemoryError()) == "MemoryError" and _wire.describe(KeyError("k")) == "KeyError: 'k'"
