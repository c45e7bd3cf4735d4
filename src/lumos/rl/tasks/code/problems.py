"""Built-in problems for the code tasks (:mod:`lumos.rl.tasks.code`), generated from Python strings.

- :data:`FAMILIES`: parameterised function-synthesis families (string, list, arithmetic). Each gives a
  prompt, a reference implementation (source text) and random test inputs; expected outputs come from
  running the reference on the host (it is our own code).
- :data:`REPAIR_REPOS`: small repositories with a bug and a failing test; the reference fix is the
  ``difflib`` unified diff between the buggy and the fixed file, computed at import.
"""

from __future__ import annotations

import difflib
import random
import string
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["Family", "FAMILIES", "REPAIR_REPOS"]


@dataclass(frozen=True)
class Family:
    """A parameterised function: ``params(rng)`` draws the parameters, ``inputs(rng)`` one argument tuple."""

    name: str
    func: str
    describe: Callable[..., str]
    reference: Callable[..., str]
    params: Callable[[random.Random], dict[str, Any]]
    inputs: Callable[[random.Random], tuple]


def _ints(rng: random.Random, n_max: int = 8, lo: int = -20, hi: int = 20) -> list[int]:
    return [rng.randint(lo, hi) for _ in range(rng.randint(0, n_max))]


def _text(rng: random.Random, alphabet: str = "abcxyz ", n_max: int = 12) -> str:
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, n_max)))


_FAMILY_LIST = [
    Family(
        "affine", "f",
        lambda a, b: f"Write a function f(x) that returns {a} * x + {b} for an int x.",
        lambda a, b: f"def f(x):\n    return {a} * x + {b}\n",
        lambda rng: {"a": rng.choice([-5, -4, -3, -2, 2, 3, 4, 5]), "b": rng.randint(-9, 9)},
        lambda rng: (rng.randint(-50, 50),),
    ),
    Family(
        "sum_multiples", "sum_multiples",
        lambda k: f"Write a function sum_multiples(xs) that returns the sum of the ints in the list xs that are "
                  f"divisible by {k} (0 for none).",
        lambda k: f"def sum_multiples(xs):\n    return sum(x for x in xs if x % {k} == 0)\n",
        lambda rng: {"k": rng.randint(2, 5)},
        lambda rng: (_ints(rng),),
    ),
    Family(
        "count_char", "count_char",
        lambda c: f"Write a function count_char(s) that returns how many times the character {c!r} occurs in "
                  f"the string s.",
        lambda c: f"def count_char(s):\n    return s.count({c!r})\n",
        lambda rng: {"c": rng.choice("abcxyz")},
        lambda rng: (_text(rng),),
    ),
    Family(
        "rotate_left", "rotate_left",
        lambda k: f"Write a function rotate_left(xs) that returns the list xs rotated left by {k} positions "
                  f"(wrapping around; the empty list stays empty).",
        lambda k: f"def rotate_left(xs):\n    if not xs:\n        return []\n    k = {k} % len(xs)\n"
                  f"    return xs[k:] + xs[:k]\n",
        lambda rng: {"k": rng.randint(1, 3)},
        lambda rng: (_ints(rng, 6, 0, 9),),
    ),
    Family(
        "caesar", "caesar",
        lambda k: f"Write a function caesar(s) that shifts every lowercase letter of s forward by {k} in the "
                  f"alphabet (z wraps to a) and leaves other characters unchanged.",
        lambda k: f"def caesar(s):\n    return ''.join(chr((ord(c) - 97 + {k}) % 26 + 97) if 'a' <= c <= 'z' "
                  f"else c for c in s)\n",
        lambda rng: {"k": rng.randint(1, 25)},
        lambda rng: (_text(rng, string.ascii_lowercase + " !"),),
    ),
    Family(
        "clip", "clip",
        lambda lo, hi: f"Write a function clip(xs) that returns a new list with every int of xs clipped to the "
                       f"range [{lo}, {hi}].",
        lambda lo, hi: f"def clip(xs):\n    return [min(max(x, {lo}), {hi}) for x in xs]\n",
        lambda rng: (lambda lo: {"lo": lo, "hi": lo + rng.randint(0, 15)})(rng.randint(-10, 5)),
        lambda rng: (_ints(rng),),
    ),
    Family(
        "longer_words", "longer_words",
        lambda k: f"Write a function longer_words(s) that returns the list of words of s (split on whitespace) "
                  f"longer than {k} characters, in order.",
        lambda k: f"def longer_words(s):\n    return [w for w in s.split() if len(w) > {k}]\n",
        lambda rng: {"k": rng.randint(1, 4)},
        lambda rng: (_text(rng, "ab  ", 20),),
    ),
    Family(
        "digit_sum", "digit_sum",
        lambda b: f"Write a function digit_sum(n) that returns the sum of the base-{b} digits of the "
                  f"non-negative int n.",
        lambda b: f"def digit_sum(n):\n    total = 0\n    while n:\n        n, d = divmod(n, {b})\n"
                  f"        total += d\n    return total\n",
        lambda rng: {"b": rng.choice([2, 3, 10])},
        lambda rng: (rng.randint(0, 10_000),),
    ),
]
FAMILIES: dict[str, Family] = {f.name: f for f in _FAMILY_LIST}


