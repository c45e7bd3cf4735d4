"""Adversarial suite (issue #14): every attack must fail AND the honest solution must still pass.

Each test runs the attack and an honest twin through the same path. Attacks the design cannot stop
(in-process repository mode, command mode) are asserted to be *reported* by ``Verdict.integrity`` instead.
"""

from __future__ import annotations

import ast
import dataclasses
import os
import platform
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from lumos.sandbox import SandboxJob, SandboxLimits, SandboxPool, run_job, run_script, run_tests
from lumos.sandbox.cleanup import PREFIX, rmtree, sweep_leftovers
from lumos.sandbox.verdict import build_verdict, parse_lines

LIM = SandboxLimits(wall_time=4.0, cpu_time=3.0, memory_mb=256, max_processes=16)
SECRET = 731_904_155  # appears only in the hidden tests
TESTS = f"def test_secret():\n    assert f(3) == {SECRET}  # SECRET_MARKER\n\ndef test_small():\n    assert f(0) == 0\n"
HONEST = f"def f(x):\n    return {SECRET} if x == 3 else 0\n"
WRONG = "def f(x):\n    return 0\n"
ROOT = os.geteuid() == 0


def _map(jobs):
    with SandboxPool(workers=2) as pool:
        return pool.map(jobs)


def _tests_jobs(attacks, tests=TESTS, limits=LIM):
    return [SandboxJob("tests", source=src, tests=tests, limits=limits) for src in [HONEST, *attacks]]


def _need_full_isolation():
    v = run_script("pass\n", LIM)
    if not (v.uid_dropped and v.readonly_fs and v.pid_namespace):
        pytest.skip("needs root with namespaces (the verdict reports the isolation is not in force)")
    return v


# ------------------------------------------------------------------------------------------- forging
FORGERS = [
    # the issue's exact attack: replace the harness's per-test runner
    WRONG + "import sys\nfor m in list(sys.modules.values()):\n    if hasattr(m, '_run_one'):\n"
            "        m._run_one = lambda chan, tid, fn, pt: chan.send(test=tid, passed=True, error=None)\n",
    # write pass records into every descriptor the process has, then leave
    WRONG + "import os\nrec = b'{\"test\": \"test_secret\", \"passed\": true}\\n{\"test\": \"test_small\", "
            "\"passed\": true}\\n{\"done\": true}\\n'\nfor fd in range(3, 64):\n    try:\n"
            "        os.write(fd, rec)\n    except OSError:\n        pass\nos._exit(0)\n",
    # patch unittest and compile (assert stripping)
    WRONG + "import unittest, builtins\nunittest.TestResult.addFailure = lambda *a: None\n"
            "unittest.TestResult.addError = lambda *a: None\n_c = builtins.compile\n"
            "builtins.compile = lambda s, fn, mode, *a, **k: _c(s, fn, mode, 0, True, 2)\n",
    # shadow the builtins the tests might use, and the proxy's own names
    WRONG + "def isinstance(*a):\n    return True\ndef type(x):\n    return int\nreport = 1\n",
]


def test_forged_results_fail_and_honest_passes():
    unittest_tests = (f"import unittest\n\nclass T(unittest.TestCase):\n    def test_secret(self):\n"
                      f"        self.assertEqual(f(3), {SECRET})\n\n    def test_small(self):\n"
                      f"        self.assertEqual(f(0), 0)\n")
    honest, *forged = _map(_tests_jobs(FORGERS) + _tests_jobs([FORGERS[2]], tests=unittest_tests))
    assert honest.all_passed and honest.exit_reason == "ok"
    assert honest.integrity["results_forgeable_by_candidate"] is False
    for v in forged[:-2]:
        assert "test_secret" in v.failed, (v.passed, v.stderr)
    assert forged[-2].all_passed  # the honest twin of the unittest variant
    assert forged[-1].failed == ["T.test_secret"]


# --------------------------------------------------------------------------------------- leaking tests
LEAKER = f"""
import gc, linecache, os, re, sys
SEEN = []
def _look():
    for o in gc.get_objects():
        if isinstance(o, dict):
            SEEN.extend(v for v in list(o.values()) if isinstance(v, str) and 'def test' in v)
    SEEN.extend(''.join(v[2]) for v in linecache.cache.values() if len(v) > 2)
    fr = sys._getframe(1)
    while fr is not None:
        SEEN.append(repr(fr.f_code.co_consts))
        fr = fr.f_back
    for fd in range(0, 64):
        try:
            os.set_blocking(fd, False)
            SEEN.append(os.read(fd, 1 << 16).decode('latin-1'))
        except OSError:
            pass
        try:
            os.set_blocking(fd, True)
        except OSError:
            pass
    for root in ('/proc', '/tmp', '.', os.path.dirname(os.getcwd())):
        try:
            for dirpath, _, files in os.walk(root):
                for name in files:
                    if name in ('cmdline', 'environ', 'tests.py', 'tests.json', 'config.json'):
                        try:
                            SEEN.append(open(os.path.join(dirpath, name), 'rb').read().decode('latin-1'))
                        except OSError:
                            pass
                if dirpath.count('/') > 4:
                    break
        except OSError:
            pass
def f(x):
    _look()
    text = '\\n'.join(SEEN)
    wanted = (''.join(['SECRET', '_MARKER']), str({SECRET // 1000}) + '{SECRET % 1000:03d}')  # not literally in this source
    print('LEAKED' if any(w in text for w in wanted) else 'nothing')
    m = re.search(r'== (\\d{{6,}})', text)
    return int(m.group(1)) if m and x == 3 else 0
"""


