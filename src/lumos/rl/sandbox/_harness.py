"""In-sandbox harnesses (standard library only; imported by ``_launcher.py``, never by lumos).

Tests mode runs two processes that share nothing but two pipes:

- the **candidate server** (:func:`serve_candidate`, in the candidate's process) loads ``solution.py`` and
  answers one call per request: ``{"id", "op": "call"|"get", "name", "args", "kwargs"}`` →
  ``{"id", "ok": value}`` / ``{"id", "raise": type, "msg"}`` / ``{"id", "timeout": true}``;
- the **test runner** (:func:`run_tests`, another uid) executes the hidden tests against proxies of the
  candidate's names; each proxy call becomes one request, and the reply is decoded into fresh plain values
  (None, bool, int, float, str, bytes, list, tuple, dict, set, frozenset), so every comparison runs on values
  the candidate cannot influence after they are sent. The runner alone holds the results channel.

The candidate never sees the test source, the expected values or the results fd: they exist only in the
runner's process. Every message is one line of JSON, at most :data:`MAX_LINE` bytes and :data:`MAX_DEPTH`
levels deep; anything else is refused.

Repository mode (:func:`run_repo_tests`) and script mode (:func:`run_script`) must run candidate code in
the harness's own interpreter; their results fd is therefore writable by the candidate (the verdict's
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
def encode(x, depth=0):
    """A JSON-able tagged form of plain data; exact built-in types only (no subclasses, no custom ``__eq__``)."""
    if depth > MAX_DEPTH:
        raise EncodeError(f"nested deeper than {MAX_DEPTH} levels")
    t = type(x)
    if t is float and not math.isfinite(x):
        return {"$f": repr(x)}
    if t in _EXACT:
        return x
    if t is list:
        return [encode(v, depth + 1) for v in x]
    if t is tuple:
        return {"$t": [encode(v, depth + 1) for v in x]}
    if t is dict:
        return {"$d": [[encode(k, depth + 1), encode(v, depth + 1)] for k, v in x.items()]}
    if t is set or t is frozenset:
        return {"$s" if t is set else "$fs": [encode(v, depth + 1) for v in x]}
    if t is bytes:
        return {"$b": x.hex()}
    raise EncodeError(f"a {t.__name__} is not plain data")


def decode(obj, depth=0):
    """Inverse of :func:`encode` on parsed JSON; raises ``ValueError`` on anything malformed."""
    if depth > MAX_DEPTH:
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
    t = type(obj)
    if t in _EXACT:
        return obj
    if t is list:
        return [decode(v, depth + 1) for v in obj]
    if t is dict and len(obj) == 1:
        (tag, body), = obj.items()
        if tag == "$f" and body in ("nan", "inf", "-inf"):
            return float(body)
        if tag == "$b" and type(body) is str:
            return bytes.fromhex(body)
        if type(body) is list:
            items = [decode(v, depth + 1) for v in body]
            if tag == "$t":
                return tuple(items)
            if tag == "$s":
                return set(items)
            if tag == "$fs":
                return frozenset(items)
            if tag == "$d" and all(type(kv) is list and len(kv) == 2 for kv in items):
                return {k: v for k, v in items}
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


def serve_candidate(workdir, req_fd, rep_fd, per_call):
    """The candidate's process: load ``solution.py``, then answer calls until the runner hangs up."""
    def reply(obj):
        try:
            line = dumps(obj)
        except (EncodeError, ValueError, TypeError) as exc:
            line = dumps({"id": obj.get("id"), "raise": "TypeError", "msg": f"result: {exc}"})
        if not write_all(rep_fd, line):
            _leave(0)

    signal.signal(signal.SIGALRM, _alarm)
    mod, error, memory = load_module("solution", os.path.join(workdir, "solution.py"))
    names, values = {}, {}
    for k, v in list(vars(mod).items()):
        if k.startswith("_"):
            continue
        if callable(v):
            names[k] = "callable"
            continue
        try:
            values[k] = encode(v)
            json.dumps(values[k], allow_nan=False)
        except (EncodeError, ValueError, TypeError, RecursionError):
            values.pop(k, None)
    hello = {"load_error": error, "memory": memory, "names": names, "values": values}
    try:
        line = dumps(hello)
    except (EncodeError, ValueError):
        line = dumps({"load_error": error, "memory": memory, "names": names, "values": {}})
    if not write_all(rep_fd, line):
        _leave(0)
    reader = LineReader(req_fd)
    while True:
        try:
            raw = reader.readline()
        except (OSError, ValueError):
            raw = None
        if raw is None:
            _leave(0)
        req = loads(raw)
        rid = req.get("id")
        oom = dumps({"id": rid, "raise": "MemoryError", "msg": "", "memory": True})
        try:
            target = getattr(mod, req["name"])
            args = [decode(a) for a in req.get("args", [])]
            kwargs = {str(k): decode(v) for k, v in req.get("kwargs", {}).items()}
            if per_call:
                signal.setitimer(signal.ITIMER_REAL, per_call)
            try:
                out = target(*args, **kwargs) if req.get("op") == "call" else target
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            reply({"id": rid, "ok": encode(out)})
        except _TestTimeout:
            reply({"id": rid, "timeout": True})
        except MemoryError:
            write_all(rep_fd, oom)
        except BaseException as exc:  # noqa: BLE001 - the candidate's exception goes to the test
            try:
                reply({"id": rid, "raise": type(exc).__name__, "msg": str(exc)[:400]})
            except MemoryError:
                write_all(rep_fd, oom)


