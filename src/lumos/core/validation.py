"""One validation vocabulary for every public API, CLI and config, all raising one message shape.

Every check raises :func:`lumos.core.errors.bad_param`'s form::

    The 'name' parameter of Owner must be <expectation>. Got <value> instead. <fix>

and returns the value, so constructors read ``self.k = check_positive_int(k, "k", owner="KNNShapley")``.
Bools are never ints here (``True`` is rejected where an int is expected), and NaN/inf are never numbers in a
range. Configs that report every problem at once use :class:`Problems`.

Config dataclasses declare their constraints once, in field metadata (scikit-learn's ``_parameter_constraints``,
but beside each field and its help text)::

    @dataclass
    class MyConfig:
        lr: float = field(default=1e-3, metadata=constraint(Interval(float, 0, None, closed="neither"),
                                                             help="learning rate"))
        mode: str = field(default="a", metadata=constraint(Options(str, ("a", "b")), help="..."))

        def __post_init__(self) -> None:
            p = Problems("MyConfig")
            p.fields(self)                       # every declared constraint
            p.require(..., "cross-field rule")  # what one field cannot say
            p.raise_if_any()                     # ONE message listing every problem

``accepted`` constraints are alternatives: ``constraint(Interval(int, 1, None, closed="left"), None)`` is a
positive int or None. Each broken one reads "The 'lr' parameter of MyConfig must be a float in the range
(0, inf). Got -1 instead."

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

import dataclasses
import math
import numbers
from collections.abc import Callable, Collection, Sequence, Sized
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeGuard

if TYPE_CHECKING:  # torch is imported where a tensor is checked, so importing this module stays light (the CLI
    import torch  # reads its arguments and environment before torch loads)

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
    "Constraint",
    "Interval",
    "Options",
    "Boolean",
    "InstanceOf",
    "Satisfies",
    "constraint",
    "POSITIVE_INT",
    "NONNEG_INT",
    "POSITIVE",
    "NONNEG",
    "PROBABILITY",
    "describe_constraints",
    "field_problems",
]


def is_int(v: object) -> TypeGuard[numbers.Integral]:
    """An int that is not a bool (numpy integers count)."""
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def is_real(v: object) -> TypeGuard[numbers.Real]:
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
    n = int(value) if is_int(value) else None
    if n is None or (low is not None and n < low) or (high is not None and n > high):
        if low is not None and high is None:
            want = "a positive int" if low == 1 else "a non-negative int" if low == 0 else f"an int ≥ {low}"
        else:
            want = "an int" if low is None and high is None else f"an int in the range {_interval(low, high, True, True)}"
        raise bad_param(name, want, value, owner=owner, fix=fix, type_error=not is_int(value))
    return n


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
    v = float(value) if is_real(value) else math.nan
    ok = math.isfinite(v)
    if ok:
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
    return v


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
        raise bad_param(name, "one of " + ", ".join(repr(c) for c in choices), repr(value), owner=owner)
    return value


def check_bool(value: object, name: str, *, owner: str | None = None) -> bool:
    """``value`` must be ``True`` or ``False`` (not 0/1 or a string)."""
    if not isinstance(value, bool):
        raise bad_param(name, "True or False", value, owner=owner, type_error=True)
    return value


def check_dataset(dataset: object, name: str, *, owner: str | None = None) -> object:
    """``dataset`` must be a non-empty map-style dataset (``len(dataset)`` and ``dataset[i]``, as
    ``torch.utils.data.Dataset``); an iterable-only dataset has no fixed order or size and is refused."""
    if not isinstance(dataset, Sized) or not hasattr(dataset, "__getitem__"):
        raise bad_param(name, "a map-style dataset of (x, y) (with len() and [i])", type(dataset).__name__,
                        owner=owner, type_error=True)
    if len(dataset) == 0:
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
    import torch

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
    import torch

    t = x if isinstance(x, torch.Tensor) else torch.as_tensor(x)
    if t.is_floating_point() or t.is_complex():
        bad = ~torch.isfinite(t)
        if bool(bad.any()):
            raise bad_param(name, "finite (no NaN or inf)", f"{int(bad.sum())} non-finite value(s)", owner=owner,
                            fix=fix)
    return x


# --------------------------------------------------------------------------------------------------------------
# declarative constraints


class Constraint:
    """One accepted kind of value; ``str(c)`` is how it reads after "must be"."""

    def is_satisfied_by(self, value: object) -> bool:  # pragma: no cover - abstract
        """Whether ``value`` meets the constraint."""
        raise NotImplementedError


@dataclass(frozen=True)
class Interval(Constraint):
    """A number of ``type`` (``int``: an int, not a bool; ``float``: any finite real, not a bool) between ``left``
    and ``right`` (``None``: unbounded); ``closed`` says which ends belong to it ("both", "left", "right",
    "neither"), as scikit-learn's ``Interval``."""

    type: type
    left: float | None
    right: float | None
    closed: str = "both"

    def __post_init__(self) -> None:
        check(self.type in (int, float), f"Interval type must be int or float, not {self.type!r}")
        check(self.closed in ("both", "left", "right", "neither"), f"Interval closed={self.closed!r}")

    def is_satisfied_by(self, value: object) -> bool:
        if self.type is int and not is_int(value):
            return False
        v = float(value) if is_real(value) else math.nan
        if not math.isfinite(v):
            return False
        if self.left is not None and (v < self.left or (v == self.left and self.closed in ("right", "neither"))):
            return False
        return not (self.right is not None
                    and (v > self.right or (v == self.right and self.closed in ("left", "neither"))))

    def __str__(self) -> str:
        what = "an int" if self.type is int else "a float"
        if self.left is None and self.right is None:
            return what if self.type is int else "a finite float"
        return f"{what} in the range " + _interval(self.left, self.right, self.closed in ("both", "left"),
                                                   self.closed in ("both", "right"))