def test_hidden_tests_cannot_be_read():
    honest, leak = _map(_tests_jobs([LEAKER], limits=SandboxLimits(wall_time=8.0, cpu_time=6.0, memory_mb=256)))
    assert honest.all_passed
    assert leak.failed == ["test_secret"] and leak.passed == ["test_small"], leak.errors
    assert "LEAKED" not in leak.stdout and "nothing" in leak.stdout


def test_always_equal_objects_cannot_cross():
    attacks = [
        WRONG.replace("return 0", "return A()") + "class A:\n    def __eq__(self, o):\n        return True\n",
        WRONG.replace("return 0", "return I(1)") + "class I(int):\n    def __eq__(self, o):\n        return True\n",
        WRONG.replace("return 0", "return L()") + "class L(list):\n    def __eq__(self, o):\n        return True\n",
    ]
    truthy = WRONG.replace("return 0", "return T()") + "class T:\n    def __bool__(self):\n        return True\n"
    tests = TESTS + "def test_true():\n    assert f(3)\n"
    honest, *v = _map(_tests_jobs(attacks) + _tests_jobs([truthy], tests=tests))
    assert honest.all_passed
    for x in v[:3]:  # the objects stay in the candidate; the tests compare a proxy, which equals only itself
        assert x.passed == [] and x.errors["test_secret"].startswith("AssertionError: assert f(3) =="), x.errors
    assert v[3].all_passed and v[4].failed == ["test_secret", "test_small", "test_true"]
    assert "truth of <candidate object T>" in v[4].errors["test_true"], v[4].errors


def test_plain_values_round_trip():
    values = "[None, True, 1, -2.5, float('inf'), 'é', b'\\x00', (1, [2]), {'a': {3}}, frozenset({4}), 10 ** 40]"
    tests = f"def test_same():\n    assert g() == {values}\n    assert type(g()[7]) is tuple\n" \
            "def test_raises():\n    try:\n        h()\n    except ValueError as e:\n        assert 'bad' in str(e)\n" \
            "    else:\n        assert False\n" \
            "def test_import():\n    from solution import g as g2\n    import solution\n    assert g2() == solution.g()\n"
    v = run_tests(f"def g():\n    return {values}\ndef h():\n    raise ValueError('bad')\n", tests, LIM)
    assert v.all_passed, v.errors


# ------------------------------------------------------------------------------ repository and command
REPO = {"calc.py": "def double(x):\n    return x + x + 1\n",
        "test_calc.py": "from calc import double\n\ndef test_double():\n    assert double(2) == 4\n"}
FIXED = {**REPO, "calc.py": "def double(x):\n    return x + x\n"}


def test_inprocess_repo_mode_tests_restored_readonly():
    rewrite = dict(REPO, **{"calc.py": REPO["calc.py"] + "import os\ntry:\n    os.chmod('test_calc.py', 0o666)\n"
                                       "except OSError:\n    pass\nfor p in ('test_calc.py',):\n    try:\n"
                                       "        os.rename(p, p + '.x')\n    except OSError:\n        pass\n    try:\n"
                                       "        open(p, 'w').write('def test_double():\\n    pass\\n')\n"
                                       "    except OSError as e:\n        print('blocked', type(e).__name__)\n"})
    main_patch = dict(REPO, **{"calc.py": REPO["calc.py"] + "import sys\nm = sys.modules['__main__']\n"
                                          "m._run_one = lambda chan, tid, fn, pt: chan.send(test=tid, passed=True)\n"})
    jobs = [SandboxJob("repo-inprocess", files=f, test_files=["test_calc.py"], limits=LIM)
            for f in (FIXED, rewrite, main_patch)]
    honest, rw, mp = _map(jobs)
    assert honest.all_passed and honest.integrity["results_forgeable_by_candidate"] is True
    if rw.readonly_fs:
        assert rw.failed == ["test_calc.py::test_double"] and "blocked" in rw.stdout, rw.stdout
    assert mp.failed == ["test_calc.py::test_double"]


# repository mode: the same kinds of attack from a repository module the tests import
REPO_SECRET_TESTS = {
    "test_calc.py": f"from calc import double\n\ndef test_double():\n    assert double(2) == 4\n\n"
                    f"def test_secret():\n    assert double({SECRET}) == {2 * SECRET}  # SECRET_MARKER\n",
    "tests/test_more.py": "import unittest\nimport calc\n\nclass T(unittest.TestCase):\n    def test_zero(self):\n"
                          "        self.assertEqual(calc.double(0), 0)\n",
}
REPO_FORGERS = [
    # patch every harness function the process can see, write records into every fd, patch unittest
    "import sys, os, unittest, builtins\nfor m in list(sys.modules.values()):\n    for n in ('_run_one', 'run_repo_tests'):\n"
    "        if hasattr(m, n):\n            setattr(m, n, lambda *a, **k: None)\n"
    "unittest.TestResult.addFailure = lambda *a: None\n_c = builtins.compile\n"
    "builtins.compile = lambda s, fn, mode, *a, **k: _c(s, fn, mode, 0, True, 2)\n"
    "rec = b''.join(b'{\"test\": \"%s\", \"passed\": true}\\n' % t.encode() for t in ('test_calc.py::test_double', "
    "'test_calc.py::test_secret', 'tests/test_more.py::T.test_zero')) + b'{\"done\": true}\\n'\n"
    "for fd in range(3, 64):\n    try:\n        os.write(fd, rec)\n    except OSError:\n        pass\n"
    "def double(x):\n    return 0\n",
    # leave at import, after writing records
    "import os\nfor fd in range(3, 64):\n    try:\n        os.write(fd, b'{\"test\": \"test_calc.py::test_double\", "
    "\"passed\": true}\\n')\n    except OSError:\n        pass\nos._exit(0)\n",
    # always-equal results, and rewriting the test files in the working directory
    "import os\nclass A(int):\n    def __eq__(self, o):\n        return True\n    __hash__ = int.__hash__\n"
    "for p in ('test_calc.py', 'tests/test_more.py'):\n    try:\n        os.makedirs(os.path.dirname(p) or '.', exist_ok=True)\n"
    "        open(p, 'w').write('def test_double():\\n    pass\\n')\n    except OSError:\n        pass\n"
    "def double(x):\n    return A(0)\n",
    # read the tests (the secret) from anywhere the process can reach, and answer from them
    LEAKER.replace("def f(x):", "def double(x):").replace("m and x == 3", "m and x > 100"),
]


