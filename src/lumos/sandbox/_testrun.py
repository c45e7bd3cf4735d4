"""The test runners and the in-process harnesses (standard library only; used by ``_launcher.py``).

- :func:`run_tests`, :func:`run_repo_tests`: the **trusted runner** of tests and repository modes, a process of
  its own uid that executes the tests, alone holds the results channel, and uses the candidate only through
  the proxies of ``_proxies`` (the candidate server, ``_candidate``, runs in another process);
- :func:`run_repo_inprocess` (for tests that need real objects: ``isinstance`` on classes, callbacks,
  candidate ``__eq__``) and :func:`run_script` run candidate code in the harness's own interpreter; their
  results fd is therefore writable by the candidate (the verdict's ``integrity`` says so);
- :data:`COMMAND_SHIM`: ``python`` in command mode.
"""

import json
import os
import signal
import sys
import traceback
import types
from importlib._abc import Loader  # = importlib.abc.Loader, without importlib.abc's 20 ms of imports

if __package__:  # lumos.sandbox._testrun on the host
    from . import _candidate, _proxies, _wire
else:  # _testrun next to _launcher.py in the sandbox, a top-level module
    import _candidate
    import _proxies
    import _wire

__all__ = ["run_tests", "run_repo_tests", "run_repo_inprocess", "run_script", "COMMAND_SHIM"]


def _collect(namespace, prefix):
    """The tests of a loaded test module, in definition order: ``test*`` functions (pytest's style) and the
    methods unittest's loader finds on ``unittest.TestCase`` subclasses (whatever their bases are called)."""
    unittest = sys.modules.get("unittest")  # no TestCase can exist unless the tests imported unittest
    out = []
    for name, obj in list(namespace.items()):
        if name.startswith("test") and callable(obj) and not isinstance(obj, type):
            out.append((prefix + name, _function_runner(obj)))
        elif (unittest is not None and isinstance(obj, type) and issubclass(obj, unittest.TestCase)
              and obj is not unittest.TestCase):
            for meth in unittest.TestLoader().getTestCaseNames(obj):
                out.append((f"{prefix}{name}.{meth}", _case_runner(obj, meth)))
    return out


def _own(namespace, module_name):
    """The functions and classes a test module defined itself (never a candidate handle or proxy)."""
    return {k: v for k, v in namespace.items()
            if isinstance(v, (types.FunctionType, type)) and v.__module__ == module_name}


def _body_kind(fn):
    """``"async"``, ``"generator"``, ``"async generator"`` or None: how a test function's body would run."""
    import inspect

    fn = getattr(fn, "__func__", fn)
    if inspect.isasyncgenfunction(fn):
        return "async generator"
    if inspect.isgeneratorfunction(fn):
        return "generator"
    return "async" if inspect.iscoroutinefunction(fn) else None


def _refuse(what):
    def refused():
        raise AssertionError(f"refused: {what}; calling it would not run its body (write it as a plain function)")

    return refused


def _check_returned(out):
    """A test that handed back a coroutine or generator never ran its body: not a pass."""
    import inspect

    if inspect.iscoroutine(out) or inspect.isgenerator(out) or inspect.isasyncgen(out):
        getattr(out, "close", lambda: None)()
        raise AssertionError(f"refused: the test returned a {type(out).__name__} instead of running its body")


def _function_runner(fn):
    kind = _body_kind(fn)
    if kind == "async":  # pytest-asyncio's way: the test's coroutine runs to completion in a fresh event loop
        def run_async():
            import asyncio

            asyncio.run(fn())

        return run_async
    if kind is not None:
        return _refuse(f"{fn.__name__} is a {kind} function")

    def run():
        _check_returned(fn())

    return run


