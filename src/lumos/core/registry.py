"""One registry for every "name → thing" table of lumos (objectives, tasks, CAM methods and targets, valuers,
selectors, demo sections, CLI command modules), with one error shape for an unknown name.

Example::

    LOSSES = Registry("objective", param="algo", expects=callable)

    @LOSSES.register("cispo", help="clipped IS-weight policy gradient")
    def cispo_loss(...): ...

    LOSSES.get("cisp")
    # LumosError: The 'algo' parameter must be one of the registered objectives: cispo, dapo, grpo.
    #             Got 'cisp' instead. Did you mean 'cispo'?

Each entry carries metadata (keyword arguments of :meth:`Registry.register`), read back with
:meth:`Registry.entry`. Registering a name (or alias) that is already taken is an error unless
``replace=True``, so a plug-in cannot silently replace a built-in.
"""

from __future__ import annotations

import contextlib
import difflib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, overload

from lumos.core.errors import LumosError, bad_param
from lumos.core.validation import Constraint

__all__ = ["Registry", "Entry", "Registered"]

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registration: its canonical ``name``, the registered ``obj``, its ``meta`` data and ``aliases``."""

    name: str
    obj: T
    meta: dict[str, Any] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()


class Registry(Generic[T]):
    """Names → registered objects, in registration order.

    Args:
        kind: what is registered, singular ("objective", "task", "CAM method"); used in messages.
        param: the parameter name an unknown name is reported under ("algo", "task", "method").
        expects: a predicate every registered object must pass (e.g. ``callable``), or a type / tuple of types.
        expects_text: how :attr:`expects` reads in a message ("a callable", "a Valuer subclass").
        case_insensitive: look names up after ``str.strip().lower()`` (registered names are stored lowered).
    """

    def __init__(self, kind: str, *, param: str = "name", expects: Callable[[Any], bool] | type | tuple[type, ...]
                 | None = None, expects_text: str | None = None, case_insensitive: bool = False) -> None:
        self.kind = kind
        self.param = param
        self.case_insensitive = case_insensitive
        if isinstance(expects, (type, tuple)):
            types = expects
            self._expects: Callable[[Any], bool] | None = lambda obj: isinstance(obj, types)
            names = types if isinstance(types, tuple) else (types,)
            self._expects_text = expects_text or "an instance of " + " or ".join(t.__name__ for t in names)
        else:
            self._expects = expects
            self._expects_text = expects_text or ("a callable" if expects is callable else "an accepted object")
        self._entries: dict[str, Entry[T]] = {}
        self._aliases: dict[str, str] = {}

    # registering ------------------------------------------------------------------------------------------------
    @overload
    def register(self, name: str, obj: None = None, *, aliases: tuple[str, ...] = (), replace: bool = False,
                 **meta: Any) -> Callable[[T], T]: ...

    @overload
    def register(self, name: str, obj: T, *, aliases: tuple[str, ...] = (), replace: bool = False,
                 **meta: Any) -> T: ...

    def register(self, name: str, obj: T | None = None, *, aliases: tuple[str, ...] = (), replace: bool = False,
                 **meta: Any) -> Any:
        """Register ``obj`` under ``name`` (with ``aliases`` and ``meta`` data); without ``obj``, a decorator.

        A name or alias already taken is an error unless ``replace=True`` (then the old entry goes).
        Returns ``obj`` (so the decorator leaves the function unchanged).
        """
        key = self._check_name(name, "name")
        alias_keys = tuple(self._check_name(a, "aliases") for a in aliases)
        if not replace:
            for k in (key, *alias_keys):
                if k in self._entries or k in self._aliases:
                    raise LumosError(f"A {self.kind} named {k!r} is already registered. Choose another name, or "
                                     f"pass replace=True to replace it on purpose.")

        def add(o: T) -> T:
            if self._expects is not None and not self._expects(o):
                raise bad_param(self.kind, self._expects_text, type(o).__name__, owner=f"{type(self).__name__}"
                                f".register({name!r})", type_error=True)
            if replace:
                self.unregister(key, missing_ok=True)
                for a in alias_keys:
                    self._aliases.pop(a, None)
            self._entries[key] = Entry(key, o, dict(meta), alias_keys)
            for a in alias_keys:
                self._aliases[a] = key
            return o

        return add if obj is None else add(obj)

    def unregister(self, name: str, *, missing_ok: bool = False) -> None:
        """Remove ``name`` and its aliases (tests and plug-ins that clean up after themselves)."""
        key = self._aliases.get(self._norm(name), self._norm(name))
        entry = self._entries.pop(key, None)
        if entry is None:
            if not missing_ok:
                raise self.unknown(name)
            return
        for a in entry.aliases:
            self._aliases.pop(a, None)

    @contextlib.contextmanager
    def scope(self) -> Iterator[Registry[T]]:
        """Registrations made inside the ``with`` block are undone at its end (tests, temporary plug-ins)."""
        saved = dict(self._entries), dict(self._aliases)
        try:
            yield self
        finally:
            self._entries, self._aliases = saved

    # looking up -------------------------------------------------------------------------------------------------
    def entry(self, name: str) -> Entry[T]:
        """The :class:`Entry` of ``name`` or one of its aliases; an unknown name is the one error shape."""
        key = self._norm(name) if isinstance(name, str) else name
        key = self._aliases.get(key, key) if isinstance(key, str) else key
        if not isinstance(key, str) or key not in self._entries:
            raise self.unknown(name)
        return self._entries[key]

    def get(self, name: str) -> T:
        """The object registered as ``name`` (or an alias of it)."""
        return self.entry(name).obj

    def resolve(self, name: str) -> str:
        """The canonical name of ``name`` (itself, or what it is an alias of)."""
        return self.entry(name).name

    def names(self) -> list[str]:
        """Registered names (aliases not included), in registration order."""
        return list(self._entries)

    def items(self) -> list[tuple[str, T]]:
        """(name, object) pairs in registration order."""
        return [(k, e.obj) for k, e in self._entries.items()]

    def __getitem__(self, name: str) -> T:
        return self.get(name)

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        key = self._norm(name)
        return key in self._entries or key in self._aliases

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self._entries)})"

    # helpers ----------------------------------------------------------------------------------------------------
    def _norm(self, name: str) -> str:
        return name.strip().lower() if self.case_insensitive else name

    def _check_name(self, name: object, what: str) -> str:
        if not isinstance(name, str) or not name.strip():
            raise bad_param(what, f"a non-empty string naming the {self.kind}", name,
                            owner=f"{type(self).__name__}.register", type_error=not isinstance(name, str))
        return self._norm(name)

    def unknown(self, name: object) -> LumosError:
        """The one "unknown name" error of every registry: known names and close matches."""
        known = self.names()
        listing = ", ".join(known) if known else "(none registered)"
        fix = None
        if isinstance(name, str):
            close = difflib.get_close_matches(self._norm(name), [*known, *self._aliases], n=3, cutoff=0.6)
            close = list(dict.fromkeys(self._aliases.get(c, c) for c in close))
            if close:
                fix = "Did you mean " + " or ".join(repr(c) for c in close) + "?"
        return bad_param(self.param, f"one of the registered {self.kind}s: {listing}", repr(name), fix=fix,
                         type_error=not isinstance(name, str))


@dataclass(frozen=True, eq=False)
class Registered(Constraint):
    """A config-field constraint: a name (or alias) registered in ``registry`` (read when checked, so a
    registration made after the config class was defined counts)."""

    registry: Registry[Any]

    def is_satisfied_by(self, value: object) -> bool:
        return isinstance(value, str) and value in self.registry

    def __str__(self) -> str:
        return f"one of the registered {self.registry.kind}s: {', '.join(self.registry.names())}"