def test_repo_mode_results_cannot_be_forged_or_read():
    honest_files = dict(REPO_SECRET_TESTS, **{"calc.py": "def double(x):\n    return x + x\n"})
    files = [honest_files] + [dict(REPO_SECRET_TESTS, **{"calc.py": src}) for src in REPO_FORGERS]
    lim = SandboxLimits(wall_time=8.0, cpu_time=6.0, memory_mb=256, max_processes=16)
    honest, *v = _map([SandboxJob("repo", files=f, test_files=sorted(REPO_SECRET_TESTS), limits=lim) for f in files])
    assert honest.all_passed and honest.exit_reason == "ok", (honest.errors, honest.load_error, honest.stderr)
    assert honest.integrity["results_forgeable_by_candidate"] is False
    assert honest.integrity["tests_visible_to_candidate"] is False
    for x in v[:3]:  # the tests fail, or their file does not load (then it is one failed test, by its path)
        assert not {"test_calc.py::test_secret", "test_calc.py::test_double"} & set(x.passed), (x.passed, x.errors)
        assert {"test_calc.py::test_secret", "test_calc.py::test_double"} <= set(x.failed) or "test_calc.py" in x.failed
    leak = v[3]
    assert "test_calc.py::test_secret" in leak.failed and "LEAKED" not in leak.stdout and "nothing" in leak.stdout, \
        (leak.stdout, leak.errors)


def test_repo_mode_duck_typed_forgeries_fail():
    tests = {"test_f.py": "from lib import evens\n\ndef test_in():\n    assert 4 in evens([1, 4, 5])\n\n"
                          "def test_truth():\n    assert evens([2])\n\ndef test_eq():\n    assert evens([3, 6]) == [6]\n"}
    honest = dict(tests, **{"lib.py": "def evens(xs):\n    return [x for x in xs if x % 2 == 0]\n"})
    forged = dict(tests, **{"lib.py": "class Yes:\n    def __contains__(self, x):\n        return True\n"
                                      "    def __bool__(self):\n        return True\n    def __eq__(self, o):\n"
                                      "        return True\n    def __iter__(self):\n        return iter(())\n"
                                      "def evens(xs):\n    return Yes()\n"})
    good, bad = _map([SandboxJob("repo", files=f, test_files=["test_f.py"], limits=LIM) for f in (honest, forged)])
    assert good.all_passed, good.errors
    assert bad.passed == [] and "truth of <candidate object Yes>" in bad.errors["test_f.py::test_truth"], bad.errors


PROXY_LIB = """
import json


class EmptyError(ValueError):
    pass


class Stack:
    def __init__(self, items=()):
        self.items = list(items)

    def push(self, x):
        self.items.append(x)
        return self

    def pop(self):
        if not self.items:
            raise EmptyError('pop from an empty stack')
        return self.items.pop()

    def __len__(self):
        return len(self.items)

    def __iter__(self):
        return iter(self.items)

    def __contains__(self, x):
        return x in self.items

    def __getitem__(self, i):
        return self.items[i]

    def __str__(self):
        return f'Stack{self.items}'


def parse(text):
    return json.loads(text)


def size(stack):
    return len(stack.items)


def _hidden():
    return 1
"""

PROXY_TESTS = """
import json
import unittest

import lib
from lib import EmptyError, Stack, parse, size


def test_objects_methods_and_state():
    s = Stack([1, 2])
    assert s.push(3) is s and len(s) == 3 and list(s) == [1, 2, 3] and 2 in s and 9 not in s
    assert s[0] == 1 and s.items == [1, 2, 3] and str(s) == 'Stack[1, 2, 3]' and size(s) == 3
    s.items = [7]
    assert s.pop() == 7 and isinstance(s, Stack) and not isinstance(3, Stack)


def test_exceptions_are_mirrored():
    try:
        Stack().pop()
    except EmptyError as exc:
        assert 'empty' in str(exc) and isinstance(exc, ValueError) and type(exc) is lib.EmptyError
    else:
        raise AssertionError('no error')
    try:
        parse('{')
    except json.JSONDecodeError:
        pass
    else:
        raise AssertionError('no error')


def test_star_import_and_submodules():
    ns = {}
    exec('from lib import *', ns)
    assert ns['size'](ns['Stack']([1])) == 1 and '_hidden' not in ns
    import pkg.sub
    from pkg.sub import VALUE
    assert pkg.sub.VALUE == VALUE == {'a': (1, 2)}


def test_truth_is_never_asked():
    try:
        bool(Stack())
    except TypeError:
        return
    raise AssertionError('bool() of a candidate object must raise')


class T(unittest.TestCase):
    def test_raises(self):
        with self.assertRaises(EmptyError):
            Stack().pop()
        with self.assertRaises(ValueError):
            Stack().pop()
"""


