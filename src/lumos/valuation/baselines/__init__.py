"""Baseline valuers, all following the :class:`~lumos.valuation.base.Valuer` contract, and a name registry."""

from __future__ import annotations

import inspect
from typing import Any

from lumos.core.errors import bad_param
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
REGISTRY: dict[str, type[Valuer]] = {c.name: c for c in (
    CHGValuation, KNNShapleyValuer, TMCShapleyValuer, DataOOBValuer, LossValuer, EL2NValuer, GraNdValuer,
    ForgettingValuer, LOOValuer, BanzhafValuer, RandomValuer)}

#: Method names accepted by :func:`make_valuer` and ``lumos value --methods``.
METHODS: tuple[str, ...] = tuple(REGISTRY)


def make_valuer(name: str, **params: Any) -> Valuer:
    """A valuer by registry name with the given constructor parameters (unknown names: a clear error)."""
    if name not in REGISTRY:
        raise bad_param("method", "one of " + ", ".join(METHODS), name, owner="make_valuer")
    return REGISTRY[name](**params)


def valuer_params(methods: list[str] | tuple[str, ...], **options: Any) -> dict[str, dict[str, Any]]:
    """Constructor keywords per method: of the shared ``options`` (e.g. ``epochs``, ``model``, ``seed``), those
    that the method's class takes. ``valuer_params(["chg", "knn"], epochs=5, seed=1)`` →
    ``{"chg": {"epochs": 5, "seed": 1}, "knn": {}}``."""
    out = {}
    for name in methods:
        if name not in REGISTRY:
            raise bad_param("method", "one of " + ", ".join(METHODS), name, owner="valuer_params")
        takes = inspect.signature(REGISTRY[name].__init__).parameters
        out[name] = {k: v for k, v in options.items() if k in takes}
    return out
