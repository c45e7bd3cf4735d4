"""Functional operators (no parameters). Layers in :mod:`lumos.layers` build on these."""

from lumos.ops.lightning import lightning_attention, lightning_attention_step

__all__ = ["lightning_attention", "lightning_attention_step"]