def test_repo_mode_proxies_behave_like_the_objects():
    files = {"lib.py": PROXY_LIB, "test_lib.py": PROXY_TESTS, "pkg/__init__.py": "",
             "pkg/sub.py": "VALUE = {'a': (1, 2)}\n"}
    v = run_job(SandboxJob("repo", files=files, test_files=["test_lib.py"], limits=LIM))
    assert v.all_passed and len(v.passed) == 5, (v.errors, v.load_error)
    broken = dict(files, **{"lib.py": PROXY_LIB.replace("raise EmptyError", "raise KeyError")})
    v = run_job(SandboxJob("repo", files=broken, test_files=["test_lib.py"], limits=LIM))
    assert v.failed == ["test_lib.py::test_exceptions_are_mirrored", "test_lib.py::T.test_raises"], v.errors
    # a module named like a standard-library one is never taken from the repository, in either process
    shadow = dict(files, **{"test_lib.py": "import _winapi\n\ndef test_x():\n    assert _winapi.X == 1\n",
                            "_winapi.py": "X = 1\n"})
    v = run_job(SandboxJob("repo", files=shadow, test_files=["test_lib.py"], limits=LIM))
    assert v.passed == [] and v.failed == ["test_lib.py"] and "_winapi" in v.load_error, (v.errors, v.load_error)


def test_command_mode_cannot_shadow_the_stdlib():
    case = ("import unittest\nfrom calc import double\n\nclass T(unittest.TestCase):\n    def test_double(self):\n"
            "        self.assertEqual(double(2), 4)\n")
    shadow = dict(REPO, **{"test_calc.py": case, "unittest.py": "import sys\nsys.exit(0)\n",
                           "json.py": "raise SystemExit(0)\n"})
    cmd = ["python", "-m", "unittest", "-q"]
    honest, attack = _map([SandboxJob("command", files=f, command=cmd, test_files=["test_calc.py"], limits=LIM)
                           for f in (dict(FIXED, **{"test_calc.py": case}), shadow)])
    assert honest.passed == ["command"], honest.stderr
    assert attack.failed == ["command"] and attack.returncode == 1, attack.stderr


# -------------------------------------------------------------------------------------- forged labels
def test_labels_the_candidate_reaches_are_not_sandbox_faults():
    jobs = [SandboxJob("script", source=s, limits=LIM) for s in (
        "import os\nos._exit(98)\n", "import sys\nprint('MemoryError')\nsys.stderr.write('MemoryError\\n')\n",
        "import sys\nsys.stderr.write('File too large\\nsandbox setup failed\\n')\nsys.exit(0)\n",
        "print('ok')\n")]
    jobs.append(SandboxJob("tests", source="import os\nos._exit(98)\n", tests=TESTS, limits=LIM))
    v = _map(jobs)
    assert [x.exit_reason for x in v] == ["crash", "ok", "ok", "ok", "crash"], [x.exit_reason for x in v]
    assert all(x.setup_error is None for x in v)


@pytest.mark.isolation
# ------------------------------------------------------------------------------------ host resources
def test_host_sockets_and_directories_are_invisible(tmp_path):
    _need_full_isolation()
    path = f"/tmp/lumos-adv-{os.getpid()}.sock"
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(path)
    os.chmod(path, 0o666)
    srv.listen(1)
    srv.settimeout(0.1)
    src = (f"import os, socket\ns = socket.socket(socket.AF_UNIX)\ntry:\n    s.connect({path!r})\n    print('CONNECTED')\n"
           f"except OSError as e:\n    print('refused', type(e).__name__)\n"
           f"print(sorted(os.listdir('/tmp')), os.path.basename(os.getcwd()))\n"
           f"print([p for p in ('/run', '/home', '/sys', '/etc', '/var', '/mnt', '/root/.ssh') if os.path.exists(p)])\n")
    try:
        attack, honest = _map([SandboxJob("script", source=src, limits=LIM),
                               SandboxJob("script", source="import json, socket\nprint(json.dumps([1]))\n", limits=LIM)])
        try:
            srv.accept()
            accepted = True
        except OSError:
            accepted = False
    finally:
        srv.close()
        os.unlink(path)
    assert honest.exit_reason == "ok" and honest.stdout == "[1]\n"
    assert "refused" in attack.stdout and "CONNECTED" not in attack.stdout and not accepted
    listing, hidden = attack.stdout.strip().splitlines()[-2:]
    assert hidden == "[]", attack.stdout
    # /tmp inside holds the working directory, plus the interpreter's own directory when the checkout or its venv
    # lives under /tmp (the view binds the interpreter's prefixes); never the host's socket or anything else
    names, cwd = listing.rsplit(" ", 1)
    allowed = {cwd} | {Path(os.path.realpath(p)).parts[2] for p in
                       (sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(os.path.realpath(sys.executable)))
                       if Path(os.path.realpath(p)).parts[:2] == ("/", "tmp") and len(Path(os.path.realpath(p)).parts) > 2}
    assert set(ast.literal_eval(names)) <= allowed and cwd in ast.literal_eval(names), (attack.stdout, allowed)


KEYCTL = {"x86_64": (250, 248), "aarch64": (219, 217)}.get(platform.machine())


