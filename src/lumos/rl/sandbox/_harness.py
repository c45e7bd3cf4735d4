"""In-sandbox harnesses (standard library only; imported by ``_launcher.py``, never by lumos).

Tests and repository modes run two processes that share nothing but two pipes:

- the **candidate server** (:func:`serve_candidate`, in the candidate's process, its uid) loads
  ``solution.py`` (tests mode) or imports the repository's modules when asked (repository mode) and answers
  one request at a time: ``{"id", "op", "h", "name", "args", "kwargs"}`` → ``{"id", "ok": value}`` /
  ``{"id", "raise": type, "msg", "chain"}`` / ``{"id", "timeout": true}``;
- the **test runner** (:func:`run_tests`, :func:`run_repo_tests`; another uid) executes the tests. The
  candidate's names, its modules (``import m`` of anything the standard library does not provide) and every
  object that is not plain data are proxies in the runner; each use is one request, and the reply decodes
  into fresh plain values (None, bool, int, float, str, bytes, list, tuple, dict, set, frozenset), into
  another proxy, or into a mirrored exception class. Every comparison and every truth test therefore runs
  on values the candidate cannot influence after they are sent. The runner alone holds the results channel.

The candidate never sees the test source, the expected values or the results fd: they exist only in the
runner's process. Every message is one line of JSON, at most :data:`MAX_LINE` bytes and :data:`MAX_DEPTH`
levels deep; anything else is refused.

In-process repository mode (:func:`run_repo_inprocess`, for tests that need real objects: ``isinstance``
on classes, callbacks, candidate ``__eq__``) and script mode (:func:`run_script`) run candidate code in the
harness's own interpreter; their results fd is therefore writable by the candidate (the verdict's
``integrity`` says so).
"""

import builtins
import json
import math
import os
import signal
import sys
import traceback

MAX_LINE = 1 << 20
MAX_DEPTH = 32
_EXACT = (type(None), bool, int, float, str)


class EncodeError(ValueError):
    """A value that is not plain data (or too deep/large) cannot cross the channel."""


class CandidateGone(Exception):
    """The candidate process exited, hung past its time, or broke the protocol."""


class _TestTimeout(BaseException):
    """Raised by the per-test alarm; a BaseException so ``except Exception`` in a test cannot swallow it."""


# ------------------------------------------------------------------------------------------ plain values
def encode(x, depth=0, other=None):
    """A JSON-able tagged form of plain data; exact built-in types only (no subclasses, no custom ``__eq__``).

    Anything else goes to ``other(x)`` (the candidate's handle table, the runner's handle references) or
    raises :class:`EncodeError`."""
    if depth > MAX_DEPTH:
        raise EncodeError(f"nested deeper than {MAX_DEPTH} levels")
    t = type(x)
    if t is float and not math.isfinite(x):
        return {"$f": repr(x)}
    if t in _EXACT:
        return x
    if t is list:
        return [encode(v, depth + 1, other) for v in x]
    if t is tuple:
        return {"$t": [encode(v, depth + 1, other) for v in x]}
    if t is dict:
        return {"$d": [[encode(k, depth + 1, other), encode(v, depth + 1, other)] for k, v in x.items()]}
    if t is set or t is frozenset:
        return {"$s" if t is set else "$fs": [encode(v, depth + 1, other) for v in x]}
    if t is bytes:
        return {"$b": x.hex()}
    if other is not None:
        return other(x)
    raise EncodeError(f"a {t.__name__} is not plain data")


def decode(obj, depth=0, other=None):
    """Inverse of :func:`encode` on parsed JSON; raises ``ValueError`` on anything malformed.

    ``other(tag, body)`` decodes the handle tags (``$h`` from the candidate, ``$r`` from the runner)."""
    if depth > MAX_DEPTH:
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
    t = type(obj)
    if t in _EXACT:
        return obj
    if t is list:
        return [decode(v, depth + 1, other) for v in obj]
    if t is dict and len(obj) == 1:
        (tag, body), = obj.items()
        if tag == "$f" and body in ("nan", "inf", "-inf"):
            return float(body)
        if tag == "$b" and type(body) is str:
            return bytes.fromhex(body)
        if tag in ("$h", "$r") and other is not None:
            return other(tag, body)
        if type(body) is list and tag in ("$t", "$s", "$fs", "$d"):
            items = [decode(v, depth + 1, other) for v in body]
            try:
                if tag == "$t":
                    return tuple(items)
                if tag == "$s":
                    return set(items)
                if tag == "$fs":
                    return frozenset(items)
                if all(type(kv) is list and len(kv) == 2 for kv in items):
                    return {k: v for k, v in items}
            except TypeError:  # an unhashable key or member
                raise ValueError("malformed value") from None
    raise ValueError("malformed value")