def _repo(name: str, description: str, files: dict[str, str], bug: tuple[str, str, str], failing: list[str]) -> dict:
    """A repository whose ``bug[0]`` file is fixed by replacing ``bug[2]`` (correct) with ``bug[1]`` (buggy)."""
    path, buggy, fixed = bug
    good = files[path]
    if fixed not in good:
        raise ValueError(f"built-in repo {name}: fix text not found in {path}")
    broken = dict(files, **{path: good.replace(fixed, buggy, 1)})
    fix = "".join(difflib.unified_diff(broken[path].splitlines(True), good.splitlines(True),
                                       f"a/{path}", f"b/{path}"))
    test_files = sorted(p for p in files if p.rsplit("/", 1)[-1].startswith("test_"))
    return {"name": name, "files": broken, "test_files": test_files, "failing": failing,
            "description": description, "command": None, "fix": fix}


REPAIR_REPOS: list[dict[str, Any]] = [
    _repo("stats", "stats.mean returns the wrong value.", {
        "stats.py": "def mean(xs):\n    if not xs:\n        raise ValueError('mean of empty list')\n"
                    "    return sum(xs) / len(xs)\n\n\ndef median(xs):\n    s = sorted(xs)\n    n = len(s)\n"
                    "    mid = n // 2\n    return s[mid] if n % 2 else (s[mid - 1] + s[mid]) / 2\n",
        "test_stats.py": "from stats import mean, median\n\n\ndef test_mean():\n    assert mean([1, 2, 3, 6]) == 3\n\n\n"
                         "def test_median():\n    assert median([9, 1, 2]) == 2\n    assert median([10, 1, 2, 3]) == 2.5\n",
    }, ("stats.py", "sum(xs) / (len(xs) - 1)", "sum(xs) / len(xs)"), ["test_stats.py::test_mean"]),
    _repo("textutil", "slugify keeps upper-case letters.", {
        "textutil.py": "import re\n\n\ndef slugify(title):\n    words = re.findall(r'[A-Za-z0-9]+', title)\n"
                       "    return '-'.join(w.lower() for w in words)\n\n\ndef word_count(text):\n"
                       "    return len(text.split())\n",
        "test_textutil.py": "from textutil import slugify, word_count\n\n\ndef test_slugify():\n"
                            "    assert slugify('Hello, World 2') == 'hello-world-2'\n\n\ndef test_word_count():\n"
                            "    assert word_count(' a b  c ') == 3\n",
    }, ("textutil.py", "'-'.join(w for w in words)", "'-'.join(w.lower() for w in words)"),
        ["test_textutil.py::test_slugify"]),
    _repo("inventory", "Removing more items than are in stock must raise ValueError.", {
        "inventory.py": "class Inventory:\n    def __init__(self):\n        self.counts = {}\n\n"
                        "    def add(self, item, n=1):\n        self.counts[item] = self.counts.get(item, 0) + n\n\n"
                        "    def remove(self, item, n=1):\n        have = self.counts.get(item, 0)\n"
                        "        if n > have:\n            raise ValueError(f'only {have} {item} in stock')\n"
                        "        self.counts[item] = have - n\n",
        "test_inventory.py": "import unittest\n\nfrom inventory import Inventory\n\n\n"
                             "class InventoryTest(unittest.TestCase):\n    def test_add(self):\n"
                             "        inv = Inventory()\n        inv.add('apple', 2)\n"
                             "        self.assertEqual(inv.counts['apple'], 2)\n\n    def test_overdraw(self):\n"
                             "        inv = Inventory()\n        inv.add('apple')\n"
                             "        with self.assertRaises(ValueError):\n            inv.remove('apple', 2)\n",
    }, ("inventory.py", "if n > have + 1:", "if n > have:"), ["test_inventory.py::InventoryTest.test_overdraw"]),
    _repo("intervals", "merge does not join intervals that touch.", {
        "intervals.py": "def merge(intervals):\n    out = []\n    for lo, hi in sorted(intervals):\n"
                        "        if out and lo <= out[-1][1]:\n            out[-1][1] = max(out[-1][1], hi)\n"
                        "        else:\n            out.append([lo, hi])\n    return [tuple(i) for i in out]\n",
        "test_intervals.py": "from intervals import merge\n\n\ndef test_overlap():\n"
                             "    assert merge([(1, 3), (2, 5)]) == [(1, 5)]\n\n\ndef test_touching():\n"
                             "    assert merge([(1, 2), (2, 4), (6, 7)]) == [(1, 4), (6, 7)]\n\n\n"
                             "def test_empty():\n    assert merge([]) == []\n",
    }, ("intervals.py", "lo < out[-1][1]", "lo <= out[-1][1]"), ["test_intervals.py::test_touching"]),
    _repo("calc", "calc.ops.power is wrong (a package in a sub-directory).", {
        "calc/__init__.py": "from calc.ops import add, power\n",
        "calc/ops.py": "def add(a, b):\n    return a + b\n\n\ndef power(a, b):\n    return a ** b\n",
        "tests/test_ops.py": "from calc import add, power\n\n\ndef test_add():\n    assert add(2, 3) == 5\n\n\n"
                             "def test_power():\n    assert power(2, 10) == 1024\n",
    }, ("calc/ops.py", "return a * b", "return a ** b"), ["tests/test_ops.py::test_power"]),
]
