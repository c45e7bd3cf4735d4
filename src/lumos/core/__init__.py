"""The shared core: errors, atomic I/O, seeding, run directories, reports, progress, registries, validation.

Names are loaded on first use (PEP 562), so ``import lumos.core.errors`` — which every module does — stays light:
the CLI reads its arguments and environment before torch loads.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what __getattr__ loads, for type checkers and editors
    from lumos.core.errors import LumosError, LumosTypeError, bad_param, check
    from lumos.core.io import (
        atomic_write_json,
        atomic_write_text,
        load_tensors,
        save_tensors,
        torch_load,
        torch_save,
    )
    from lumos.core.progress import track
    from lumos.core.registry import Registry
    from lumos.core.report import Report, Section
    from lumos.core.rundir import RunDir
    from lumos.core.seed import get_rng_state, seed_everything, set_rng_state

_EXPORTS = {
    "LumosError": "errors", "LumosTypeError": "errors", "bad_param": "errors", "check": "errors",
    "atomic_write_json": "io", "atomic_write_text": "io", "load_tensors": "io", "save_tensors": "io",
    "torch_load": "io", "torch_save": "io",
    "track": "progress",
    "Report": "report", "Section": "report",
    "RunDir": "rundir",
    "seed_everything": "seed", "get_rng_state": "seed", "set_rng_state": "seed",
    "Registry": "registry",
}

__all__ = ["LumosError", "LumosTypeError", "bad_param", "check", "atomic_write_json", "atomic_write_text",
           "load_tensors", "save_tensors", "torch_load", "torch_save", "track", "Report", "Section", "RunDir",
           "seed_everything", "get_rng_state", "set_rng_state", "Registry"]  # = list(_EXPORTS) (a test checks)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'lumos.core' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"lumos.core.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
