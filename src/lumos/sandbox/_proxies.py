"""The test runner's side of the candidate channel: proxies for the candidate's objects (standard library only).

The candidate's names, its modules (``import m`` of anything the standard library does not provide) and
every object that is not plain data are proxies in the runner; each use is one request over the channel
(:class:`Remote`), and the reply decodes into fresh plain values, into another proxy, or into an exception
class. Every comparison and every truth test therefore runs on values the candidate cannot influence after
they are sent.
"""

import builtins
import sys
from importlib._abc import Loader  # = importlib.abc.Loader, without importlib.abc's 20 ms of imports

if __package__:  # lumos.sandbox._proxies on the host
    from . import _shared, _wire
else:  # _proxies next to _launcher.py in the sandbox, a top-level module
    import _shared
    import _wire

__all__ = ["Remote", "Handle", "CandidateFinder", "module_proxy", "candidate_exception", "runner_class", "bindable",
           "CandidateRaised", "ORDINARY"]


class CandidateRaised(BaseException):
    """The candidate raised control flow or a test framework's signal (``StopIteration``, ``SystemExit``,
    unittest's ``SkipTest``, anything ``BaseException``-only, ...): the test fails, whatever it catches."""


class _Exhausted(Exception):
    """A candidate iterator ended (its ``StopIteration``, on the ``next`` operation only)."""


class Remote:
    """The runner's end of the call channel: one request, one reply, matched by id.

    Replies decode into fresh plain values, into :class:`Handle`/proxy modules for the candidate's other
    objects (one per candidate object, so ``is`` holds), and into mirrored exception classes."""

    def __init__(self, req_fd, rep_fd):
        self.req_fd, self.reader = req_fd, _wire.LineReader(rep_fd)
        self.next_id, self.gone, self.memory = 0, None, False
        self.handles = {}
        hello = self._read()
        self.load_error = hello.get("load_error") if type(hello.get("load_error")) is str else None
        self.memory = hello.get("memory") is True
        names = hello.get("names")
        names = names if type(names) is dict else {}
        self.names = {}  # what the tests' namespace gets: filtered by bindable(), like every other path
        for k, v in names.items():
            try:
                if bindable(k):
                    self.names[k] = self.value(v)
            except ValueError:
                pass
        try:
            self.module = self.value(hello["module"]) if "module" in hello else None
        except ValueError:
            self.module = None

    # ---- values
    def value(self, obj):
        return _wire.decode(obj, 0, self._handle)

    def _handle(self, tag, body):
        if (tag != "$h" or type(body) is not list or len(body) != 4 or type(body[0]) is not int
                or body[1] not in _wire.KINDS or type(body[2]) is not str or type(body[3]) is not list):
            raise ValueError("malformed object handle")
        hid, kind, name, chain = body
        cls = runner_class(chain) if kind == "exception" else None
        if cls is not None:
            return cls
        h = self.handles.get(hid)  # a control-flow exception class is only a handle: it can never be raised here
        if h is None:
            if len(self.handles) >= _shared.MAX_OBJECTS:
                raise ValueError("too many objects")
            h = self.handles[hid] = module_proxy(self, hid, name) if kind == "module" else Handle(self, hid, kind, name)
        return h

    def _ref(self, x):
        hid = _handle_id(x)
        if hid is None or self.handles.get(hid) is not x:
            raise _wire.EncodeError(f"a {type(x).__name__} is not plain data")
        return {"$r": hid}

    # ---- the channel
    def _read(self):
        try:
            raw = self.reader.readline()
            msg = _wire.loads(raw) if raw is not None else None
        except (OSError, ValueError) as exc:
            self.gone = f"protocol error ({exc})"
            raise _wire.CandidateGone(self.gone) from None
        if type(msg) is not dict:
            self.gone = "did not finish" if msg is None else "protocol error"
            raise _wire.CandidateGone(self.gone)
        return msg

    def request(self, op, hid=None, name=None, args=(), kwargs=None):
        if self.gone:
            raise _wire.CandidateGone(self.gone)
        self.next_id += 1
        rid = self.next_id
        try:
            line = _wire.dumps({"id": rid, "op": op, "h": hid, "name": name,
                                "args": [_wire.encode(a, 0, self._ref) for a in args],
                                "kwargs": {k: _wire.encode(v, 0, self._ref)
                                           for k, v in (kwargs or {}).items()}})
        except _wire.EncodeError as exc:
            raise TypeError(f"argument of a call into the candidate: {exc} (only plain data and the candidate's "
                            f"own objects cross to it)") from None
        if not _wire.write_all(self.req_fd, line):
            self.gone = "did not finish"
            raise _wire.CandidateGone(self.gone)
        while True:
            msg = self._read()
            if msg.get("id") == rid:
                break
        if msg.get("memory") is True:
            self.memory = True
            raise MemoryError()
        if msg.get("timeout") is True:
            raise _wire.TestTimeout()
        if "raise" in msg:
            sent = msg.get("chain")
            chain = [c for c in sent if type(c) is str] if type(sent) is list else []
            if op == "next" and ("builtins.StopIteration" in chain or (not chain and msg["raise"] == "StopIteration")):
                raise _Exhausted()  # the end of a candidate iterator, for Handle.__iter__ only
            raise candidate_exception(str(msg.get("raise")), str(msg.get("msg", "")), chain)
        try:
            return self.value(msg.get("ok"))
        except ValueError as exc:
            raise _wire.CandidateGone(f"protocol error ({exc})") from None