@pytest.mark.isolation
def test_keyrings_are_blocked():
    _need_full_isolation()
    if KEYCTL is None or not run_script("pass\n", LIM).isolation.get("seccomp"):
        pytest.skip("seccomp unavailable: the verdict reports it")
    keyctl, add_key = KEYCTL
    src = (f"import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
           f"r = libc.syscall({keyctl}, 1, b'lumos-adv-ring')\nprint('join', r, ctypes.get_errno())\n"
           f"r = libc.syscall({add_key}, b'user', b'k', b'secret', 6, -3)\nprint('add', r, ctypes.get_errno())\n")
    first, second = run_script(src, LIM), run_script(src, LIM)
    for v in (first, second):
        assert v.exit_reason == "ok" and "join -1 1" in v.stdout and "add -1 1" in v.stdout, v.stdout
    assert first.isolation["keyring"] == "blocked by seccomp"


@pytest.mark.isolation
def test_aggregate_memory_is_capped():
    _need_full_isolation()
    lim = SandboxLimits(wall_time=8.0, cpu_time=4.0, memory_mb=256, total_memory_mb=220, max_processes=16)
    if run_script("pass\n", lim).isolation.get("cgroup") == "none":
        pytest.skip("no cgroup leaf on this host: only per-process rlimits (the verdict says cgroup=none)")
    kids = ("import os, time\npids = []\nfor _ in range({n}):\n    pid = os.fork()\n    if pid == 0:\n"
            "        b = bytearray(100 << 20)\n        for i in range(0, len(b), 4096):\n            b[i] = 1\n"
            "        time.sleep(0.5)\n        os._exit(0)\n    pids.append(pid)\n"
            "for p in pids:\n    os.waitpid(p, 0)\nprint('survived')\n")
    memfd = "import os\nfd = os.memfd_create('x')\nos.ftruncate(fd, 768 << 20)\nprint('memfd ok')\n"
    shm = ("import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\nlibc.shmget.restype = ctypes.c_int\n"
           "i = libc.shmget(0, ctypes.c_size_t(1 << 30), 0o1600)\nprint('shm', i)\n")
    honest, children, mfd, sysv = _map([SandboxJob("script", source=s, limits=lim)
                                        for s in (kids.format(n=1), kids.format(n=4), memfd, shm)])
    assert honest.exit_reason == "ok" and "survived" in honest.stdout, (honest.exit_reason, honest.stderr)
    assert children.exit_reason == "memory" and children.memory_peak_kb <= 221 * 1024
    assert "memfd ok" not in mfd.stdout and "PermissionError" in mfd.stderr
    assert "shm -1" in sysv.stdout


@pytest.mark.isolation
def test_cpu_bandwidth_is_capped_per_sandbox():
    # two busy processes (a loop of fixed work, no clock) under a 0.1-core cap: the kernel's own counter of
    # throttled CFS periods says the cap held them back; with a 4-core cap the same work is never throttled
    hog = ("import os\nfor _ in range(1):\n    if os.fork() == 0:\n        break\nx = 0\n"
           "for i in range(400_000):\n    x += i\ntry:\n    while True:\n        os.wait()\n"
           "except ChildProcessError:\n    pass\nprint('done')\n")
    lim = SandboxLimits(wall_time=20.0, cpu_time=10.0, cpu_cores=0.1)
    capped, free = _map([SandboxJob("script", source=hog, limits=lim),
                         SandboxJob("script", source=hog, limits=dataclasses.replace(lim, cpu_cores=4.0))])
    if not capped.isolation.get("cgroup_cpu"):
        pytest.skip("no cgroup cpu controller here: the verdict reports cgroup_cpu=False")
    assert capped.exit_reason == free.exit_reason == "ok" and capped.stdout.count("done") == 2, capped.stderr
    assert capped.cpu_throttled > 0 and free.cpu_throttled == 0, (capped.cpu_throttled, free.cpu_throttled)


@pytest.mark.isolation
def test_disk_total_and_inodes_are_capped():
    _need_full_isolation()
    lim = SandboxLimits(wall_time=8.0, cpu_time=6.0, disk_mb=32, max_files=2000, max_file_mb=16)
    big = "for i in range(20):\n    open(f'f{i}', 'wb').write(b'x' * (8 << 20))\nprint('wrote all')\n"
    many = "for i in range(5000):\n    open(f'e{i}', 'w').close()\nprint('wrote all')\n"
    honest, b, m = _map([SandboxJob("script", source=s, limits=lim)
                         for s in ("open('a', 'wb').write(b'x' * (8 << 20))\nprint('fine')\n", big, many)])
    assert honest.exit_reason == "ok" and honest.stdout == "fine\n"
    for v in (b, m):
        assert v.exit_reason == "output_limit" and "wrote all" not in v.stdout, (v.exit_reason, v.stderr[-300:])


# ----------------------------------------------------------------------------------------- host death
HOST = textwrap.dedent("""
    import sys
    sys.path.insert(0, {src!r})
    from lumos.sandbox import SandboxLimits, run_script
    print('started', flush=True)
    run_script("import time\\nprint('in', flush=True)\\ntime.sleep(60)\\n", SandboxLimits(wall_time=60, cpu_time=60))
""")