def dumps(obj):
    line = (json.dumps(obj, allow_nan=False) + "\n").encode()
    if len(line) > MAX_LINE:
        raise EncodeError(f"larger than {MAX_LINE} bytes")
    return line


def loads(line):
    """One bounded JSON line → object; ``ValueError`` for oversize, malformed or too deeply nested input."""
    if len(line) > MAX_LINE:
        raise ValueError("line too long")
    try:
        return json.loads(line)
    except RecursionError:
        raise ValueError("nested too deeply") from None


class LineReader:
    """Reads ``\\n``-terminated lines from a blocking fd, at most :data:`MAX_LINE` bytes each."""

    def __init__(self, fd):
        self.fd, self.buf = fd, bytearray()

    def readline(self):
        """The next line (without the newline), or None at end of file. ``ValueError`` when too long."""
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line = bytes(self.buf[:i])
                del self.buf[:i + 1]
                return line
            if len(self.buf) > MAX_LINE:
                raise ValueError("line too long")
            chunk = os.read(self.fd, 65536)
            if not chunk:
                return None
            self.buf += chunk


def write_all(fd, data):
    try:
        while data:
            data = data[os.write(fd, data):]
        return True
    except OSError:
        return False


def describe(exc):
    """One line for a failed test: the assert's source line when the assertion has no message."""
    if isinstance(exc, MemoryError):
        return "MemoryError"
    if isinstance(exc, AssertionError) and not exc.args:
        frames = traceback.extract_tb(exc.__traceback__)
        if frames and frames[-1].line:
            return (f"AssertionError: {frames[-1].line.strip()}")[:400]
    text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    return text[-400:]


class Channel:
    """Unbuffered JSON lines on a results fd (``os.write``: nothing buffered is lost on ``os._exit``)."""

    def __init__(self, fd):
        self.fd = fd

    def send(self, **obj):
        try:
            write_all(self.fd, (json.dumps(obj, default=repr) + "\n").encode())
        except Exception:  # noqa: BLE001 - e.g. out of memory while encoding
            pass


def load_module(name, path):
    """Import ``path`` as module ``name``; returns ``(module, error-or-None, memory)``."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    try:
        spec.loader.exec_module(mod)
    except BaseException as exc:  # noqa: BLE001 - a candidate that raises or exits while loading
        return mod, f"{name}: {describe(exc)}", isinstance(exc, MemoryError)
    return mod, None, False


# ------------------------------------------------------------------------------------- candidate server
_KINDS = ("module", "class", "exception", "callable", "object")
MAX_OBJECTS = 100_000


def _alarm(signum, frame):
    raise _TestTimeout()


def _leave(code=0):
    """Exit now, keeping what the candidate printed (its buffered stdout/stderr)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:  # noqa: BLE001 - a candidate may have replaced or closed them
            pass
    os._exit(code)


def _class_chain(cls):
    """``module.qualname`` of ``cls`` and of its bases along the MRO (how the runner mirrors exception types)."""
    out = []
    for c in type.__getattribute__(cls, "__mro__"):
        if c is object:
            break
        out.append(f"{type.__getattribute__(c, '__module__')}.{type.__getattribute__(c, '__qualname__')}"[:200])
    return out


class _Objects:
    """The candidate's handle table: every value that is not plain data crosses as ``{"$h": [id, kind, name,
    chain]}`` and stays here; the runner refers back to it as ``{"$r": id}``. Same object, same id."""

    def __init__(self):
        self.by_id, self.ids = {}, {}

    def out(self, x):
        key = id(x)
        hid = self.ids.get(key)
        if hid is None:
            if len(self.by_id) >= MAX_OBJECTS:
                raise EncodeError(f"more than {MAX_OBJECTS} live objects")
            hid = self.ids[key] = len(self.by_id) + 1
            self.by_id[hid] = x
        t = type(x)
        if isinstance(x, type(sys)):
            kind, chain = "module", []
        elif isinstance(x, type) and issubclass(x, BaseException):
            kind, chain = "exception", _class_chain(x)
        elif isinstance(x, type):
            kind, chain = "class", []
        else:
            kind, chain = ("callable" if callable(x) else "object"), []
        try:
            name = type.__getattribute__(x, "__qualname__") if isinstance(x, type) else t.__qualname__
        except Exception:  # noqa: BLE001
            name = "?"
        return {"$h": [hid, kind, str(name)[:200], chain]}

    def ref(self, tag, body):
        if tag != "$r" or type(body) is not int or body not in self.by_id:
            raise ValueError("unknown object reference")
        return self.by_id[body]