BUILTIN_NAMES = frozenset(vars(builtins))
#: Names the runner itself puts into the tests' namespace.
HARNESS_NAMES = frozenset({"report", "solution"})
#: What a candidate exception may be in the tests: these families (or ``Exception`` itself), as the runner's
#: own classes or as mirrored subclasses of them -- ordinary failures. Not in it, and so a plain failure of the
#: test (:class:`CandidateRaised`): control flow (``StopIteration``, ``StopAsyncIteration``, ``GeneratorExit``),
#: test frameworks' signals (unittest's ``SkipTest`` and ``_ShouldStop``, pytest's outcomes, all outside these
#: families), ``KeyboardInterrupt``, ``SystemExit`` and anything ``BaseException``-only. ``AssertionError`` is
#: in: raised by the candidate it can only fail a test or meet an explicit ``assertRaises(AssertionError)``.
ORDINARY = (ArithmeticError, AssertionError, AttributeError, BufferError, EOFError, ImportError, LookupError,
            NameError, OSError, ReferenceError, RuntimeError, SyntaxError, SystemError, TypeError, ValueError, Warning)
_MIRRORS = {}
_SAFE_NAME = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.<>")


def bindable(name):
    """Whether a candidate name may be bound in the tests' namespace (the hello's names, ``from m import *``):
    never a builtin, a dunder or other underscore name, a keyword, or a name of the harness."""
    import keyword

    return (type(name) is str and name.isidentifier() and not name.startswith("_") and not keyword.iskeyword(name)
            and name not in BUILTIN_NAMES and name not in HARNESS_NAMES)


def _known_exception(full):
    """The runner's own class for ``module.qualname`` when it is a built-in or an already imported standard
    library exception (never imports anything, never one of the harness's own classes)."""
    mod_name, _, qual = full.rpartition(".")
    if mod_name.split(".")[0] not in getattr(sys, "stdlib_module_names", ()) and mod_name != "builtins":
        return None
    obj = sys.modules.get(mod_name)
    for part in qual.split("."):
        obj = getattr(obj, part, None) if obj is not None and part.isidentifier() else None
    if isinstance(obj, type) and issubclass(obj, BaseException) and obj.__module__ == mod_name:
        return obj
    return None


def _ordinary(cls):
    return cls is Exception or issubclass(cls, ORDINARY)


def runner_class(chain):
    """The runner's exception class for a candidate exception whose MRO is ``chain`` (``module.qualname``,
    most derived first): a built-in or imported standard-library class of :data:`ORDINARY`, or a mirrored
    subclass of one standing for the candidate's own class (so ``pytest.raises(mod.Error)``, ``assertRaises``
    and ``except`` work). None when the exception is not an ordinary failure: any class of the chain the
    runner knows is outside :data:`ORDINARY`, or the chain reaches ``BaseException`` but not ``Exception``."""
    names = [c for c in chain[:16] if type(c) is str and len(c) <= 200 and set(c) <= _SAFE_NAME]
    if "builtins.BaseException" in names and "builtins.Exception" not in names:
        return None
    base = Exception
    for full in reversed(names):
        if full in ("builtins.BaseException", "builtins.object"):
            continue
        known = _known_exception(full)
        if known is not None:
            if not _ordinary(known):
                return None
            base = known if issubclass(known, base) else base
            continue
        key = (full, base)
        if key not in _MIRRORS and len(_MIRRORS) >= _shared.MAX_OBJECTS:
            return base
        if key not in _MIRRORS:
            mod_name, _, qual = full.rpartition(".")
            cls = type(qual.rsplit(".", 1)[-1] or "Error", (base,), {"__module__": mod_name or "candidate"})
            cls.__qualname__ = qual or cls.__name__
            _MIRRORS[key] = cls
        base = _MIRRORS[key]
    return base


def candidate_exception(name, msg, chain=()):
    """The exception the tests see for one the candidate raised (``name``, ``msg``, its MRO ``chain``): its
    :func:`runner_class`, or :class:`CandidateRaised` when it is not an ordinary failure."""
    chain = list(chain)
    if not chain and name.isidentifier() and isinstance(getattr(builtins, name, None), type):
        chain = [f"builtins.{name}"]
    cls = runner_class(chain) if chain else None
    if cls is None:
        if chain:
            return CandidateRaised(f"the candidate raised {name} (control flow or a test framework's signal, "
                                   f"which fails the test): {msg}"[:400])
        return RuntimeError(f"{name}: {msg}")
    try:
        return cls(msg)
    except Exception:  # noqa: BLE001 - e.g. UnicodeDecodeError, JSONDecodeError take more arguments
        exc = cls.__new__(cls)
        exc.args = (msg,)
        return exc