def _case_runner(cls, meth):
    """One unittest test method; a pass needs unittest's own record of exactly one success (or an expected
    failure) and no error, failure, skip or unexpected success."""
    import unittest

    kind = _body_kind(getattr(cls, meth))
    if kind is not None and (kind != "async" or not issubclass(cls, unittest.IsolatedAsyncioTestCase)):
        return _refuse(f"{cls.__name__}.{meth} is a {kind} method of a {'TestCase' if kind == 'async' else 'test case'}")

    class Result(unittest.TestResult):
        successes = 0

        def addSuccess(self, test):  # noqa: N802 - unittest's name
            super().addSuccess(test)
            self.successes += 1

    def run():
        result = Result()
        cls(meth).run(result)
        problems = result.errors + result.failures
        if problems:
            raise AssertionError(problems[0][1].strip().splitlines()[-1])
        if result.skipped:
            raise AssertionError("skipped")
        if result.unexpectedSuccesses:
            raise AssertionError("unexpected success of a test marked expectedFailure")
        if result.testsRun != 1 or result.successes + len(result.expectedFailures) != 1:
            raise AssertionError("unittest recorded no success for this test")

    return run


def _run_one(chan, test_id, fn, per_test):
    chan.send(start=test_id)
    oom = {"test": test_id, "passed": False, "error": "MemoryError", "memory": True}
    signal.setitimer(signal.ITIMER_REAL, per_test)
    passed, error = False, None
    try:
        fn()
        passed = True
    except _wire.TestTimeout:
        error = "per-test time limit"
    except MemoryError:
        error = "MemoryError"
    except _wire.CandidateGone as exc:
        error = str(exc)
    except BaseException as exc:  # noqa: BLE001 - SystemExit/KeyboardInterrupt fail the test
        try:
            error = _wire.describe(exc)
        except MemoryError:
            error = "MemoryError"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    if error and ("File too large" in error or "No space left on device" in error):
        chan.send(file_too_large=True)
    chan.send(**oom) if error == "MemoryError" else chan.send(test=test_id, passed=passed, error=error)


def _connect(req_fd, rep_fd, chan):
    try:
        remote = _proxies.Remote(req_fd, rep_fd)
    except _wire.CandidateGone as exc:
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


def run_tests(sources, req_fd, rep_fd, chan, per_test):
    """The trusted runner, tests mode: hidden tests against the remote ``solution``; results on ``chan`` only.

    The candidate's public names are bare names in the tests' namespace (never shadowing a builtin:
    ``def sorted(x): ...`` stays ``solution.sorted``); ``solution`` and ``from solution import f`` work too."""
    signal.signal(signal.SIGALRM, _wire.alarm)
    remote = _connect(req_fd, rep_fd, chan)

    def report(key, value):
        try:
            payload = _wire.encode(value)
            if len(json.dumps(payload)) > 4096:
                payload = None
        except (_wire.EncodeError, ValueError, TypeError):
            payload = None
        chan.send(report=str(key)[:100], value=payload)

    preset: dict[str, object] = {"report": report}
    if remote is not None:
        preset.update(remote.names)  # filtered by _proxies.bindable
        module = remote.module
        if isinstance(module, types.ModuleType):
            preset["solution"] = sys.modules["solution"] = module
    (filename, source), = sources["tests"]
    _run_all(chan, remote, _load_tests(chan, "hidden_tests", filename, source, "", preset), per_test)


def run_repo_tests(sources, req_fd, rep_fd, chan, per_test):
    """The trusted runner, repository mode: each test file runs here, and so do the tests' own modules
    (``sources["support"]``); every other module it imports that the standard library does not provide is the
    candidate's, imported over there and used through proxies."""
    signal.signal(signal.SIGALRM, _wire.alarm)
    remote = _connect(req_fd, rep_fd, chan)
    test_dirs = {os.path.dirname(rel) for rel, _ in sources["tests"]}
    sys.meta_path.append(SupportFinder(sources.get("support", []), test_dirs, sources.get("packages", [])))
    if remote is not None:
        sys.meta_path.append(_proxies.CandidateFinder(remote))
    tests = []
    for rel, source in sources["tests"]:
        name = "_repo_test_" + "".join(c if c.isalnum() else "_" for c in rel)
        tests += _load_tests(chan, name, rel, source, rel + "::")
    _run_all(chan, remote, tests, per_test)


