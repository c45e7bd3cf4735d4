"""One exception type for user errors, and one message shape.

Every user-facing problem (bad shapes, missing files, corrupt checkpoints, labels out of range, empty data)
raises :class:`LumosError` (a ``ValueError``) or :class:`LumosTypeError` (also a ``TypeError``) with a
one-line message: what is wrong, what was expected, what arrived, and how to fix it. The CLI turns these
into one line on stderr and exit status 2.
"""

from __future__ import annotations

from typing import Any

__all__ = ["LumosError", "LumosTypeError", "bad_param", "check", "one_line"]


class LumosError(ValueError):
    """A user error: bad input, bad configuration, missing or corrupt files.

    An aggregate error (:meth:`lumos.core.validation.Problems.raise_if_any`) also has ``problems``, its
    separate problems one by one."""

    problems: list[str]


class LumosTypeError(LumosError, TypeError):
    """A user error about a type or dtype."""


def one_line(text: object, limit: int | None = None) -> str:
    """``text`` on one line (whitespace runs collapsed), cut to ``limit`` characters with "..." when longer."""
    out = " ".join(str(text).split())
    return out if limit is None or len(out) <= limit else out[:limit] + "..."


def bad_param(
    name: str,
    expected: str,
    got: Any,
    *,
    owner: str | None = None,
    fix: str | None = None,
    type_error: bool = False,
) -> LumosError:
    """Build the standard error: "The 'name' parameter of owner must be expected. Got got instead. fix".

    Returns the exception so call sites read ``raise bad_param(...)``.
    """
    where = f" of {owner}" if owner else ""
    got_s = repr(got) if not isinstance(got, str) else got
    if len(got_s) > 200:
        got_s = got_s[:197] + "..."
    msg = f"The '{name}' parameter{where} must be {expected}. Got {got_s} instead."
    if fix:
        msg += f" {fix}"
    cls = LumosTypeError if type_error else LumosError
    return cls(one_line(msg))


def check(condition: bool, message: str, *, type_error: bool = False) -> None:
    """Raise a :class:`LumosError` with ``message`` unless ``condition`` holds (never stripped by -O)."""
    if not condition:
        raise (LumosTypeError if type_error else LumosError)(one_line(message))