@dataclass(frozen=True)
class Options(Constraint):
    """One of a fixed set of values of ``type`` (``Options(str, ("a", "b"))``)."""

    type: type
    options: tuple[Any, ...]

    def is_satisfied_by(self, value: object) -> bool:
        return isinstance(value, self.type) and value in self.options

    def __str__(self) -> str:
        return f"a {self.type.__name__} among {{{', '.join(repr(o) for o in self.options)}}}"


@dataclass(frozen=True)
class Boolean(Constraint):
    """``True`` or ``False`` (not 0/1, not a string)."""

    def is_satisfied_by(self, value: object) -> bool:
        return isinstance(value, bool)

    def __str__(self) -> str:
        return "an instance of 'bool'"


@dataclass(frozen=True)
class InstanceOf(Constraint):
    """An instance of ``types`` (one type or a tuple); bools are not ints here."""

    types: type | tuple[type, ...]

    def is_satisfied_by(self, value: object) -> bool:
        types = self.types if isinstance(self.types, tuple) else (self.types,)
        if isinstance(value, bool) and bool not in types:
            return False
        return isinstance(value, types)

    def __str__(self) -> str:
        types = self.types if isinstance(self.types, tuple) else (self.types,)
        return " or ".join(f"an instance of {t.__name__!r}" for t in types)


@dataclass(frozen=True)
class Satisfies(Constraint):
    """Anything ``predicate`` accepts; ``text`` says what that is ("a list of 0 / 1 per layer")."""

    predicate: Callable[[Any], bool]
    text: str

    def is_satisfied_by(self, value: object) -> bool:
        try:
            return bool(self.predicate(value))
        except (TypeError, ValueError):
            return False

    def __str__(self) -> str:
        return self.text


#: shorthands for the most common intervals
POSITIVE_INT = Interval(int, 1, None, closed="left")
NONNEG_INT = Interval(int, 0, None, closed="left")
POSITIVE = Interval(float, 0, None, closed="neither")
NONNEG = Interval(float, 0, None, closed="left")
PROBABILITY = Interval(float, 0, 1, closed="both")