def _import(target, name, args, kwargs):
    import importlib

    return importlib.import_module(name)


def _setattr(target, name, args, kwargs):
    setattr(target, name, args[0])


def _setitem(target, name, args, kwargs):
    target[args[0]] = args[1]


def _delitem(target, name, args, kwargs):
    del target[args[0]]


def _names(target, name, args, kwargs):
    """A module's public names, for ``from m import *``."""
    names = getattr(target, "__all__", None)
    if names is not None:
        return [str(k) for k in names]
    return [str(k) for k in vars(target) if not str(k).startswith("_")]


#: What one request does, as plain Python on the candidate's side: ``op(target, name, args, kwargs)``.
_OPS = {
    "import": _import,
    "getattr": lambda target, name, args, kwargs: getattr(target, name),
    "setattr": _setattr,
    "call": lambda target, name, args, kwargs: target(*args, **kwargs),
    "getitem": lambda target, name, args, kwargs: target[args[0]],
    "setitem": _setitem,
    "delitem": _delitem,
    "len": lambda target, name, args, kwargs: len(target),
    "iter": lambda target, name, args, kwargs: iter(target),
    "next": lambda target, name, args, kwargs: next(target),
    "str": lambda target, name, args, kwargs: str(target),
    "isinstance": lambda target, name, args, kwargs: isinstance(target, args[0]),
    "names": _names,
}


def _apply(op, target, name, args, kwargs):
    fn = _OPS.get(op)
    if fn is None:
        raise ValueError(f"unknown operation {op!r}")
    return fn(target, name, args, kwargs)


def serve_candidate(workdir, req_fd, rep_fd, per_call, solution):
    """The candidate's process: answer one request at a time until the runner hangs up.

    Tests mode (``solution``) loads ``solution.py`` first and announces its names; repository mode imports
    the repository's modules when the tests ask for them (the repository after the standard library on
    ``sys.path``, so it cannot shadow it)."""
    objects = _Objects()

    def reply(obj):
        try:
            line = dumps(obj)
        except (EncodeError, ValueError, TypeError, RecursionError) as exc:
            line = dumps({"id": obj.get("id"), "raise": "TypeError", "msg": f"result: {exc}"[:400]})
        if not write_all(rep_fd, line):
            _leave(0)

    signal.signal(signal.SIGALRM, _alarm)
    sys.path.append(workdir)
    hello = {"load_error": None, "memory": False, "names": {}}
    if solution:
        mod, hello["load_error"], hello["memory"] = load_module("solution", os.path.join(workdir, "solution.py"))
        hello["module"] = objects.out(mod)
        for k, v in list(vars(mod).items()):
            if not k.startswith("_"):
                try:
                    hello["names"][k] = encode(v, 0, objects.out)
                    json.dumps(hello["names"][k], allow_nan=False)
                except (EncodeError, ValueError, TypeError, RecursionError):
                    hello["names"].pop(k, None)
    try:
        line = dumps(hello)
    except (EncodeError, ValueError):
        line = dumps(dict(hello, names={}))
    if not write_all(rep_fd, line):
        _leave(0)
    reader = LineReader(req_fd)
    while True:
        try:
            raw = reader.readline()
            req = loads(raw) if raw is not None else None
        except (OSError, ValueError):
            req = None
        if type(req) is not dict:
            _leave(0)
        rid = req.get("id")
        oom = dumps({"id": rid, "raise": "MemoryError", "msg": "", "memory": True})
        try:
            op, name = req.get("op"), req.get("name")
            target = objects.ref("$r", req["h"]) if req.get("h") is not None else None
            args = [decode(a, 0, objects.ref) for a in req.get("args", [])]
            kwargs = {str(k): decode(v, 0, objects.ref) for k, v in req.get("kwargs", {}).items()}
            if per_call:
                signal.setitimer(signal.ITIMER_REAL, per_call)
            try:
                out = _apply(op, target, name, args, kwargs)
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            reply({"id": rid, "ok": encode(out, 0, objects.out)})
        except _TestTimeout:
            reply({"id": rid, "timeout": True})
        except MemoryError:
            write_all(rep_fd, oom)
        except BaseException as exc:  # noqa: BLE001 - the candidate's exception goes to the test
            try:
                reply({"id": rid, "raise": type(exc).__name__, "msg": str(exc)[:400],
                       "chain": _class_chain(type(exc))})
            except MemoryError:
                write_all(rep_fd, oom)
            except BaseException:  # noqa: BLE001 - e.g. a __str__ that raises
                reply({"id": rid, "raise": "RuntimeError", "msg": "unprintable exception", "chain": []})


