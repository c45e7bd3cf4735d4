"""Faithfulness and localisation metrics for CAMs (see each module for the exact definitions).

Paper metrics (ShapleyCAM's code): :func:`faithfulness` per batch (AD, IC, ADD, Com, Coh) and
:class:`FaithfulnessMeter` for dataset means and ADCC; deletion / insertion AUC; pointing games.
"""

from lumos.explain.metrics.faithfulness import (
    FAITHFULNESS_KEYS,
    FaithfulnessMeter,
    adcc,
    class_probability,
    coherency,
    complexity,
    faithfulness,
    pearson_rows,
)
from lumos.explain.metrics.perturbation import deletion_auc, insertion_auc, perturbation_curve, pixel_ranks
from lumos.explain.metrics.pointing import box_masks, energy_pointing_game, pointing_game

__all__ = [
    "FAITHFULNESS_KEYS",
    "FaithfulnessMeter",
    "adcc",
    "class_probability",
    "coherency",
    "complexity",
    "faithfulness",
    "pearson_rows",
    "deletion_auc",
    "insertion_auc",
    "perturbation_curve",
    "pixel_ranks",
    "box_masks",
    "energy_pointing_game",
    "pointing_game",
]
