"""Checkpoints of :class:`~lumos.models.HybridLM`: sharded safetensors directories in either key layout.

:mod:`~lumos.models.checkpoint.pretrained` saves and loads whole models, :mod:`~lumos.models.checkpoint.format`
holds what both loaders share (names, the key/shape check, placing a tensor),
:mod:`~lumos.models.checkpoint.sharded` loads only the slices each rank of a device mesh owns,
:mod:`~lumos.models.checkpoint.resolve` opens every checkpoint lumos reads (release, transformers, run and step
directories, distributed or not) and :mod:`~lumos.models.checkpoint.export` converts any of them.
"""

from lumos.models.checkpoint.export import export_checkpoint
from lumos.models.checkpoint.format import INDEX_NAME, SINGLE_NAME, default_dtype, inspect_checkpoint
from lumos.models.checkpoint.pretrained import checkpoint_size, load_pretrained, save_pretrained
from lumos.models.checkpoint.resolve import CheckpointSource, open_checkpoint, resolve_checkpoint

__all__ = ["INDEX_NAME", "SINGLE_NAME", "CheckpointSource", "checkpoint_size", "default_dtype", "export_checkpoint",
           "inspect_checkpoint", "load_pretrained", "open_checkpoint", "resolve_checkpoint", "save_pretrained"]