# ------------------------------------------------------------------------------------------ test runner
class _Remote:
    """The runner's end of the call channel: one request, one reply, matched by id.

    Replies decode into fresh plain values, into :class:`_Handle`/proxy modules for the candidate's other
    objects (one per candidate object, so ``is`` holds), and into mirrored exception classes."""

    def __init__(self, req_fd, rep_fd):
        self.req_fd, self.reader = req_fd, LineReader(rep_fd)
        self.next_id, self.gone, self.memory = 0, None, False
        self.handles = {}
        hello = self._read()
        self.load_error = hello.get("load_error") if type(hello.get("load_error")) is str else None
        self.memory = hello.get("memory") is True
        names = hello.get("names") if type(hello.get("names")) is dict else {}
        self.names = {}
        for k, v in names.items():
            try:
                if type(k) is str and k.isidentifier():
                    self.names[k] = self.value(v)
            except ValueError:
                pass
        try:
            self.module = self.value(hello["module"]) if "module" in hello else None
        except ValueError:
            self.module = None

    # ---- values
    def value(self, obj):
        return decode(obj, 0, self._handle)

    def _handle(self, tag, body):
        if (tag != "$h" or type(body) is not list or len(body) != 4 or type(body[0]) is not int
                or body[1] not in _KINDS or type(body[2]) is not str or type(body[3]) is not list):
            raise ValueError("malformed object handle")
        hid, kind, name, chain = body
        if kind == "exception":
            return _mirror([c for c in chain if type(c) is str])
        h = self.handles.get(hid)
        if h is None:
            if len(self.handles) >= MAX_OBJECTS:
                raise ValueError("too many objects")
            h = self.handles[hid] = _module_proxy(self, hid, name) if kind == "module" else _Handle(self, hid, kind, name)
        return h

    def _ref(self, x):
        hid = _handle_id(x)
        if hid is None or self.handles.get(hid) is not x:
            raise EncodeError(f"a {type(x).__name__} is not plain data")
        return {"$r": hid}

    # ---- the channel
    def _read(self):
        try:
            raw = self.reader.readline()
            msg = loads(raw) if raw is not None else None
        except (OSError, ValueError) as exc:
            self.gone = f"protocol error ({exc})"
            raise CandidateGone(self.gone) from None
        if type(msg) is not dict:
            self.gone = "did not finish" if msg is None else "protocol error"
            raise CandidateGone(self.gone)
        return msg

    def request(self, op, hid=None, name=None, args=(), kwargs=None):
        if self.gone:
            raise CandidateGone(self.gone)
        self.next_id += 1
        rid = self.next_id
        try:
            line = dumps({"id": rid, "op": op, "h": hid, "name": name,
                          "args": [encode(a, 0, self._ref) for a in args],
                          "kwargs": {k: encode(v, 0, self._ref) for k, v in (kwargs or {}).items()}})
        except EncodeError as exc:
            raise TypeError(f"argument of a call into the candidate: {exc} (only plain data and the candidate's "
                            f"own objects cross to it)") from None
        if not write_all(self.req_fd, line):
            self.gone = "did not finish"
            raise CandidateGone(self.gone)
        while True:
            msg = self._read()
            if msg.get("id") == rid:
                break
        if msg.get("memory") is True:
            self.memory = True
            raise MemoryError()
        if msg.get("timeout") is True:
            raise _TestTimeout()
        if "raise" in msg:
            chain = msg.get("chain") if type(msg.get("chain")) is list else []
            raise _candidate_exception(str(msg.get("raise")), str(msg.get("msg", "")),
                                       [c for c in chain if type(c) is str])
        try:
            return self.value(msg.get("ok"))
        except ValueError as exc:
            raise CandidateGone(f"protocol error ({exc})") from None


