"""The ``lumos`` command line (entry point ``lumos.cli.main:main``).

Each system registers its subcommands from its own module, listed in ``lumos.cli.main.COMMAND_MODULES``.
"""
