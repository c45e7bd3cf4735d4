"""One validation vocabulary for every public API, CLI and config, all raising one message shape.

Every check raises :func:`lumos.core.errors.bad_param`'s form::

    The 'name' parameter of Owner must be <expectation>. Got <value> instead. <fix>

and returns the value, so constructors read ``self.k = check_positive_int(k, "k", owner="KNNShapley")``.
Bools are never ints here (``True`` is rejected where an int is expected), and NaN/inf are never numbers in a
range. Configs that report every problem at once use :class:`Problems`.

=========================  ==========================================================================
check                      accepts
=========================  ==========================================================================
``check_int``              an int (not a bool) in [low, high]
``check_positive_int``     an int ≥ 1
``check_nonneg_int``       an int ≥ 0
``check_float``            a finite real (not a bool) in an interval (open or closed ends), or None
``check_probability``      a finite real in [0, 1] (ends optionally open)
``check_choice``           one of a fixed set of strings
``check_bool``             True or False
``check_dataset``          a non-empty map-style dataset (``len`` and ``[i]``)
``check_tensor``           a tensor of a given rank, dtype, shape and device
``check_finite``           a tensor without NaN or inf
``check_same_device``      tensors on one device
=========================  ==========================================================================
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from typing import Any

import torch

from lumos.core.errors import LumosError, bad_param, check

__all__ = [
    "is_int",
    "is_real",
    "check_int",
    "check_positive_int",
    "check_nonneg_int",
    "check_float",
    "check_in_range",
    "check_probability",
    "check_choice",
    "check_bool",
    "check_dataset",
    "check_tensor",
    "check_same_device",
    "check_finite",
    "Problems",
]


def is_int(v: object) -> bool:
    """An int that is not a bool (numpy integers count)."""
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def is_real(v: object) -> bool:
    """A real number that is not a bool (ints, floats, numpy scalars)."""
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def _interval(low: float | None, high: float | None, low_inclusive: bool, high_inclusive: bool) -> str:
    lo = "-inf" if low is None else f"{low:g}" if isinstance(low, float) else str(low)
    hi = "inf" if high is None else f"{high:g}" if isinstance(high, float) else str(high)
    lb = "[" if low_inclusive and low is not None else "("
    rb = "]" if high_inclusive and high is not None else ")"
    return f"{lb}{lo}, {hi}{rb}"


def check_int(value: object, name: str, low: int | None = None, high: int | None = None, *,
              owner: str | None = None, fix: str | None = None) -> int:
    """``value`` must be an int (not a bool) in [``low``, ``high``] (``None`` = unbounded)."""
    ok = is_int(value) and (low is None or value >= low) and (high is None or value <= high)  # type: ignore[operator]
    if not ok:
        if low is not None and high is None:
            want = "a positive int" if low == 1 else "a non-negative int" if low == 0 else f"an int ≥ {low}"
        else:
            want = "an int" if low is None and high is None else f"an int in the range {_interval(low, high, True, True)}"
        raise bad_param(name, want, value, owner=owner, fix=fix, type_error=not is_int(value))
    return int(value)  # type: ignore[arg-type]


def check_positive_int(value: object, name: str, *, owner: str | None = None, fix: str | None = None) -> int:
    """``value`` must be an int ≥ 1 (not a bool)."""
    return check_int(value, name, 1, owner=owner, fix=fix)


def check_nonneg_int(value: object, name: str, *, owner: str | None = None, fix: str | None = None) -> int:
    """``value`` must be an int ≥ 0 (not a bool)."""
    return check_int(value, name, 0, owner=owner, fix=fix)


def check_float(value: object, name: str, low: float | None = None, high: float | None = None, *,
                owner: str | None = None, low_inclusive: bool = True, high_inclusive: bool = True,
                allow_none: bool = False, fix: str | None = None) -> float | None:
    """``value`` must be a finite real number (not a bool, NaN or inf) in the interval; ``None`` if allowed."""
    if value is None and allow_none:
        return None
    ok = is_real(value) and math.isfinite(float(value))  # type: ignore[arg-type]
    if ok:
        v = float(value)  # type: ignore[arg-type]
        if low is not None:
            ok = v >= low if low_inclusive else v > low
        if ok and high is not None:
            ok = v <= high if high_inclusive else v < high
    if not ok:
        if low is None and high is None:
            want = "a finite number"
        elif low == 0 and high is None:
            want = "a finite number ≥ 0" if low_inclusive else "a finite number > 0"
        else:
            want = f"a finite number in the range {_interval(low, high, low_inclusive, high_inclusive)}"
        if allow_none:
            want += " or None"
        raise bad_param(name, want, value, owner=owner, fix=fix, type_error=not is_real(value))
    return float(value)  # type: ignore[arg-type]


def check_in_range(value: object, name: str, low: float | None = None, high: float | None = None,
                   owner: str | None = None, low_inclusive: bool = True, high_inclusive: bool = True) -> float:
    """Alias of :func:`check_float` with positional bounds (kept for existing callers)."""
    out = check_float(value, name, low, high, owner=owner, low_inclusive=low_inclusive, high_inclusive=high_inclusive)
    assert out is not None
    return out


def check_probability(value: object, name: str, *, owner: str | None = None, open_low: bool = False,
                      open_high: bool = False, fix: str | None = None) -> float:
    """``value`` must be a finite number in [0, 1] (ends excluded with ``open_low`` / ``open_high``)."""
    out = check_float(value, name, 0.0, 1.0, owner=owner, low_inclusive=not open_low, high_inclusive=not open_high,
                      fix=fix)
    assert out is not None
    return out


def check_choice(value: object, name: str, choices: Sequence[str], owner: str | None = None) -> str:
    """``value`` must be one of ``choices``."""
    if not isinstance(value, str) or value not in choices:
        raise bad_param(name, "one of " + ", ".join(repr(c) for c in choices), value, owner=owner)
    return value


def check_bool(value: object, name: str, *, owner: str | None = None) -> bool:
    """``value`` must be ``True`` or ``False`` (not 0/1 or a string)."""
    if not isinstance(value, bool):
        raise bad_param(name, "True or False", value, owner=owner, type_error=True)
    return value


def check_dataset(dataset: object, name: str, *, owner: str | None = None) -> object:
    """``dataset`` must be a non-empty map-style dataset (``len(dataset)`` and ``dataset[i]``, as
    ``torch.utils.data.Dataset``); an iterable-only dataset has no fixed order or size and is refused."""
    if not hasattr(dataset, "__len__") or not hasattr(dataset, "__getitem__"):
        raise bad_param(name, "a map-style dataset of (x, y) (with len() and [i])", type(dataset).__name__,
                        owner=owner, type_error=True)
    if len(dataset) == 0:  # type: ignore[arg-type]
        raise bad_param(name, "non-empty", "an empty dataset", owner=owner)
    return dataset


def check_tensor(
    x: object,
    name: str,
    *,
    ndim: int | Sequence[int] | None = None,
    dtypes: Sequence[torch.dtype] | None = None,
    owner: str | None = None,
    shape: Sequence[int | None] | None = None,
    device: torch.device | str | None = None,
    fix: str | None = None,
) -> torch.Tensor:
    """Check that ``x`` is a tensor with the given rank, dtype, shape (``None`` entries match anything) and
    device type (``"cpu"``, ``"cuda"``, ...). ``fix`` ends the type, rank, dtype and shape messages (e.g. the
    layout the caller expects)."""
    if not isinstance(x, torch.Tensor):
        raise bad_param(name, "a torch.Tensor", type(x).__name__, owner=owner, type_error=True, fix=fix)
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if x.dim() not in allowed:
            raise bad_param(name, f"a {' or '.join(map(str, allowed))}-D tensor", f"shape {tuple(x.shape)}", owner=owner,
                            fix=fix)
    if dtypes is not None and x.dtype not in dtypes:
        names = ", ".join(str(d).replace("torch.", "") for d in dtypes)
        raise bad_param(name, f"one of dtypes ({names})", str(x.dtype).replace("torch.", ""), owner=owner, type_error=True,
                        fix=fix)
    if shape is not None:
        ok = len(shape) == x.dim() and all(s is None or s == t for s, t in zip(shape, x.shape))
        if not ok:
            want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
            raise bad_param(name, f"of shape {want}", f"shape {tuple(x.shape)}", owner=owner, fix=fix)
    if device is not None and x.device.type != torch.device(device).type:
        raise bad_param(name, f"a tensor on {torch.device(device).type}", f"a tensor on {x.device}", owner=owner,
                        fix=f"Move it with .to({torch.device(device).type!r}).")
    return x


def check_same_device(owner: str | None = None, **tensors: torch.Tensor | None) -> None:
    """All given tensors must be on one device."""
    devices = {k: v.device for k, v in tensors.items() if v is not None}
    if len(set(devices.values())) > 1:
        listing = ", ".join(f"{k} on {d}" for k, d in devices.items())
        where = f" for {owner}" if owner else ""
        check(False, f"Tensors{where} must be on one device; got {listing}. Move them with .to(device).")


def check_finite(x: torch.Tensor, name: str, owner: str | None = None, fix: str = "Clean the input.") -> torch.Tensor:
    """No NaN or inf in ``x`` (a tensor or numpy array)."""
    t = x if isinstance(x, torch.Tensor) else torch.as_tensor(x)
    if t.is_floating_point() or t.is_complex():
        bad = ~torch.isfinite(t)
        if bool(bad.any()):
            raise bad_param(name, "finite (no NaN or inf)", f"{int(bad.sum())} non-finite value(s)", owner=owner,
                            fix=fix)
    return x


class Problems:
    """Collect every problem of a config and raise them together (one line, ``; ``-separated).

    Example::

        p = Problems("RLConfig")
        p.check(check_positive_int, cfg.steps, "steps")
        p.require(cfg.a <= cfg.b, "'a' must be ≤ 'b'")
        p.raise_if_any()
    """

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self.items: list[str] = []

    def check(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call ``fn(*args, owner=..., **kwargs)``; a :class:`LumosError` becomes one collected problem."""
        try:
            return fn(*args, owner=self.owner, **kwargs)
        except LumosError as exc:
            self.items.append(str(exc))
            return None

    def require(self, condition: bool, message: str) -> None:
        if not condition:
            self.items.append(message)

    def raise_if_any(self) -> None:
        if len(self.items) == 1:
            raise LumosError(self.items[0])
        if self.items:
            raise LumosError(f"{len(self.items)} problems in {self.owner}: " + " ".join(self.items))