_BUILTIN_NAMES = frozenset(vars(builtins))
_MIRRORS = {}
_SAFE_NAME = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.<>")


def _known_exception(full):
    """The runner's own class for ``module.qualname`` when it is a built-in or an already imported standard
    library exception (never imports anything, never one of the harness's own classes)."""
    mod_name, _, qual = full.rpartition(".")
    if mod_name.split(".")[0] not in getattr(sys, "stdlib_module_names", ()) and mod_name != "builtins":
        return None
    obj = sys.modules.get(mod_name)
    for part in qual.split("."):
        obj = getattr(obj, part, None) if obj is not None and part.isidentifier() else None
    if isinstance(obj, type) and issubclass(obj, Exception) and obj.__module__ == mod_name:
        return obj
    return None


def _mirror(chain):
    """A runner-side exception class standing for the candidate's ``chain[0]`` (bases mirrored alike), so
    ``pytest.raises(mod.Error)``/``assertRaises`` and ``except`` work; built-ins stay themselves."""
    base = Exception
    for full in reversed(chain[:16]):
        if len(full) > 200 or not set(full) <= _SAFE_NAME:
            continue
        known = _known_exception(full)
        if known is not None:
            base = known
            continue
        key = (full, base)
        if key not in _MIRRORS and len(_MIRRORS) >= MAX_OBJECTS:
            return base
        if key not in _MIRRORS:
            mod_name, _, qual = full.rpartition(".")
            cls = type(qual.rsplit(".", 1)[-1] or "Error", (base,), {"__module__": mod_name or "candidate"})
            cls.__qualname__ = qual or cls.__name__
            _MIRRORS[key] = cls
        base = _MIRRORS[key]
    return base


def _candidate_exception(name, msg, chain=()):
    """An exception of the type the candidate raised (built-in, standard library, or mirrored)."""
    cls = _mirror(list(chain)) if chain else getattr(builtins, name, None)
    if not (isinstance(cls, type) and issubclass(cls, BaseException)):
        cls = None
    if cls is None:
        return RuntimeError(f"{name}: {msg}")
    try:
        return cls(msg)
    except Exception:  # noqa: BLE001 - e.g. UnicodeDecodeError, JSONDecodeError take more arguments
        exc = cls.__new__(cls)
        exc.args = (msg,)
        return exc


def _handle_id(x):
    if isinstance(x, _Handle):
        return object.__getattribute__(x, "_hid")
    if isinstance(x, type(sys)) and isinstance(x.__dict__.get("__lumos_handle__"), int):
        return x.__dict__["__lumos_handle__"]
    return None


class _Handle:
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
                yield it._ask("next")
            except StopIteration:
                return

    def __str__(self):
        out = self._ask("str")
        return out if type(out) is str else repr(self)

    def __repr__(self):
        return f"<candidate {object.__getattribute__(self, '_kind')} {object.__getattribute__(self, '_name')}>"

    def __bool__(self):
        raise TypeError(f"the truth of {self!r} would be the candidate's to decide; compare a plain value")

    def __instancecheck__(self, obj):
        return isinstance(obj, _Handle) and obj._ask("isinstance", None, self) is True

    __eq__ = object.__eq__
    __hash__ = object.__hash__


def _module_proxy(remote, hid, name):
    """A real module object for the candidate's module ``name``: ``from m import f``, ``import m.sub`` and
    ``m.f(...)`` all work; every attribute is fetched from the candidate when used."""
    mod = type(sys)(name)

    def __getattr__(attr):
        if attr == "__all__":
            names = remote.request("names", hid)
            if type(names) is not list or not all(type(n) is str and n.isidentifier() for n in names):
                raise ImportError(f"{name}.__all__ is not a list of names")
            return names
        if attr.startswith("__") and attr.endswith("__"):
            raise AttributeError(attr)
        return remote.request("getattr", hid, attr)

    mod.__getattr__ = __getattr__
    mod.__lumos_handle__ = hid
    mod.__path__ = []  # a package as far as the import system is concerned: submodules come from the finder
    return mod


