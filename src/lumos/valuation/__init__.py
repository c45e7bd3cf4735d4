"""CHG Shapley data valuation and selection (arXiv 2406.11730), with baselines and evaluations.

Public API::

    from lumos.valuation import chg_shapley, CHGValuation, CHGTracker, CHGSelector

- :func:`chg_shapley` — exact closed-form Shapley values of the CHG utility for (N, P) vectors.
- :class:`CHGValuation` — values of training points, scikit-learn style (``fit(X, y)``, built-in model).
- :class:`CHGTracker` — values of a PyTorch classifier's training points while it trains (per-epoch pass or in-run).
- :class:`CHGSelector` — a ``torch.utils.data.Sampler`` keeping the per-class top fraction by CHG value.
"""

from lumos.core.extras import require_extra

require_extra("lumos.valuation", "valuation", "report")

from lumos.valuation.chg import chg_shapley
from lumos.valuation.selection import CHGSelector
from lumos.valuation.tracker import CHGTracker
from lumos.valuation.valuation import CHGValuation

__all__ = ["chg_shapley", "CHGValuation", "CHGTracker", "CHGSelector"]
