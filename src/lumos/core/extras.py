"""Optional dependencies by system: which extra each part of lumos needs, and one message when it is missing.

The core install (``pip install lumos``) is torch, numpy, safetensors and rich: the lightning op, the layers, the
models, generation, checkpoints and the planner run from it. Each system declares its extra here, and its
package checks it on import, so a missing dependency is one line naming the extra instead of a traceback from
deep inside::

    >>> from lumos.core.extras import EXTRAS
    >>> sorted(EXTRAS)
    ['report', 'rl', 'sandbox', 'valuation', 'vision']
"""

from __future__ import annotations

import importlib.util
import sys

__all__ = ["EXTRAS", "MissingExtraError", "missing_modules", "require_extra"]

#: extra name -> the importable modules it provides (the pip names are in pyproject.toml's optional-dependencies).
EXTRAS: dict[str, tuple[str, ...]] = {
    "report": ("matplotlib",),
    "rl": ("transformers", "tokenizers"),
    "sandbox": ("pyseccomp",) if sys.platform.startswith("linux") else (),
    "valuation": ("sklearn", "scipy", "threadpoolctl"),
    "vision": ("torchvision", "PIL"),
}


class MissingExtraError(ImportError):
    """A part of lumos was imported without the optional dependencies of its extra."""

    def __init__(self, system: str, extra: str, missing: list[str]) -> None:
        self.system, self.extra, self.missing = system, extra, missing
        super().__init__(f"{system} needs the '{extra}' extra (missing: {', '.join(missing)}): "
                         f"pip install 'lumos[{extra}]'")


def missing_modules(extra: str) -> list[str]:
    """The modules of ``extra`` that cannot be imported here (empty when the extra is installed)."""
    out = []
    for name in EXTRAS[extra]:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            out.append(name)
    return out


def require_extra(system: str, *extras: str) -> None:
    """Raise :class:`MissingExtraError` naming the first of ``extras`` that is not installed.

    Called at the top of a system package's ``__init__`` (``require_extra("lumos.rl", "rl")``).
    """
    for extra in extras:
        missing = missing_modules(extra)
        if missing:
            raise MissingExtraError(system, extra, missing)
