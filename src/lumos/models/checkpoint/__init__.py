"""Checkpoints of :class:`~lumos.models.HybridLM`: sharded safetensors directories in either key layout.

:mod:`~lumos.models.checkpoint.pretrained` saves and loads whole models, :mod:`~lumos.models.checkpoint.format`
holds what both loaders share (names, the key/shape check, placing a tensor), and
:mod:`~lumos.models.checkpoint.sharded` loads only the slices each rank of a device mesh owns.
"""

from lumos.models.checkpoint.format import INDEX_NAME, SINGLE_NAME, default_dtype, inspect_checkpoint
from lumos.models.checkpoint.pretrained import checkpoint_size, load_pretrained, save_pretrained

__all__ = ["INDEX_NAME", "SINGLE_NAME", "checkpoint_size", "default_dtype", "inspect_checkpoint", "load_pretrained",
           "save_pretrained"]
