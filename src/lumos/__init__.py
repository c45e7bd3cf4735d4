"""Lumos: lightning attention and MiniMax-M1 hybrid MoE models, CISPO RL, ShapleyCAM explainers and CHG Shapley
data valuation.

The main entry points are importable from here; each is loaded on first use (PEP 562), so ``import lumos`` stays
light (the CLI checks its arguments and environment before torch loads)::

    from lumos import HybridLM, MiniMaxConfig, load_pretrained, RLConfig, RLTrainer, ShapleyCAM, CHGValuation
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what __getattr__ loads, for type checkers and editors
    from lumos.core.errors import LumosError
    from lumos.explain import ShapleyCAM
    from lumos.models import HybridLM, MiniMaxConfig, generate, load_pretrained, save_pretrained
    from lumos.rl.config import RLConfig
    from lumos.rl.trainer import RLTrainer
    from lumos.valuation import CHGValuation

__version__ = "0.1.0"

_EXPORTS = {
    "LumosError": "lumos.core.errors",
    "HybridLM": "lumos.models",
    "MiniMaxConfig": "lumos.models",
    "load_pretrained": "lumos.models",
    "save_pretrained": "lumos.models",
    "generate": "lumos.models",
    "RLConfig": "lumos.rl.config",
    "RLTrainer": "lumos.rl.trainer",
    "ShapleyCAM": "lumos.explain",
    "CHGValuation": "lumos.valuation",
}

__all__ = ["__version__", "LumosError", "HybridLM", "MiniMaxConfig", "load_pretrained", "save_pretrained", "generate",
           "RLConfig", "RLTrainer", "ShapleyCAM", "CHGValuation"]  # = ["__version__", *_EXPORTS] (a test checks)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'lumos' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
