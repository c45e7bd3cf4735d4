"""Baseline valuers, all following the :class:`~lumos.valuation.base.Valuer` contract, and a name registry."""

from __future__ import annotations

import inspect
from typing import Any

from lumos.core.registry import Registry
from lumos.valuation.base import Valuer
from lumos.valuation.baselines.knn import KNNShapleyValuer, knn_shapley, knn_shapley_naive
from lumos.valuation.baselines.retrain import (
    BanzhafValuer,
    DataOOBValuer,
    LOOValuer,
    SoftmaxRegression,
    TMCShapleyValuer,
)
from lumos.valuation.baselines.simple import (
    EL2NValuer,
    ForgettingValuer,
    GraNdValuer,
    LossValuer,
    RandomValuer,
)
from lumos.valuation.valuation import CHGValuation

__all__ = [
    "METHODS",
    "REGISTRY",
    "make_valuer",
    "valuer_params",
    "RandomValuer",
    "LossValuer",
    "EL2NValuer",
    "GraNdValuer",
    "ForgettingValuer",
    "KNNShapleyValuer",
    "TMCShapleyValuer",
    "LOOValuer",
    "DataOOBValuer",
    "BanzhafValuer",
    "SoftmaxRegression",
    "knn_shapley",
    "knn_shapley_naive",
]


#: Registry name → valuer class, in the order ``lumos value --methods`` lists them (each class carries its ``name``).
REGISTRY: Registry[type[Valuer]] = Registry("valuer", param="method",
                                            expects=lambda c: isinstance(c, type) and issubclass(c, Valuer),
                                            expects_text="a Valuer subclass")
for _cls in (CHGValuation, KNNShapleyValuer, TMCShapleyValuer, DataOOBValuer, LossValuer, EL2NValuer, GraNdValuer,
             ForgettingValuer, LOOValuer, BanzhafValuer, RandomValuer):
    REGISTRY.register(_cls.name, _cls)

#: Method names accepted by :func:`make_valuer` and ``lumos value --methods``.
METHODS: tuple[str, ...] = tuple(REGISTRY.names())


def make_valuer(name: str, **params: Any) -> Valuer:
    """A valuer by registry name with the given constructor parameters (unknown names: a clear error)."""
    return REGISTRY.get(name)(**params)


def valuer_params(methods: list[str] | tuple[str, ...], **options: Any) -> dict[str, dict[str, Any]]:
    """Constructor keywords per method: of the shared ``options`` (e.g. ``epochs``, ``model``, ``seed``), those
    that the method's class takes. ``valuer_params(["chg", "knn"], epochs=5, seed=1)`` →
    ``{"chg": {"epochs": 5, "seed": 1}, "knn": {}}``."""
    out = {}
    for name in methods:
        takes = inspect.signature(REGISTRY.get(name).__init__).parameters
        out[name] = {k: v for k, v in options.items() if k in takes}
    return out
