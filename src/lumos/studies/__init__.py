"""The lab: the demo tour and the reproduction studies, built on the library and outside its import graph.

No library module imports :mod:`lumos.studies`; the CLI modules load it when a study or the demo is run.
"""

__all__: list[str] = []  # the lab exports nothing; its modules are run by the CLI (lumos demo, rl study, ...)