def _descendants(pid):
    kids = {}
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open(f"/proc/{p}/stat") as f:
                    kids.setdefault(int(f.read().rsplit(")", 1)[1].split()[1]), []).append(int(p))
            except (OSError, IndexError, ValueError):
                pass
    out, todo = [], [pid]
    while todo:
        for k in kids.get(todo.pop(), []):
            out.append(k)
            todo.append(k)
    return out


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.isolation
def test_host_death_kills_the_sandbox_and_leftovers_are_swept():
    _need_full_isolation()
    src = os.path.join(os.path.dirname(__file__), "..", "..", "..", "src")
    host = subprocess.Popen([sys.executable, "-c", HOST.format(src=os.path.abspath(src))], stdout=subprocess.PIPE)
    try:
        assert host.stdout.readline().strip() == b"started"
        tree: list[int] = []
        for _ in range(100):  # until the candidate is running (a process of a sandbox uid under the host)
            time.sleep(0.05)
            tree = _descendants(host.pid)
            if any(os.stat(f"/proc/{p}").st_uid >= 2_000_000 for p in tree if os.path.exists(f"/proc/{p}")):
                break
        assert tree
        leftovers = [n for n in os.listdir(tempfile.gettempdir()) if f"-{host.pid}-" in n]
        assert leftovers
    finally:
        host.kill()
        host.wait()
    end = time.monotonic() + 5
    while any(_alive(p) for p in tree) and time.monotonic() < end:
        time.sleep(0.05)
    assert not [p for p in tree if _alive(p)]
    sweep_leftovers(force=True)
    assert not [n for n in os.listdir(tempfile.gettempdir()) if f"-{host.pid}-" in n]
    assert run_script("print(1)\n", LIM).stdout == "1\n"  # and the next job runs normally


# ---------------------------------------------------------------------------- deep trees, parser bombs
def test_deep_directories_are_removed(tmp_path):
    deep = "import os\nfor _ in range(1100):\n    os.mkdir('d')\n    os.chdir('d')\nprint('deep')\n"
    base = tempfile.mkdtemp(prefix="lumos-adv-deep-")
    try:
        os.chmod(base, 0o755)
        v = run_job(SandboxJob("script", source=deep, limits=LIM, namespaces=False), base_dir=base)
        assert v.stdout == "deep\n" and os.listdir(base) == []
        honest = run_job(SandboxJob("script", source="print('x')\n", limits=LIM), base_dir=base)
        assert honest.stdout == "x\n" and os.listdir(base) == []
    finally:
        rmtree(base)
    # the remover alone: deeper than the recursion limit, longer than PATH_MAX, an unreadable level
    top = tmp_path / "t"
    fd = os.open(tmp_path, os.O_RDONLY)
    os.mkdir("t", dir_fd=fd)
    cur = os.open("t", os.O_RDONLY, dir_fd=fd)
    os.close(fd)
    for i in range(1100):
        os.mkdir("d" * 100, dir_fd=cur)
        nxt = os.open("d" * 100, os.O_RDONLY, dir_fd=cur)
        open(f"/proc/self/fd/{nxt}/f", "w").close()
        if i == 500:
            os.chmod("d" * 100, 0o000, dir_fd=cur)
        os.close(cur)
        cur = nxt
    os.close(cur)
    assert rmtree(top) is True and not top.exists()
    assert rmtree(tmp_path / "missing") is True


def test_parser_bombs_cannot_raise():
    bomb = b"[" * 100_000 + b"\n" + b"{" * 100_000 + b"\n" + b"x" * (3 << 20) + b"\n" + b'{"test": "t", "passed": true}\n'
    assert parse_lines(bomb) == [{"test": "t", "passed": True}]
    bufs = {"stdout": bytearray(), "stderr": bytearray(), "results": bytearray(b'{"tests": ["t"]}\n' + bomb),
            "status": bytearray(b'{"exit": {"code": "0", "signal": []}}\n' + bomb)}
    v = build_verdict("tests", bufs, {"stdout": False, "stderr": False}, None, LIM, 0.1, None)
    assert v.exit_reason in ("ok", "crash") and v.passed == ["t"]
    nested = "def f(x):\n    v = 0\n    for _ in range(100000):\n        v = [v]\n    return v\n"
    writer = ("import os\nfor fd in range(3, 64):\n    try:\n        os.write(fd, b'[' * 100000 + b'\\n')\n"
              "    except OSError:\n        pass\n")
    honest, deep, raw, script = _map(_tests_jobs([nested, writer + WRONG]) + [SandboxJob("script", source=writer, limits=LIM)])
    assert honest.all_passed
    assert deep.failed == ["test_secret", "test_small"] and deep.exit_reason == "ok"
    assert raw.failed == ["test_secret", "test_small"]
    assert script.exit_reason == "ok"


def test_prefix_names_carry_the_host_pid():
    v = run_script("import os\nprint(os.getcwd())\n", LIM)
    assert os.path.basename(v.stdout.strip()).startswith(f"{PREFIX}{os.getpid()}-")


@pytest.mark.isolation
def test_dangerous_syscalls_are_refused():
    v = _need_full_isolation()
    if not v.isolation.get("seccomp"):
        pytest.skip(f"no seccomp filter here: {v.isolation.get('seccomp_note')}")
    src = ("import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\n"
           "def show(name, r):\n    print(name, r, ctypes.get_errno())\n"
           "show('unshare-user', libc.unshare(0x10000000))\n"
           "show('unshare-net', libc.unshare(0x40000000))\n"
           "show('mount', libc.mount(b'none', b'/proc', b'proc', 0, None))\n"
           "show('ptrace', libc.ptrace(16, 1, 0, 0))\n"  # PTRACE_ATTACH to PID 1
           "show('chroot', libc.chroot(b'/'))\n"
           "print('nnp', [l for l in open('/proc/self/status') if l.startswith(('NoNewPrivs', 'Seccomp:'))])\n")
    honest = run_script("import os, threading, subprocess\nt = threading.Thread(target=print, args=('thread',))\n"
                        "t.start()\nt.join()\nprint(subprocess.run(['python3', '-c', 'print(2)'], capture_output=True)"
                        ".returncode in (0, 2))\nif os.fork() == 0:\n    os._exit(0)\nprint('forked')\n", LIM)
    attack = run_script(src, LIM)
    assert honest.exit_reason == "ok" and "thread" in honest.stdout and "forked" in honest.stdout, honest.stderr
    for name in ("unshare-user", "unshare-net", "mount", "ptrace", "chroot"):
        assert f"{name} -1 1\n" in attack.stdout, attack.stdout  # EPERM
    assert "NoNewPrivs:\\t1" in attack.stdout and "Seccomp:\\t2" in attack.stdout


