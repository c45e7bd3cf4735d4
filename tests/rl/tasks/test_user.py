import json
import sys

import pytest

from lumos.core.errors import LumosError
from lumos.rl.tasks import CallableTask, JsonlTask, Problem, Reward, resolve_task
from lumos.rl.tasks.dataset import DatasetTask


def test_jsonl_task(tmp_path):
    f = tmp_path / "qa.jsonl"
    f.write_text('{"prompt": "2+2=", "answer": 4}\n\n{"prompt": "cap?", "answer": "Paris", "demonstration": "Paris"}\n')
    t = resolve_task(str(f))
    assert isinstance(t, DatasetTask) and t.name == "data:qa.jsonl"
    ps = t.generate(4, seed=0)
    assert sorted(p.prompt for p in ps) == ["2+2=", "2+2=", "cap?", "cap?"]   # cycles through all problems
    p4 = next(p for p in ps if p.prompt == "2+2=")
    assert [r.correct for r in t.score([p4, p4], ["4", "5"])] == [True, False]
    assert t.demonstration(next(p for p in ps if p.prompt == "cap?")) == "Paris"
    with pytest.raises(LumosError, match=r"rows\[1\]: match='number' compares numbers, but the answer 'Paris'"):
        JsonlTask(f, match="number")      # refused before any rollout, not when the row is first scored
    g = tmp_path / "num.jsonl"
    g.write_text('{"prompt": "2+2=", "answer": 4}\n{"prompt": "half?", "answer": " 0.5 "}\n')
    tn = JsonlTask(g, match="number")
    half = next(p for p in tn.generate(2, seed=0) if p.prompt == "half?")
    assert [r.correct for r in tn.score([half, half, half], ["so 0.50", "0.5 then 2", "none"])] == [True, False, False]
    assert tn.score([p4], ["the answer is 4"])[0].correct


@pytest.mark.parametrize("content,match", [
    ("", "contains no rows"),
    ('{"prompt": "a", "answer": 1}\nnot json\n', r"qa.jsonl:2: not valid JSON"),
    ('{"answer": 1}\n', r"qa.jsonl:1: no 'prompt' column"),
    ('{"prompt": "a"}\n', r"rows\[0\]: no 'answer' column"),
    ('{"prompt": "a", "answer": {"x": 1}}\n', r"the answer must be a string or a number"),
    ('{"prompt": "a", "answer": [1]}\n', r"the answer must be a string or a number"),
    ('{"prompt": "a", "answer": NaN}\n', r"NaN is not a JSON value"),
    ('{"prompt": "a", "answer": 1, "answer": 2}\n', r"the key 'answer' appears twice"),
])
def test_bad_task_files(tmp_path, content, match):
    f = tmp_path / "qa.jsonl"
    f.write_text(content)
    with pytest.raises(LumosError, match=match):
        JsonlTask(f)


def test_missing_file_and_bad_factory(tmp_path):
    with pytest.raises(LumosError, match="Data file not found"):
        resolve_task(str(tmp_path / "none.jsonl"))
    with pytest.raises(LumosError, match="no module named 'no_such_module_xyz'"):
        resolve_task("no_such_module_xyz:make")
    with pytest.raises(LumosError, match="returned int"):
        resolve_task("builtins:int")


def test_callable_task_and_bad_verifiers():
    t = CallableTask([{"prompt": "hi", "answer": "yo"}], verifier=lambda p, c: c == p.answer)
    p = t.generate(1, 0)[0]
    assert [r.total for r in t.score([p, p], ["yo", "no"])] == [1.0, 0.0]
    t2 = CallableTask([Problem("q", 1)], verifier=lambda p, c: Reward(0.5, False, 1.0))
    assert t2.score([p], ["x"])[0].total == 0.5
    with pytest.raises(LumosError, match="must return a bool, a finite number or a Reward"):
        CallableTask([Problem("q")], verifier=lambda p, c: "yes").score([Problem("q")], ["x"])

    def broken(p, c):
        raise KeyError("boom")

    with pytest.raises(LumosError, match="broken of task 'callable' raised KeyError"):
        CallableTask([Problem("q")], verifier=broken).score([Problem("q")], ["x"])
    with pytest.raises(LumosError, match="'verifier' parameter"):
        CallableTask([Problem("q")], verifier=3)
    with pytest.raises(LumosError, match="'problems' parameter"):
        CallableTask([], verifier=broken)


def test_module_factory(tmp_path, monkeypatch):
    (tmp_path / "my_task_mod.py").write_text(
        "from lumos.rl.tasks import CallableTask, Problem\n"
        "def make(): return CallableTask([Problem('a', 'b')], verifier=lambda p, c: c == 'b', name='mine')\n")
    monkeypatch.chdir(tmp_path)            # no PYTHONPATH: the current directory is searched, as `python -m` does
    t = resolve_task("my_task_mod:make")
    assert t.name == "mine"
    sys.modules.pop("my_task_mod", None)
    json.dumps(t.generate(1, 0)[0].prompt)
    # a .py path works from anywhere
    monkeypatch.chdir("/")
    assert resolve_task(f"{tmp_path / 'my_task_mod.py'}:make").name == "mine"


@pytest.mark.parametrize("spec,match", [
    (":factory", "names no module"),
    (".relative:factory", "relative module names"),
    ("os.path:join", "task factory 'os.path:join' needs the argument"),
    ("jsonl", "task 'jsonl' needs the argument\\(s\\) path"),
])
def test_bad_task_specs(spec, match):
    with pytest.raises(LumosError, match=match):
        resolve_task(spec)


def test_factory_that_raises(tmp_path):
    f = tmp_path / "raising.py"
    f.write_text("def make():\n    raise RuntimeError('no data here')\n")
    with pytest.raises(LumosError, match="raised RuntimeError: no data here"):
        resolve_task(f"{f}:make")


def test_fixed_problem_list_never_evaluates_on_training_prompts():
    train = [Problem("1+1=", 2), Problem("2+2=", 4)]
    t = CallableTask(train, verifier=lambda p, c: c == str(p.answer))
    with pytest.raises(LumosError, match="no held-out ones"):
        t.held_out(4, seed=1)
    held = CallableTask(train, verifier=lambda p, c: True, eval_problems=[{"prompt": "5+5=", "answer": 10}])
    assert [p.prompt for p in held.held_out(4, seed=1)] == ["5+5="]
    gen = CallableTask(lambda n, seed: [Problem(f"{seed}:{i}") for i in range(n)], verifier=lambda p, c: True)
    assert [p.prompt for p in gen.held_out(2, seed=7)] == ["7:0", "7:1"]
