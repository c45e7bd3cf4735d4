"""Helpers shared by subcommand modules."""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any, NoReturn

from lumos.core.errors import LumosError, one_line

__all__ = ["add_run_options", "parse_csv_list", "parse_key_values", "print_table", "LumosArgumentParser", "guard_errors",
           "check_out_option", "check_process_state", "user_error_message", "name_flags", "command_flags", "PARAM_FLAGS", "explicit_options", "set_parser_factory"]


class LumosArgumentParser(argparse.ArgumentParser):
    """argparse with one-line errors (exit status 2, no usage dump); ``missing_extras`` holds the messages of
    the systems whose extra is not installed (their commands are absent)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.missing_extras: list[str] = []

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def add_run_options(parser: argparse.ArgumentParser, seed: int = 0) -> None:
    """``--out DIR`` and ``--seed N``, which every computing command takes."""
    parser.add_argument("--out", default=None, help="run directory (default: runs/<command>-<timestamp>)")
    parser.add_argument("--seed", type=int, default=seed, help=f"random seed (default: {seed})")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing run in --out (default: an existing run is an error)")


def parse_csv_list(value: str, choices: Iterable[str] | None = None, what: str = "value") -> list[str]:
    """Split ``a,b,c``; with ``choices``, unknown names are a clear error. ``choices`` may be a
    :class:`~lumos.core.registry.Registry`: names then resolve through it (aliases, its case rule) and an unknown
    one gets the registry's error."""
    from lumos.core.registry import Registry

    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items:
        raise LumosError(f"Expected a comma-separated list of {what}s; got {value!r}.")
    if isinstance(choices, Registry):
        return [choices.resolve(v) for v in items]
    if choices is not None:
        choices = tuple(choices)
        unknown = [v for v in items if v not in choices]
        if unknown:
            raise LumosError(f"Unknown {what}(s) {', '.join(unknown)}; choose from {', '.join(choices)}.")
    return items


def parse_key_values(items: list[str], flag: str) -> dict[str, Any]:
    """``["a=1", "b=x"]`` → ``{"a": 1, "b": "x"}``: each value parsed as JSON when it is JSON, else kept as text
    (the one KEY=VALUE parser of every repeatable ``--flag KEY=VALUE``). A later key wins."""
    import json

    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise LumosError(f"{flag} expects KEY=VALUE; got {item!r}.")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def print_table(rows: list[dict[str, Any]]) -> None:
    """Print dict rows as right-aligned columns (floats to 4 significant digits)."""
    if not rows:
        return
    keys = list(dict.fromkeys(k for r in rows for k in r))
    cells = [[_fmt(r.get(k, "")) for k in keys] for r in rows]
    widths = [max(len(k), *(len(c[i]) for c in cells)) for i, k in enumerate(keys)]
    print("  ".join(k.rjust(w) for k, w in zip(keys, widths)))
    for c in cells:
        print("  ".join(v.rjust(w) for v, w in zip(c, widths)))


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1e5 else f"{v:.3e}"
    return str(v)


# ---------------------------------------------------------------------------------------------------------------
# The one error boundary of every command


class _Status:
    code = 0
    #: the option strings of the command being run (set by lumos.cli.main), for :func:`name_flags`
    flags: frozenset[str] = frozenset()


#: the exit status chosen by the last :func:`guard_errors` block that caught an exception
last_status = _Status()

DEBUG_HINT = "run with LUMOS_DEBUG=1 for the traceback"


def check_process_state() -> None:
    """What every command needs before any work: an existing working directory, and environment variables that
    parse (:func:`lumos.core.env.check_environment`)."""
    from lumos.core.env import check_environment

    try:
        os.getcwd()
    except FileNotFoundError:
        raise LumosError("The working directory no longer exists (it was deleted or moved). cd to an existing "
                         "directory and run the command again.") from None
    check_environment()


#: OS errors that are the user's machine, not a lumos bug, even when they name no file
_USER_ERRNOS = {errno.ENOSPC: "free space there or write elsewhere (--out)",
                errno.EDQUOT: "free space in your quota or write elsewhere (--out)",
                errno.EROFS: "write elsewhere (--out)"}


#: library parameter → CLI flag where the flag is not ``--`` + the name with dashes (the one mapping place)
PARAM_FLAGS = {"task_kwargs": "--task-arg", "loss_args": "--loss-arg", "warm_start_steps": "--warm-start",
               "algos": "--algos", "updates": "--updates"}
_PARAM = re.compile(r"The '(\w+)' parameter( of [\w.]+)?")


def name_flags(message: str, flags: frozenset[str] | set[str] | None = None) -> str:
    """Library messages name parameters ("The 'group_size' parameter of RLConfig ..."); on the command line each
    such parameter that the running command takes as a flag is named too ("... of RLConfig (--group-size) ...")."""
    flags = last_status.flags if flags is None else flags

    def add(m: re.Match[str]) -> str:
        flag = PARAM_FLAGS.get(m[1], "--" + m[1].replace("_", "-"))
        return f"{m[0]} ({flag})" if flag in flags else m[0]

    return _PARAM.sub(add, message)


