"""Input checks shared by every public API, all raising one message shape (see ``lumos.core.errors``)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from lumos.core.errors import bad_param, check

__all__ = ["check_tensor", "check_same_device", "check_finite", "check_in_range", "check_choice"]


def check_tensor(
    x: object,
    name: str,
    *,
    ndim: int | Sequence[int] | None = None,
    dtypes: Sequence[torch.dtype] | None = None,
    owner: str | None = None,
    shape: Sequence[int | None] | None = None,
) -> torch.Tensor:
    """Check that ``x`` is a tensor with the given rank, dtype and shape (``None`` entries match anything)."""
    if not isinstance(x, torch.Tensor):
        raise bad_param(name, "a torch.Tensor", type(x).__name__, owner=owner, type_error=True)
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if x.dim() not in allowed:
            raise bad_param(name, f"a {' or '.join(map(str, allowed))}-D tensor", f"shape {tuple(x.shape)}", owner=owner)
    if dtypes is not None and x.dtype not in dtypes:
        names = ", ".join(str(d).replace("torch.", "") for d in dtypes)
        raise bad_param(name, f"one of dtypes ({names})", str(x.dtype).replace("torch.", ""), owner=owner, type_error=True)
    if shape is not None:
        ok = len(shape) == x.dim() and all(s is None or s == t for s, t in zip(shape, x.shape))
        if not ok:
            want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
            raise bad_param(name, f"of shape {want}", f"shape {tuple(x.shape)}", owner=owner)
    return x


def check_same_device(owner: str | None = None, **tensors: torch.Tensor | None) -> None:
    """All given tensors must be on one device."""
    devices = {k: v.device for k, v in tensors.items() if v is not None}
    if len(set(devices.values())) > 1:
        listing = ", ".join(f"{k} on {d}" for k, d in devices.items())
        where = f" for {owner}" if owner else ""
        check(False, f"Tensors{where} must be on one device; got {listing}. Move them with .to(device).")


def check_finite(x: torch.Tensor, name: str, owner: str | None = None) -> None:
    """No NaN or inf in ``x``."""
    if not bool(torch.isfinite(x).all()):
        n_bad = int((~torch.isfinite(x)).sum())
        raise bad_param(name, "finite (no NaN or inf)", f"{n_bad} non-finite values", owner=owner, fix="Clean the input.")


def check_in_range(value: float, name: str, low: float | None = None, high: float | None = None, owner: str | None = None,
                   low_inclusive: bool = True, high_inclusive: bool = True) -> float:
    """``value`` must lie in the interval; message in the standard form."""
    ok = True
    if low is not None:
        ok &= value >= low if low_inclusive else value > low
    if high is not None:
        ok &= value <= high if high_inclusive else value < high
    if not ok:
        lo = "-inf" if low is None else str(low)
        hi = "inf" if high is None else str(high)
        lb = "[" if low_inclusive and low is not None else "("
        rb = "]" if high_inclusive and high is not None else ")"
        raise bad_param(name, f"a number in the range {lb}{lo}, {hi}{rb}", value, owner=owner)
    return value


def check_choice(value: str, name: str, choices: Sequence[str], owner: str | None = None) -> str:
    """``value`` must be one of ``choices``."""
    if value not in choices:
        raise bad_param(name, "one of " + ", ".join(repr(c) for c in choices), value, owner=owner)
    return value
