"""Public API of lumos.valuation."""

import lumos.valuation as valuation


def test_public_api():
    assert valuation.__all__ == ["chg_shapley", "CHGValuation", "CHGSelector"]
    from lumos.valuation import CHGSelector, CHGValuation, chg_shapley  # noqa: F401
