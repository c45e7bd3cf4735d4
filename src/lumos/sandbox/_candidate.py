"""The candidate server: the candidate's process in tests and repository modes (standard library only).

:func:`serve_candidate` loads ``solution.py`` (tests mode) or imports the repository's modules when asked
(repository mode) and answers one request at a time: ``{"id", "op", "h", "name", "args", "kwargs"}`` →
``{"id", "ok": value}`` / ``{"id", "raise": type, "msg", "chain"}`` / ``{"id", "timeout": true}``. Every value
that is not plain data stays here, in a handle table, and crosses as ``{"$h": [id, kind, name, chain]}``.
Nothing this process sends is trusted by the runner (see ``_proxies``): it never sees the tests, the
expected values or the results fd.
"""

import json
import os
import signal
import sys

if __package__:  # lumos.sandbox._candidate on the host
    from . import _shared, _wire
else:  # _candidate next to _launcher.py in the sandbox, a top-level module
    import _shared
    import _wire

__all__ = ["load_module", "serve_candidate", "class_chain"]


def load_module(name, path):
    """Import ``path`` as module ``name``; returns ``(module, error-or-None, memory)``."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"{name}: {path} is not a Python source file (no loader for it)")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    try:
        spec.loader.exec_module(mod)
    except BaseException as exc:  # noqa: BLE001 - a candidate that raises or exits while loading
        return mod, f"{name}: {_wire.describe(exc)}", isinstance(exc, MemoryError)
    return mod, None, False




def _leave(code=0):
    """Exit now, keeping what the candidate printed (its buffered stdout/stderr)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:  # noqa: BLE001 - a candidate may have replaced or closed them
            pass
    os._exit(code)


def class_chain(cls):
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
            if len(self.by_id) >= _shared.MAX_OBJECTS:
                raise _wire.EncodeError(f"more than {_shared.MAX_OBJECTS} live objects")
            hid = self.ids[key] = len(self.by_id) + 1
            self.by_id[hid] = x
        t = type(x)
        if isinstance(x, type(sys)):
            kind, chain = "module", []
        elif isinstance(x, type) and issubclass(x, BaseException):
            kind, chain = "exception", class_chain(x)
        elif isinstance(x, type):
            kind, chain = "class", []
        else:
            kind, chain = ("callable" if callable(x) else "object"), []
        try:
            if kind == "module":  # the proxy module is named like the candidate's
                name = str(vars(x).get("__name__", "?"))
            else:
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


def _hello(workdir, solution, objects):
    """The first line to the runner: ``solution.py``'s load error / memory flag and its public names (tests mode),
    or no names (repository mode)."""
    hello = {"load_error": None, "memory": False, "names": {}}
    if solution:
        mod, hello["load_error"], hello["memory"] = load_module("solution", os.path.join(workdir, "solution.py"))
        hello["module"] = objects.out(mod)
        for k, v in list(vars(mod).items()):
            if not k.startswith("_"):
                try:
                    hello["names"][k] = _wire.encode(v, 0, objects.out)
                    json.dumps(hello["names"][k], allow_nan=False)
                except (_wire.EncodeError, ValueError, TypeError, RecursionError):
                    hello["names"].pop(k, None)
    try:
        return _wire.dumps(hello)
    except (_wire.EncodeError, ValueError):
        return _wire.dumps(dict(hello, names={}))


def _next_request(reader):
    """The runner's next request (a dict), or None when it hung up or sent something that is not one."""
    try:
        raw = reader.readline()
        req = _wire.loads(raw) if raw is not None else None
    except (OSError, ValueError):
        return None
    return req if type(req) is dict else None


def serve_candidate(workdir, req_fd, rep_fd, per_call, solution):
    """The candidate's process: answer one request at a time until the runner hangs up.

    Tests mode (``solution``) loads ``solution.py`` first and announces its names; repository mode imports
    the repository's modules when the tests ask for them (the repository after the standard library on
    ``sys.path``, so it cannot shadow it)."""
    objects = _Objects()

    def reply(obj):
        try:
            line = _wire.dumps(obj)
        except (_wire.EncodeError, ValueError, TypeError, RecursionError) as exc:
            line = _wire.dumps({"id": obj.get("id"), "raise": "TypeError", "msg": f"result: {exc}"[:400]})
        if not _wire.write_all(rep_fd, line):
            _leave(0)

    signal.signal(signal.SIGALRM, _wire.alarm)
    sys.path.append(workdir)
    if not _wire.write_all(rep_fd, _hello(workdir, solution, objects)):
        _leave(0)
    reader = _wire.LineReader(req_fd)
    while (req := _next_request(reader)) is not None:
        rid = req.get("id")
        oom = _wire.dumps({"id": rid, "raise": "MemoryError", "msg": "", "memory": True})
        try:
            op, name = req.get("op"), req.get("name")
            target = objects.ref("$r", req["h"]) if req.get("h") is not None else None
            args = [_wire.decode(a, 0, objects.ref) for a in req.get("args", [])]
            kwargs = {str(k): _wire.decode(v, 0, objects.ref) for k, v in req.get("kwargs", {}).items()}
            if per_call:
                signal.setitimer(signal.ITIMER_REAL, per_call)
            try:
                out = _apply(op, target, name, args, kwargs)
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            reply({"id": rid, "ok": _wire.encode(out, 0, objects.out)})
        except _wire.TestTimeout:
            reply({"id": rid, "timeout": True})
        except MemoryError:
            _wire.write_all(rep_fd, oom)
        except BaseException as exc:  # noqa: BLE001 - the candidate's exception goes to the test
            try:
                reply({"id": rid, "raise": type(exc).__name__, "msg": str(exc)[:400],
                       "chain": class_chain(type(exc))})
            except MemoryError:
                _wire.write_all(rep_fd, oom)
            except BaseException:  # noqa: BLE001 - e.g. a __str__ that raises
                reply({"id": rid, "raise": "RuntimeError", "msg": "unprintable exception", "chain": []})
    _leave(0)  # the runner hung up (or sent something that is not a request)