# ------------------------------------------------------------------------- round 3 (issue 27): exceptions
UNITTEST_TESTS = (f"import unittest\n\nclass T(unittest.TestCase):\n    def test_secret(self):\n"
                  f"        self.assertEqual(f(3), {SECRET})\n")
TABLE_TESTS = (f"CASES = [(3, {SECRET}), (0, 0)]\n\ndef test_table():\n"
               f"    for got, want in zip(map(f, [x for x, _ in CASES]), [w for _, w in CASES]):\n"
               f"        assert got == want\n")
CONTROL_FLOW = [
    # unittest's internal "stop" exception: unittest would record the test as a success
    ("unittest", "import unittest.case\ndef f(x):\n    raise unittest.case._ShouldStop()\n"),
    ("unittest", "import unittest\ndef f(x):\n    raise unittest.SkipTest('later')\n"),
    # StopIteration ends the tests' map/zip loop early: a table-driven test would run no assertion
    ("table", "def f(x):\n    raise StopIteration\n"),
    ("table", "class Done(StopIteration):\n    pass\ndef f(x):\n    raise Done()\n"),
    ("table", "def f(x):\n    raise StopAsyncIteration\n"),
    ("table", "def f(x):\n    raise GeneratorExit\n"),
    ("table", "def f(x):\n    raise SystemExit(0)\n"),
    ("table", "def f(x):\n    raise KeyboardInterrupt\n"),
    ("table", "class Out(BaseException):\n    pass\ndef f(x):\n    raise Out()\n"),
]


def test_control_flow_exceptions_fail_the_test_and_ordinary_ones_reach_it():
    jobs = [SandboxJob("tests", source=HONEST, tests=t, limits=LIM) for t in (UNITTEST_TESTS, TABLE_TESTS)]
    jobs += [SandboxJob("tests", source=src, tests=UNITTEST_TESTS if kind == "unittest" else TABLE_TESTS, limits=LIM)
             for kind, src in CONTROL_FLOW]
    honest_unittest, honest_table, *attacks = _map(jobs)
    assert honest_unittest.all_passed and honest_table.all_passed, (honest_unittest.errors, honest_table.errors)
    for (_, src), v in zip(CONTROL_FLOW, attacks):
        assert v.passed == [] and len(v.failed) == 1, (src, v.passed, v.errors)
        assert "CandidateRaised" in next(iter(v.errors.values())), (src, v.errors)
    # the honest twins: ordinary failures keep their classes (built-in, standard library, the candidate's own
    # mirrored on an allowed base); a candidate iterator's StopIteration still just ends the iteration
    lib = ("import json\nclass Missing(KeyError):\n    pass\n"
           "def bad(kind):\n    if kind == 'json':\n        json.loads('{')\n    if kind == 'assert':\n"
           "        assert kind == 'x', 'precondition'\n    if kind == 'missing':\n        raise Missing(kind)\n"
           "    raise ValueError(kind)\n"
           "class Count:\n    def __init__(self, n):\n        self.i, self.n = 0, n\n    def __iter__(self):\n"
           "        return self\n    def __next__(self):\n        self.i += 1\n        if self.i > self.n:\n"
           "            raise StopIteration\n        return self.i\n")
    tests = ("import json, unittest\n\nclass T(unittest.TestCase):\n    def test_classes(self):\n"
             "        with self.assertRaises(json.JSONDecodeError):\n            bad('json')\n"
             "        with self.assertRaises(AssertionError):\n            bad('assert')\n"
             "        with self.assertRaises(KeyError):\n            bad('missing')\n"
             "        with self.assertRaises(solution.Missing):\n            bad('missing')\n"
             "        with self.assertRaises(ValueError):\n            bad('v')\n\n"
             "def test_iteration():\n    assert list(Count(3)) == [1, 2, 3]\n    it = iter(Count(1))\n"
             "    assert next(it) == 1\n    try:\n        next(it)\n    except StopIteration:\n        pass\n"
             "    else:\n        raise AssertionError('no StopIteration')\n")
    v = run_tests(lib, tests, LIM)
    assert v.all_passed and v.n_tests == 2, v.errors


def test_inventory_repair_with_the_bug_left_in_gets_nothing():
    """The issue's attack: ``unittest.case._ShouldStop`` from the constructor made both tests of the built-in
    ``inventory`` repair task pass with the bug still there."""
    from lumos.rl.tasks.code.problems import REPAIR_REPOS

    repo = next(r for r in REPAIR_REPOS if r["name"] == "inventory")
    attack = dict(repo["files"], **{"inventory.py": "import unittest.case\n" + repo["files"]["inventory.py"].replace(
        "        self.counts = {}\n", "        raise unittest.case._ShouldStop()\n")})
    fixed = dict(repo["files"], **{"inventory.py": repo["files"]["inventory.py"].replace("n > have + 1", "n > have")})
    honest, v = _map([SandboxJob("repo", files=f, test_files=repo["test_files"], limits=LIM) for f in (fixed, attack)])
    assert honest.all_passed, honest.errors
    assert v.passed == [] and sorted(v.failed) == sorted(honest.passed), (v.passed, v.errors)


