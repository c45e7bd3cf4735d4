"""Lumos: lightning attention and MiniMax-M1 hybrid MoE models with CISPO RL, ShapleyCAM explainers and CHG Shapley
data valuation."""

__version__ = "0.2.0"
__all__ = ["__version__"]
