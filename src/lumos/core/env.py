"""Environment variables, read in one place: every ``LUMOS_*`` flag follows one truthiness rule, every number is
parsed with a message naming the variable, and torchrun's ``WORLD_SIZE`` / ``RANK`` are checked together.

========================  ===============================================  ==========================
variable                  meaning                                          read by
========================  ===============================================  ==========================
``LUMOS_DEBUG``           flag: re-raise errors with their traceback       the CLI's error boundary
``LUMOS_PROGRESS``        flag: progress bars on / off (unset: on a tty)   :mod:`lumos.core.progress`
``LUMOS_MAX_DATA_BYTES``  int ≥ 1: largest data file ``lumos value`` reads  :mod:`lumos.valuation.table`
``LUMOS_MAX_IMAGE_PIXELS`` int ≥ 1: largest image decoded                   :mod:`lumos.data.images`
``WORLD_SIZE``, ``RANK``  torchrun's process count and this process's rank  :mod:`lumos.distributed`
========================  ===============================================  ==========================

Flags: ``1``, ``true``, ``yes``, ``on`` are on; ``0``, ``false``, ``no``, ``off`` and the empty string are off
(any case, surrounding spaces ignored); anything else is an error naming the variable.
"""

from __future__ import annotations

import os

from lumos.core.errors import LumosError

__all__ = ["TRUE", "FALSE", "FLAGS", "NUMBERS", "env_flag", "env_int", "distributed_env", "check_environment"]

TRUE = ("1", "true", "yes", "on")
FALSE = ("0", "false", "no", "off", "")

#: the LUMOS_* flags (a value outside TRUE/FALSE is an error)
FLAGS = ("LUMOS_DEBUG", "LUMOS_PROGRESS")
#: the LUMOS_* numbers: name → smallest accepted value
NUMBERS = {"LUMOS_MAX_DATA_BYTES": 1, "LUMOS_MAX_IMAGE_PIXELS": 1, "LUMOS_MAX_PROMPT_CHARS": 1}


def env_flag(name: str, default: bool | None = False) -> bool | None:
    """The flag ``name``: ``default`` when unset, else True / False by the module's one rule."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in TRUE:
        return True
    if value in FALSE:
        return False
    raise LumosError(f"The environment variable {name} must be one of {', '.join(TRUE)} (on) or "
                     f"{', '.join(v for v in FALSE if v)} (off). Got {raw!r} instead. Set it to 1 or 0, or unset it.")


def env_int(name: str, default: int, *, low: int | None = None, what: str | None = None) -> int:
    """The integer ``name`` (``default`` when unset or empty); not an int, or below ``low``, is an error naming
    the variable (``what``: how the message describes a valid value; default "an integer ≥ low")."""
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        value = None
    if value is None or (low is not None and value < low):
        want = what or ("an integer" if low is None else f"an integer ≥ {low}")
        raise LumosError(f"The environment variable {name} must be {want}. Got {raw!r} instead. Fix or unset it "
                         f"(default {default}).")
    return value


def distributed_env() -> tuple[int, int]:
    """``(world_size, rank)`` from torchrun's variables: (1, 0) when ``WORLD_SIZE`` is unset or 1. A world larger
    than one needs ``RANK`` in [0, WORLD_SIZE) and ``MASTER_ADDR`` / ``MASTER_PORT`` (torchrun sets all four)."""
    world = env_int("WORLD_SIZE", 1, low=1)
    if world == 1:
        return 1, 0
    if os.environ.get("RANK") is None:
        raise LumosError(f"WORLD_SIZE={world} but RANK is not set. Start the processes with torchrun (it sets "
                         "RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT), or unset WORLD_SIZE for one process.")
    rank = env_int("RANK", 0, low=0)
    if rank >= world:
        raise LumosError(f"The environment variable RANK must be below WORLD_SIZE ({world}). Got {rank} instead.")
    missing = [v for v in ("MASTER_ADDR", "MASTER_PORT") if not os.environ.get(v)]
    if missing:
        raise LumosError(f"WORLD_SIZE={world} but {' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} "
                         "not set. Start the processes with torchrun, or set them to the rendezvous address.")
    return world, rank


def check_environment() -> None:
    """Parse every variable of the table above (the CLI calls this before any work), raising the first problem."""
    for name in FLAGS:
        env_flag(name)
    for name, low in NUMBERS.items():
        env_int(name, 1, low=low)
    distributed_env()