def constraint(*accepted: Constraint | None, help: str | None = None, **meta: Any) -> dict[str, Any]:
    """Field metadata declaring the accepted values of a dataclass field (alternatives; ``None`` admits None),
    its ``help`` text and any further ``meta`` data (e.g. ``cli=False``)."""
    for c in accepted:
        check(c is None or isinstance(c, Constraint), f"constraint() takes Constraint objects or None, not {c!r}")
    out: dict[str, Any] = {"constraints": tuple(accepted), **meta}
    if help is not None:
        out["help"] = help
    return out


def describe_constraints(accepted: Sequence[Constraint | None]) -> str:
    """The alternatives as one phrase: "an int in the range [1, inf) or None"."""
    parts = [("None" if c is None else str(c)) for c in accepted]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " or " + parts[-1]


def field_problems(obj: Any, owner: str | None = None) -> dict[str, str]:
    """Field name → message, for every field of the dataclass ``obj`` whose value breaks its declared
    constraints (metadata made by :func:`constraint`)."""
    out: dict[str, str] = {}
    owner = owner or type(obj).__name__
    for f in dataclasses.fields(obj):
        accepted = f.metadata.get("constraints")
        if not accepted:
            continue
        value = getattr(obj, f.name)
        if any(value is None if c is None else c.is_satisfied_by(value) for c in accepted):
            continue
        out[f.name] = str(bad_param(f.name, describe_constraints(accepted), repr(value), owner=owner))
    return out


class Problems:
    """Collect every problem of a config and raise them together (one line).

    Example::

        p = Problems("RLConfig")
        p.fields(cfg)                                   # the constraints declared in field metadata
        p.check(check_positive_int, cfg.steps, "steps") # or one check at a time
        p.require(cfg.a <= cfg.b, "'a' must be ≤ 'b'")
        p.raise_if_any()
    """

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self.items: list[str] = []
        #: names of the fields found bad so far (cross-field rules skip them)
        self.bad: set[str] = set()

    def fields(self, obj: Any, *, consequences: Collection[str] = ()) -> set[str]:
        """Check every declared field constraint of the dataclass ``obj``; returns the bad field names.

        ``consequences``: fields bad only because others are (a default derived from a field that is itself
        bad): marked bad, so rules relating them skip, but not reported twice."""
        found = field_problems(obj, self.owner)
        self.items.extend(msg for name, msg in found.items() if name not in consequences)
        self.bad |= set(found)
        return set(found)

    def check(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call ``fn(*args, owner=..., **kwargs)``; a :class:`LumosError` becomes one collected problem."""
        try:
            return fn(*args, owner=self.owner, **kwargs)
        except LumosError as exc:
            self.items.append(str(exc))
            return None

    def require(self, condition: bool, message: str) -> None:
        """Record ``message`` unless ``condition`` holds."""
        if not condition:
            self.items.append(message)

    def param(self, name: str, expected: str, got: Any, *, fix: str | None = None) -> None:
        """Record "The 'name' parameter of <owner> must be <expected>. Got <got> instead. <fix>"."""
        self.items.append(str(bad_param(name, expected, got, owner=self.owner, fix=fix)))
        self.bad.add(name)

    def ok(self, *names: str) -> bool:
        """Whether none of ``names`` was found bad (so a rule relating them can run)."""
        return not self.bad.intersection(names)

    def raise_if_any(self) -> None:
        """Raise one :class:`LumosError` listing every collected problem (nothing when there is none); the
        error's ``problems`` attribute holds them one by one."""
        if not self.items:
            return
        items = [t if t.endswith((".", "?", "!")) else t + "." for t in self.items]
        err = LumosError(items[0] if len(items) == 1 else f"{len(items)} problems in {self.owner}: " + " ".join(items))
        err.problems = list(items)
        raise err