def _handle_id(x):
    if isinstance(x, Handle):
        return object.__getattribute__(x, "_hid")
    if isinstance(x, type(sys)) and isinstance(x.__dict__.get("__lumos_handle__"), int):
        return x.__dict__["__lumos_handle__"]
    return None


class Handle:
    """One of the candidate's objects, as the tests see it: attribute access, calls, items, ``len``, ``in``,
    iteration and ``str`` go to the candidate; what comes back is plain data or another handle.

    Comparisons and truth never ask the candidate: ``==`` is identity, ``in`` compares what iteration
    yields, and ``bool()`` raises, so a test can only pass on plain values it compared itself (no
    always-equal, always-containing or always-true objects)."""

    __slots__ = ("_remote", "_hid", "_kind", "_name")

    def __init__(self, remote, hid, kind, name):
        for k, v in (("_remote", remote), ("_hid", hid), ("_kind", kind), ("_name", name)):
            object.__setattr__(self, k, v)

    def _ask(self, op, name=None, *args, **kwargs):
        return object.__getattribute__(self, "_remote").request(op, object.__getattribute__(self, "_hid"), name,
                                                                 args, kwargs)

    def __getattr__(self, name):
        return self._ask("getattr", name)

    def __setattr__(self, name, value):
        self._ask("setattr", name, value)

    def __call__(self, *args, **kwargs):
        return object.__getattribute__(self, "_remote").request("call", object.__getattribute__(self, "_hid"),
                                                                 None, args, kwargs)

    def __getitem__(self, key):
        return self._ask("getitem", None, key)

    def __setitem__(self, key, value):
        self._ask("setitem", None, key, value)

    def __delitem__(self, key):
        self._ask("delitem", None, key)

    def __len__(self):
        n = self._ask("len")
        if type(n) is not int:
            raise TypeError("len() of a candidate object did not give an int")
        return n

    def __contains__(self, item):  # compared here, on what its iteration yields (never its __contains__)
        return any(v is item or v == item for v in self)

    def __iter__(self):
        it = self._ask("iter")
        while True:
            try:
                value = it._ask("next")
            except _Exhausted:
                return
            yield value

    def __str__(self):
        out = self._ask("str")
        return out if type(out) is str else repr(self)

    def __repr__(self):
        return f"<candidate {object.__getattribute__(self, '_kind')} {object.__getattribute__(self, '_name')}>"

    def __bool__(self):
        raise TypeError(f"the truth of {self!r} would be the candidate's to decide; compare a plain value")

    def __instancecheck__(self, obj):
        return isinstance(obj, Handle) and obj._ask("isinstance", None, self) is True

    __eq__ = object.__eq__
    __hash__ = object.__hash__


def module_proxy(remote, hid, name):
    """A real module object for the candidate's module ``name``: ``from m import f``, ``import m.sub`` and
    ``m.f(...)`` all work; every attribute is fetched from the candidate when used."""
    mod = type(sys)(name)

    def __getattr__(attr):
        if attr == "__all__":
            names = remote.request("names", hid)
            if type(names) is not list or not all(type(n) is str and n.isidentifier() for n in names):
                raise ImportError(f"{name}.__all__ is not a list of names")
            return [n for n in names if bindable(n)]  # a star import binds no builtin, dunder or harness name
        if attr.startswith("__") and attr.endswith("__"):
            raise AttributeError(attr)
        return remote.request("getattr", hid, attr)

    mod.__getattr__ = __getattr__
    mod.__lumos_handle__ = hid
    mod.__path__ = []  # a package as far as the import system is concerned: submodules come from the finder
    return mod


class CandidateFinder(Loader):
    """Last on ``sys.meta_path``: whatever the standard library does not provide is the repository's, and
    is imported in the candidate's process; the tests get a proxy module (the finder is its loader too)."""

    def __init__(self, remote):
        self.remote = remote

    def find_spec(self, fullname, path=None, target=None):
        import importlib.machinery

        if fullname.split(".")[0] in getattr(sys, "stdlib_module_names", ()):
            return None  # e.g. an optional accelerator the standard library probes for: never the candidate's
        return importlib.machinery.ModuleSpec(fullname, self, is_package=True)

    def create_module(self, spec):
        try:
            mod = self.remote.request("import", None, spec.name)
        except _wire.CandidateGone as exc:
            raise ImportError(f"{spec.name}: the candidate {exc}") from None
        if not isinstance(mod, type(sys)):
            raise ImportError(f"{spec.name} is not a module")
        return mod

    def exec_module(self, module):
        pass

