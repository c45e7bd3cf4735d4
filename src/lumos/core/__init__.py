"""The shared core: errors, atomic I/O, seeding, run directories, reports, progress, distributed helpers."""

from lumos.core.errors import LumosError, LumosTypeError, bad_param, check
from lumos.core.io import (
    atomic_write_json,
    atomic_write_text,
    load_tensors,
    save_tensors,
    torch_load,
    torch_save,
)
from lumos.core.progress import track
from lumos.core.report import Report, Section
from lumos.core.rundir import RunDir
from lumos.core.seed import get_rng_state, seed_everything, set_rng_state

__all__ = [
    "LumosError",
    "LumosTypeError",
    "bad_param",
    "check",
    "atomic_write_json",
    "atomic_write_text",
    "load_tensors",
    "save_tensors",
    "torch_load",
    "torch_save",
    "track",
    "Report",
    "Section",
    "RunDir",
    "seed_everything",
    "get_rng_state",
    "set_rng_state",
]
