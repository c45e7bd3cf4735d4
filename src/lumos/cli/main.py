"""Entry point of the ``lumos`` command.

Subcommands are registered by the modules in :data:`COMMAND_MODULES`; each exposes
``register(subparsers)`` that adds its parser(s) and sets ``func`` (``args -> int`` exit status).
User errors (:class:`~lumos.core.errors.LumosError`) print one line on stderr and exit with status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

import lumos
from lumos.cli.common import (
    LumosArgumentParser,
    check_out_option,
    check_process_state,
    command_flags,
    guard_errors,
    set_parser_factory,
)
from lumos.cli.common import last_status as _status
from lumos.core.errors import LumosError, one_line
from lumos.core.extras import MissingExtraError
from lumos.core.registry import Registry

__all__ = ["COMMAND_MODULES", "COMMANDS", "build_parser", "main"]

#: Modules that register subcommands, in the order they appear in ``lumos --help``.
COMMAND_MODULES: tuple[str, ...] = (
    "lumos.studies.demo.cli",
    "lumos.models.cli",
    "lumos.analysis.cli",
    "lumos.valuation.cli",
    "lumos.sandbox.cli",
    "lumos.rl.cli",
    "lumos.explain.cli",
)

#: The same modules by short name (their package under ``lumos``: "rl", "sandbox", "studies.demo", ...).
COMMANDS: Registry[str] = Registry("command module", param="module", expects=str, expects_text="a module path")
for _module in COMMAND_MODULES:
    COMMANDS.register(_module.removeprefix("lumos.").removesuffix(".cli"), _module)


def build_parser() -> LumosArgumentParser:
    """The ``lumos`` parser with every command module's subcommands."""
    parser = LumosArgumentParser(
        prog="lumos",
        description="Lumos: lightning attention and MiniMax-M1 hybrid models with CISPO RL, "
        "ShapleyCAM explainers, and CHG Shapley data valuation.",
    )
    parser.add_argument("--version", action="version", version=f"lumos {lumos.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=LumosArgumentParser)
    for name in COMMANDS:
        try:
            module = importlib.import_module(COMMANDS.get(name))
        except MissingExtraError as exc:  # a system whose extra is not installed: its commands are absent
            parser.missing_extras.append(str(exc))
            continue
        module.register(sub)
    if parser.missing_extras:
        parser.epilog = "Not installed: " + "; ".join(parser.missing_extras)
    return parser


set_parser_factory(build_parser)


def _unavailable(parser: LumosArgumentParser, argv: list[str]) -> str | None:
    """The missing-extra message when ``argv`` names no known command and some systems are not installed."""
    missing = parser.missing_extras
    first = next((a for a in argv if not a.startswith("-")), None)
    sub = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
    if not missing or first is None or sub is None or first in sub.choices:
        return None
    return f"lumos: unknown command '{first}'; not installed: " + "; ".join(missing)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (also used by the console script).

    Every failure is one line on stderr: a user error (:class:`~lumos.core.errors.LumosError`, a bad path or
    file) exits with status 2, anything unforeseen (a bug) with status 1 and a hint to set ``LUMOS_DEBUG=1``,
    which re-raises with the full traceback instead. Runs left open by a failure are closed as failed.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    _tolerant_output()
    try:  # before torch loads (a deleted working directory kills its loader) and before any run directory exists
        check_process_state()
    except LumosError as exc:
        print(f"lumos: error: {one_line(exc)}", file=sys.stderr)
        return 2
    try:
        parser = build_parser()
        unavailable = _unavailable(parser, argv)
        if unavailable:
            print(unavailable, file=sys.stderr)
            return 2
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help, --version, or a one-line usage error (status 2)
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    args._argv = argv
    _status.flags = command_flags(parser, args)
    with guard_errors():
        check_out_option(args)
        return int(args.func(args) or 0)
    return _status.code


def _tolerant_output() -> None:
    """Under a non-UTF-8 locale (``LC_ALL=C`` with ``PYTHONIOENCODING=ascii``, a latin-1 terminal) a character the
    stream cannot encode prints as ``?`` instead of failing the command after its work is done."""
    for stream in (sys.stdout, sys.stderr):
        enc = (getattr(stream, "encoding", None) or "").lower().replace("-", "")
        reconfigure = getattr(stream, "reconfigure", None)  # TextIOWrapper's; a replaced stream may lack it
        if enc not in ("utf8", "utf16", "utf32") and callable(reconfigure):
            reconfigure(errors="replace")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
