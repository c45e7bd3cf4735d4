"""Entry point of the ``lumos`` command.

Subcommands are registered by the modules in :data:`COMMAND_MODULES`; each exposes
``register(subparsers)`` that adds its parser(s) and sets ``func`` (``args -> int`` exit status).
User errors (:class:`~lumos.core.errors.LumosError`) print one line on stderr and exit with status 2.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

import lumos
from lumos.cli.common import LumosArgumentParser
from lumos.core.errors import LumosError

__all__ = ["COMMAND_MODULES", "build_parser", "main"]

#: Modules that register subcommands, in the order they appear in ``lumos --help``.
COMMAND_MODULES: tuple[str, ...] = (
    "lumos.demo.cli",
    "lumos.models.cli",
    "lumos.models.plan_cli",
    "lumos.valuation.cli",
    "lumos.rl.sandbox.cli",
    "lumos.rl.cli",
    "lumos.explain.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = LumosArgumentParser(
        prog="lumos",
        description="Lumos: lightning attention and MiniMax-M1 hybrid models with CISPO RL, "
        "ShapleyCAM explainers, and CHG Shapley data valuation.",
    )
    parser.add_argument("--version", action="version", version=f"lumos {lumos.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=LumosArgumentParser)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (also used by the console script)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        status = args.func(args)
    except LumosError as exc:
        msg = " ".join(str(exc).split())
        print(f"lumos: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("lumos: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `lumos ... | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return int(status or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