def _load_tests(chan, name, filename, source, prefix, preset=()):
    """Load one test file and collect its tests; a file that does not load (e.g. an import of the candidate
    that fails) is itself one failed test, named by its path: its tests cannot vanish from the verdict."""
    try:
        mod = _exec_tests(name, filename, source, preset)
    except BaseException as exc:  # noqa: BLE001 - whatever the candidate did while the tests imported it
        error = f"{filename}: {_wire.describe(exc)}"[:2000]
        chan.send(load_error=error, memory=isinstance(exc, MemoryError))

        def did_not_load():
            raise AssertionError(f"the test file did not load: {error}")

        return [(filename, did_not_load)]
    return _collect(_own(vars(mod), name), prefix)


class SupportFinder(Loader):
    """Before the candidate's finder: the tests' own modules (``[rel, source]``), imported and run here (the
    finder is their loader too).

    A module is found by its dotted path from the repository root and, as pytest's default ("prepend") import
    mode puts a test's directory on ``sys.path``, by its path from the directory of a test file. Directories
    that hold nothing but the tests' files (``packages``, decided by the host, which sees every file) are
    packages of the runner even without an ``__init__.py``; no other directory is claimed, so a candidate
    package above a tests directory stays the candidate's."""

    def __init__(self, files, test_dirs: set[str], packages=()):
        self.modules, self.packages = {}, set()
        tops = [d.split("/") for d in sorted(test_dirs, key=len, reverse=True) if d]

        def names(parts):
            yield ".".join(parts)
            for top in tops:
                if parts[:len(top)] == top and len(parts) > len(top):
                    yield ".".join(parts[len(top):])

        for rel, source in files:
            parts = rel[:-3].split("/")
            package = parts[-1] == "__init__"
            parts = parts[:-1] if package else parts
            if rel.endswith(".py") and parts and all(p.isidentifier() for p in parts):
                for name in names(parts):
                    self.modules.setdefault(name, (rel, source, package))
        for d in packages:
            if all(p.isidentifier() for p in d.split("/")):
                self.packages.update(names(d.split("/")))

    def find_spec(self, fullname, path=None, target=None):
        import importlib.machinery

        if fullname in self.modules:
            rel, _, package = self.modules[fullname]
            return importlib.machinery.ModuleSpec(fullname, self, origin=rel, is_package=package)
        if fullname in self.packages:
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        entry = self.modules.get(module.__name__)
        if entry is None:  # a directory of the tests without an __init__.py: an empty package
            module.__path__ = []
            return
        rel, source, package = entry
        if package:
            module.__path__ = []
        import linecache

        module.__file__ = rel
        linecache.cache[rel] = (len(source), None, source.splitlines(True), rel)
        exec(compile(source, rel, "exec"), module.__dict__)  # noqa: S102 - the task's own test helpers


# ------------------------------------------------------------------------------- in-process harnesses
def run_repo_inprocess(workdir, test_files, chan, per_test):
    """In-process repository mode: import each test file (the repository appended to ``sys.path``) and run its tests.

    Candidate modules run in this interpreter: the records on ``chan`` can be forged by them."""
    signal.signal(signal.SIGALRM, _wire.alarm)
    for d in dict.fromkeys(os.path.dirname(rel) for rel in test_files):  # the tests' helpers first (as pytest's
        if d:                                                               # prepend), before the repository
            sys.path.append(os.path.join(workdir, d))
    sys.path.append(workdir)  # after the standard library: a repository file cannot shadow it
    tests = []
    for rel in test_files:
        name = "_repo_test_" + rel.replace("/", "_").replace(".", "_")
        mod, error, memory = _candidate.load_module(name, os.path.join(workdir, rel))
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