class _CandidateFinder:
    """Last on ``sys.meta_path``: whatever the standard library does not provide is the repository's, and
    is imported in the candidate's process; the tests get a proxy module."""

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
        except CandidateGone as exc:
            raise ImportError(f"{spec.name}: the candidate {exc}") from None
        if not isinstance(mod, type(sys)):
            raise ImportError(f"{spec.name} is not a module")
        return mod

    def exec_module(self, module):
        pass


def _collect(namespace, prefix):
    """``test_*`` functions and ``unittest.TestCase`` test methods, in definition order."""
    unittest = sys.modules.get("unittest")  # no TestCase can exist unless the tests imported unittest
    out = []
    for name, obj in list(namespace.items()):
        if name.startswith("test") and callable(obj) and not isinstance(obj, type):
            out.append((prefix + name, obj))
        elif (unittest is not None and isinstance(obj, type) and issubclass(obj, unittest.TestCase)
              and obj is not unittest.TestCase):
            for meth in unittest.TestLoader().getTestCaseNames(obj):
                out.append((f"{prefix}{name}.{meth}", _case_runner(obj, meth)))
    return out


def _own(namespace, module_name):
    """The functions and classes a test module defined itself (never a candidate handle or proxy)."""
    import types

    return {k: v for k, v in namespace.items()
            if isinstance(v, (types.FunctionType, type)) and v.__module__ == module_name}


def _case_runner(cls, meth):
    def run():
        case = cls(meth)
        result = case.defaultTestResult()
        case.run(result)
        problems = result.errors + result.failures
        if problems:
            raise AssertionError(problems[0][1].strip().splitlines()[-1])
        if result.skipped:
            raise AssertionError("skipped")

    return run


def _run_one(chan, test_id, fn, per_test):
    chan.send(start=test_id)
    oom = {"test": test_id, "passed": False, "error": "MemoryError", "memory": True}
    signal.setitimer(signal.ITIMER_REAL, per_test)
    passed, error = False, None
    try:
        fn()
        passed = True
    except _TestTimeout:
        error = "per-test time limit"
    except MemoryError:
        error = "MemoryError"
    except CandidateGone as exc:
        error = str(exc)
    except BaseException as exc:  # noqa: BLE001 - SystemExit/KeyboardInterrupt fail the test
        try:
            error = describe(exc)
        except MemoryError:
            error = "MemoryError"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    if error and ("File too large" in error or "No space left on device" in error):
        chan.send(file_too_large=True)
    chan.send(**oom) if error == "MemoryError" else chan.send(test=test_id, passed=passed, error=error)


def _connect(req_fd, rep_fd, chan):
    try:
        remote = _Remote(req_fd, rep_fd)
    except CandidateGone as exc:
        chan.send(load_error=f"candidate: {exc}")
        return None
    if remote.load_error:
        chan.send(load_error=remote.load_error[:2000])
    if remote.memory:
        chan.send(memory=True)
    return remote


def _exec_tests(name, filename, source, preset=()):
    """Run a test file's source as module ``name`` (its lines in ``linecache`` for assertion messages)."""
    import linecache

    mod = type(sys)(name)
    mod.__dict__.update(preset)
    mod.__file__ = filename
    sys.modules[name] = mod
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    exec(compile(source, filename, "exec"), mod.__dict__)  # noqa: S102 - the task's own tests
    return mod


def _run_all(chan, remote, tests, per_test):
    chan.send(tests=[t for t, _ in tests])
    for test_id, fn in tests:
        _run_one(chan, test_id, fn, per_test + 0.5 if per_test else 0)
    if remote is not None and remote.memory:
        chan.send(memory=True)
    chan.send(done=True)