# ----------------------------------------------------------------------------- round 3: names and builtins
def _forged_hello(names_json: str) -> str:
    """Candidate source that writes its own hello (``names_json``) to every pipe it can, before the real one."""
    return ("import os as _os\n"
            f"_hello = b'{{\"load_error\": null, \"memory\": false, \"names\": {names_json}, "
            "\"module\": {\"$h\": [1, \"module\", \"module\", []]}}\\n'\n"
            "for _fd in range(3, 64):\n    try:\n        _os.write(_fd, _hello)\n    except OSError:\n        pass\n")


def test_builtins_never_come_from_the_candidate():
    # handle ids of the real server: 1 the module, then its public non-plain names in order (sorted 2, f 3)
    fake_sorted = "def sorted(xs):\n    return [1, 2, 3]\ndef f(x):\n    return x\n"
    builtins_dict = ('{"__builtins__": {"$d": [["sorted", {"$h": [2, "callable", "function", []]}]]}, '
                     '"f": {"$h": [3, "callable", "function", []]}, '
                     '"report": {"$h": [2, "callable", "function", []]}}')
    tests = "def test_sorted():\n    assert sorted(f([3, 1, 2, 9])) == [1, 2, 3]\n"
    honest_tests = "def test_sorted():\n    assert sorted(f([3, 1, 2])) == [1, 2, 3]\n"
    hello = SandboxJob("tests", source=_forged_hello(builtins_dict) + fake_sorted, tests=tests, limits=LIM)
    honest = SandboxJob("tests", source=fake_sorted, tests=honest_tests, limits=LIM)
    # repository mode: `from lib import *` with an __all__ naming builtins and dunders
    star = {"lib.py": "__all__ = ['sorted', 'f', '__builtins__', 'len']\n" + fake_sorted + "len = 5\n",
            "test_lib.py": "from lib import *\n\ndef test_sorted():\n    assert sorted(f([3, 1, 2, 9])) == [1, 2, 3]\n"
                           "    assert len([1]) == 1\n"}
    star_honest = dict(star, **{"test_lib.py": star["test_lib.py"].replace("[3, 1, 2, 9]", "[3, 1, 2]")})
    v_hello, v_honest, v_star, v_star_honest = _map(
        [hello, honest] + [SandboxJob("repo", files=f, test_files=["test_lib.py"], limits=LIM) for f in (star, star_honest)])
    assert v_honest.all_passed and v_star_honest.all_passed, (v_honest.errors, v_star_honest.errors)
    assert v_hello.failed == ["test_sorted"], v_hello.errors
    assert v_star.failed == ["test_lib.py::test_sorted"], v_star.errors


# ----------------------------------------------------------------------------- round 3: test collection
COLLECTION_TESTS = {
    # a TestCase subclass through a base of another name, and through an alias of TestCase
    "base": (f"import unittest\n\nclass Base(unittest.TestCase):\n    pass\n\nclass TestX(Base):\n"
             f"    def test_secret(self):\n        self.assertEqual(f(3), {SECRET})\n"),
    "alias": (f"from unittest import TestCase as TC\n\nclass T(TC):\n    def test_secret(self):\n"
              f"        self.assertEqual(f(3), {SECRET})\n"),
    # async tests run to completion, in their own event loop (pytest-asyncio's way; IsolatedAsyncioTestCase's)
    "async": f"async def test_secret():\n    assert f(3) == {SECRET}\n",
    "isolated": (f"import unittest\n\nclass T(unittest.IsolatedAsyncioTestCase):\n    async def test_secret(self):\n"
                 f"        self.assertEqual(f(3), {SECRET})\n"),
}
REFUSED_TESTS = {
    # bodies that a call would not run: refused (a failed test that says why), for every candidate
    "generator": f"def test_secret():\n    assert f(3) == {SECRET}\n    yield\n",
    "async generator": f"async def test_secret():\n    assert f(3) == {SECRET}\n    yield\n",
    "async method": (f"import unittest\n\nclass T(unittest.TestCase):\n    async def test_secret(self):\n"
                     f"        self.assertEqual(f(3), {SECRET})\n"),
    "returns a coroutine": (f"async def _check():\n    assert f(3) == {SECRET}\n\n"
                            f"def test_secret():\n    return _check()\n"),
}


def test_tests_are_collected_by_loading_them_not_by_their_text():
    kinds = list(COLLECTION_TESTS) + list(REFUSED_TESTS)
    tests = [COLLECTION_TESTS.get(k) or REFUSED_TESTS[k] for k in kinds]
    jobs = [SandboxJob("tests", source=src, tests=t, limits=LIM) for t in tests for src in (HONEST, WRONG)]
    v = _map(jobs)
    for i, kind in enumerate(kinds):
        honest, wrong = v[2 * i], v[2 * i + 1]
        assert wrong.n_tests == 1 and wrong.passed == [], (kind, wrong.passed, wrong.errors)
        if kind in COLLECTION_TESTS:
            assert honest.all_passed, (kind, honest.errors)
        else:
            assert honest.passed == [] and next(iter(honest.errors.values())).startswith("AssertionError: refused"), \
                (kind, honest.errors)
    # zero tests is never a pass
    empty = run_tests(HONEST, "X = 1\n", LIM)
    assert empty.n_tests == 0 and not empty.all_passed and empty.pass_fraction == 0.0


def test_a_test_file_that_does_not_load_is_a_failed_test():
    tests = "from solution import g\n\ndef test_secret():\n    assert g(3) == 1\n"
    v = run_tests(HONEST, tests, LIM)
    assert v.passed == [] and v.failed == ["hidden_tests.py"] and "ImportError" in v.load_error, v.errors
