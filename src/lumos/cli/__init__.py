"""The ``lumos`` command line (entry point ``lumos.cli.main:main``).

Each system registers its subcommands from its own module, listed in ``lumos.cli.main.COMMAND_MODULES``.
"""

__all__: list[str] = []  # the entry point is lumos.cli.main:main; helpers live in lumos.cli.common