def run_tests(files, req_fd, rep_fd, chan, per_test):
    """The trusted runner, tests mode: hidden tests against the remote ``solution``; results on ``chan`` only.

    The candidate's public names are bare names in the tests' namespace (never shadowing a builtin:
    ``def sorted(x): ...`` stays ``solution.sorted``); ``solution`` and ``from solution import f`` work too."""
    signal.signal(signal.SIGALRM, _alarm)
    remote = _connect(req_fd, rep_fd, chan)

    def report(key, value):
        try:
            payload = encode(value)
            if len(json.dumps(payload)) > 4096:
                payload = None
        except (EncodeError, ValueError, TypeError):
            payload = None
        chan.send(report=str(key)[:100], value=payload)

    preset = {"report": report}
    if remote is not None:
        preset.update({k: v for k, v in remote.names.items() if k not in _BUILTIN_NAMES})
        if isinstance(remote.module, type(sys)):
            preset["solution"] = sys.modules["solution"] = remote.module
    (filename, source), = files
    ns = vars(_exec_tests("hidden_tests", filename, source, preset))
    _run_all(chan, remote, _collect(_own(ns, "hidden_tests"), ""), per_test)


def run_repo_tests(files, req_fd, rep_fd, chan, per_test):
    """The trusted runner, repository mode: each test file runs here, and every module it imports that the
    standard library does not provide is the candidate's, imported over there and used through proxies."""
    signal.signal(signal.SIGALRM, _alarm)
    remote = _connect(req_fd, rep_fd, chan)
    if remote is not None:
        sys.meta_path.append(_CandidateFinder(remote))
    tests = []
    for rel, source in files:
        name = "_repo_test_" + "".join(c if c.isalnum() else "_" for c in rel)
        try:
            mod = _exec_tests(name, rel, source)
        except BaseException as exc:  # noqa: BLE001 - e.g. an import of the candidate that fails
            chan.send(load_error=f"{rel}: {describe(exc)}"[:2000], memory=isinstance(exc, MemoryError))
            continue
        tests += _collect(_own(vars(mod), name), rel + "::")
    _run_all(chan, remote, tests, per_test)


# ------------------------------------------------------------------------------- in-process harnesses
def run_repo_inprocess(workdir, test_files, chan, per_test):
    """In-process repository mode: import each test file (the repository appended to ``sys.path``) and run its tests.

    Candidate modules run in this interpreter: the records on ``chan`` can be forged by them."""
    signal.signal(signal.SIGALRM, _alarm)
    sys.path.append(workdir)  # after the standard library: a repository file cannot shadow it
    tests = []
    for rel in test_files:
        name = "_repo_test_" + rel.replace("/", "_").replace(".", "_")
        mod, error, memory = load_module(name, os.path.join(workdir, rel))
        if error:
            chan.send(load_error=error, memory=memory)
        own = {k: v for k, v in vars(mod).items() if getattr(v, "__module__", name) == name}
        tests += _collect(own, rel + "::")
    chan.send(tests=[t for t, _ in tests])
    for test_id, fn in tests:
        _run_one(chan, test_id, fn, per_test)
    chan.send(done=True)
    return 0


def run_script(path, chan):
    """Run ``path`` as ``__main__``; returns the exit status a plain ``python path`` would have."""
    sys.argv = [path]
    ns = {"__name__": "__main__", "__file__": path, "__builtins__": __builtins__}
    try:
        with open(path) as f:
            code = compile(f.read(), path, "exec")
        exec(code, ns)  # noqa: S102 - this is the sandbox
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        print(exc.code, file=sys.stderr)
        return 1
    except MemoryError:
        chan.send(memory=True)
        traceback.print_exc()
        return 1
    except OSError as exc:
        if exc.errno in (27, 28):  # EFBIG, ENOSPC: the file size or disk cap
            chan.send(file_too_large=True)
        traceback.print_exc()
        return 1
    except BaseException:  # noqa: BLE001
        traceback.print_exc()
        return 1
    return 0


#: ``python`` in command mode: ``-I -S`` and the working directory appended to ``sys.path`` (after the
#: standard library), then ``-c``/``-m``/script as the real command line would run them.
COMMAND_SHIM = r"""
import os, runpy, sys
sys.path.append(os.getcwd())
args = sys.argv[1:]
while args and args[0].startswith('-') and args[0] not in ('-c', '-m') and len(args[0]) > 1:
    args = args[1:]
if not args:
    sys.exit('python: no program given')
if args[0] == '-c':
    sys.argv = ['-c'] + args[2:]
    g = {'__name__': '__main__'}
    exec(compile(args[1], '<string>', 'exec'), g)
elif args[0] == '-m':
    sys.argv = [args[1]] + args[2:]
    runpy.run_module(args[1], run_name='__main__', alter_sys=True)
else:
    sys.argv = args
    runpy.run_path(args[0], run_name='__main__')
"""