def command_flags(parser: argparse.ArgumentParser, args: argparse.Namespace) -> frozenset[str]:
    """The option strings of the (sub)command that ``args`` was parsed for."""
    flags: set[str] = set()
    while True:
        flags.update(o for a in parser._actions for o in a.option_strings)
        sub = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
        chosen = getattr(args, sub.dest, None) if sub is not None and sub.dest else None
        if sub is None or chosen not in sub.choices:
            return frozenset(flags)
        parser = sub.choices[chosen]


def user_error_message(exc: BaseException) -> str | None:
    """The one-line message of a user error (bad input, bad path, unreadable file, full disk), or None for a bug."""
    import json

    if isinstance(exc, OSError) and exc.errno in _USER_ERRNOS:
        where = f": {exc.filename}" if exc.filename is not None else ""
        return f"{exc.strerror or os.strerror(exc.errno)}{where}; {_USER_ERRNOS[exc.errno]}"
    if isinstance(exc, LumosError):
        return name_flags(one_line(exc))
    if isinstance(exc, UnicodeDecodeError):
        return f"cannot decode input as {exc.encoding} ({exc.reason} at byte {exc.start}); save the file as UTF-8"
    if isinstance(exc, json.JSONDecodeError):
        return f"invalid JSON ({exc.msg}, line {exc.lineno} column {exc.colno}); fix the file"
    if isinstance(exc, OSError) and (exc.filename is not None or isinstance(exc, (PermissionError, FileNotFoundError))):
        what = exc.strerror or type(exc).__name__
        where = f": {exc.filename}" if exc.filename is not None else ""
        return f"{what}{where}; check the path and its permissions"
    return None


@contextlib.contextmanager
def guard_errors() -> Iterator[None]:
    """Turn any exception into one line on stderr and ``last_status.code`` (2 user error, 1 bug, 130 Ctrl-C).

    Runs still marked ``running`` are closed as failed. ``LUMOS_DEBUG=1`` re-raises with the traceback.
    """
    from lumos.core.rundir import close_open_runs

    last_status.code = 0
    try:
        yield
    except KeyboardInterrupt:
        close_open_runs("interrupted")
        print("lumos: interrupted", file=sys.stderr)
        last_status.code = 130
    except BrokenPipeError:  # e.g. `lumos ... | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        last_status.code = 0
    except Exception as exc:  # noqa: BLE001 - the boundary: everything becomes one line
        close_open_runs(f"failed: {type(exc).__name__}")
        if _debug():
            raise
        msg = user_error_message(exc)
        if msg is not None:
            print(f"lumos: error: {msg}", file=sys.stderr)
            last_status.code = 2
        else:
            text = one_line(exc, 300) or "(no message)"
            print(f"lumos: internal error: {type(exc).__name__}: {text} ({DEBUG_HINT})", file=sys.stderr)
            last_status.code = 1


def _debug() -> bool:
    """``LUMOS_DEBUG`` by the one flag rule; a malformed value counts as off here (it is reported before any work
    by :func:`check_process_state`)."""
    from lumos.core.env import env_flag

    try:
        return bool(env_flag("LUMOS_DEBUG"))
    except LumosError:
        return False


def check_out_option(args: argparse.Namespace) -> None:
    """Validate ``--out`` before any work (see :func:`lumos.core.rundir.check_out_dir`)."""
    from lumos.core.rundir import allow_overwrite, check_out_dir
    from lumos.core.validation import check_nonneg_int

    if isinstance(getattr(args, "seed", None), int):
        check_nonneg_int(args.seed, "--seed")
    out = getattr(args, "out", None)
    if out is not None and hasattr(args, "seed"):
        overwrite = bool(getattr(args, "overwrite", False))
        check_out_dir(out, resume=bool(getattr(args, "resume", False)), overwrite=overwrite,
                      has_resume=hasattr(args, "resume"))
        if overwrite:
            allow_overwrite(out)


#: builds the whole ``lumos`` parser; :mod:`lumos.cli.main` sets it at import (this module never imports main,
#: which imports it)
_parser_factory: list[Callable[[], argparse.ArgumentParser]] = []


def set_parser_factory(factory: Callable[[], argparse.ArgumentParser]) -> None:
    """Record the function that builds the ``lumos`` parser (read by :func:`explicit_options`)."""
    _parser_factory[:] = [factory]


def explicit_options(argv: list[str]) -> set[str]:
    """The ``dest`` names of the options given explicitly in ``argv`` (defaults excluded, abbreviations resolved)."""
    if not _parser_factory:
        raise RuntimeError("explicit_options needs the lumos parser: import lumos.cli.main first")
    parser = _parser_factory[0]()

    def suppress(p: argparse.ArgumentParser) -> None:
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    suppress(sub)
            elif action.dest != "help":
                action.default = argparse.SUPPRESS
        p.set_defaults(**{k: argparse.SUPPRESS for k in p._defaults})

    suppress(parser)
    ns = parser.parse_args(argv)
    return {k for k, v in vars(ns).items() if v is not argparse.SUPPRESS}
