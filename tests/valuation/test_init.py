"""Public API of lumos.valuation."""

import lumos.valuation as valuation


def test_public_api():
    assert valuation.__all__ == ["chg_shapley", "CHGValuation", "CHGTracker", "CHGSelector"]
    from lumos.valuation import CHGSelector, CHGTracker, CHGValuation, chg_shapley  # noqa: F401