# ------------------------------------------------------------------------------------------ test runner
class _Remote:
    """The runner's end of the call channel: one request, one reply, matched by id."""

    def __init__(self, req_fd, rep_fd, per_call):
        self.req_fd, self.reader, self.per_call = req_fd, LineReader(rep_fd), per_call
        self.next_id, self.gone, self.memory = 0, None, False
        hello = self._read()
        self.load_error = hello.get("load_error") if type(hello.get("load_error")) is str else None
        self.memory = hello.get("memory") is True
        names = hello.get("names") if type(hello.get("names")) is dict else {}
        values = hello.get("values") if type(hello.get("values")) is dict else {}
        self.callables = [k for k in names if type(k) is str and k.isidentifier()]
        self.values = {}
        for k, v in values.items():
            try:
                self.values[k] = decode(v)
            except ValueError:
                pass

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

    def request(self, op, name, args=(), kwargs=None):
        if self.gone:
            raise CandidateGone(self.gone)
        self.next_id += 1
        rid = self.next_id
        try:
            line = dumps({"id": rid, "op": op, "name": name, "args": [encode(a) for a in args],
                          "kwargs": {k: encode(v) for k, v in (kwargs or {}).items()}})
        except EncodeError as exc:
            raise TypeError(f"argument of {name}(): {exc} (only plain data crosses to the candidate)") from None
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
            raise _candidate_exception(str(msg.get("raise")), str(msg.get("msg", "")))
        try:
            return decode(msg.get("ok"))
        except ValueError as exc:
            raise CandidateGone(f"protocol error ({exc})") from None


_BUILTIN_EXC = {k: v for k, v in vars(builtins).items() if isinstance(v, type) and issubclass(v, Exception)}


_BUILTIN_NAMES = frozenset(vars(builtins))


def _candidate_exception(name, msg):
    """An exception of the builtin type the candidate raised (so ``assertRaises(ValueError)`` works)."""
    cls = _BUILTIN_EXC.get(name)
    try:
        return cls(msg) if cls is not None else RuntimeError(f"{name}: {msg}")
    except Exception:  # noqa: BLE001 - e.g. UnicodeDecodeError needs five arguments
        return RuntimeError(f"{name}: {msg}")


class _Solution:
    """Stands for the candidate's module in the tests: values are copies, functions are remote calls."""

    def __init__(self, remote):
        object.__setattr__(self, "_remote", remote)

    def __getattr__(self, name):
        remote = object.__getattribute__(self, "_remote")
        if name in remote.values:
            return remote.values[name]
        if name in remote.callables:
            return _proxy(remote, name)
        raise AttributeError(f"the candidate defines no {name!r}")


def _proxy(remote, name):
    def call(*args, **kwargs):
        return remote.request("call", name, args, kwargs)

    call.__name__ = call.__qualname__ = name
    return call


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


def run_tests(tests_source, req_fd, rep_fd, chan, per_test):
    """The trusted runner: hidden tests against the remote candidate; results on ``chan`` only."""
    import linecache

    signal.signal(signal.SIGALRM, _alarm)
    per_call = per_test or 0
    try:
        remote = _Remote(req_fd, rep_fd, per_call)
    except CandidateGone as exc:
        chan.send(load_error=f"solution: {exc}")
        remote = None
    def report(key, value):
        try:
            payload = encode(value)
            if len(json.dumps(payload)) > 4096:
                payload = None
        except (EncodeError, ValueError, TypeError):
            payload = None
        chan.send(report=str(key)[:100], value=payload)

    ns = {"__name__": "hidden_tests"}
    if remote is not None:
        if remote.load_error:
            chan.send(load_error=remote.load_error[:2000])
        if remote.memory:
            chan.send(memory=True)
        # bare names for the tests, never shadowing a builtin (``def sorted(x): ...`` stays solution.sorted)
        ns.update({k: v for k, v in remote.values.items() if k not in _BUILTIN_NAMES})
        ns.update({k: _proxy(remote, k) for k in remote.callables if k not in _BUILTIN_NAMES})
        ns["solution"] = sys.modules["solution"] = _Solution(remote)  # also for ``from solution import f``
    ns["report"] = report
    linecache.cache["hidden_tests.py"] = (len(tests_source), None, tests_source.splitlines(True), "hidden_tests.py")
    exec(compile(tests_source, "hidden_tests.py", "exec"), ns)  # noqa: S102 - our own tests
    own = {k: v for k, v in ns.items() if getattr(v, "__module__", None) == "hidden_tests"}
    tests = _collect(own, "")
    chan.send(tests=[t for t, _ in tests])
    for test_id, fn in tests:
        _run_one(chan, test_id, fn, per_test + 0.5 if per_test else 0)
    if remote is not None and remote.memory:
        chan.send(memory=True)
    chan.send(done=True)


# ------------------------------------------------------------------------------- in-process harnesses
def run_repo_tests(workdir, test_files, chan, per_test):
    """Repository mode: import each test file (the repository appended to ``sys.path``) and run its tests.

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
