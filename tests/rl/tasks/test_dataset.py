"""DatasetTask: rows → problems, TRL-style reward functions with columns, held-out evaluation never on training rows."""

from __future__ import annotations

import math

import pytest

from lumos.core.errors import LumosError
from lumos.rl.rewards import RewardFunctions
from lumos.rl.tasks.dataset import DatasetTask
from lumos.rl.tasks.user import data_task

ROWS = [{"prompt": f"{i}+1=", "answer": str(i + 1), "tag": i % 2} for i in range(10)]


def test_held_out_rows_are_never_trained_on():
    t = DatasetTask(ROWS, eval_fraction=0.3, split_seed=0)
    train = {p.prompt for p in t.generate(50, seed=1)}
    held = {p.prompt for p in t.held_out(64, seed=2)}
    assert len(held) == 3 and len(train) == 7 and not train & held
    assert train | held == {r["prompt"] for r in ROWS}
    with pytest.raises(LumosError, match="no held-out rows"):
        DatasetTask(ROWS).held_out(4, seed=0)
    explicit = DatasetTask(ROWS, eval_rows=[{"prompt": "x", "answer": "y"}])
    assert [p.prompt for p in explicit.held_out(4, 0)] == ["x"] and len(explicit.train_problems) == 10


def test_default_answer_check_and_demonstrations():
    t = DatasetTask(ROWS[:2], match="number")
    p0 = t.train_problems[0]
    rewards = t.score([p0, p0], ["it is 1", "2"])
    assert [r.correct for r in rewards] == [True, False]
    assert t.demonstration(p0) == "1"


def test_reward_functions_get_columns_and_chat_completions():
    seen = {}

    def fn(prompts, completions, completion_ids, answer, tag, **kw):
        seen.update(prompts=prompts, completions=completions, ids=completion_ids, tag=tag)
        return [None if t else float(c[0]["content"] == a) for c, a, t in zip(completions, answer, tag)]

    rows = [{"prompt": [{"role": "user", "content": "1+1?"}], "answer": "2", "tag": 0},
            {"prompt": [{"role": "user", "content": "2+2?"}], "answer": "4", "tag": 1}]
    t = DatasetTask(rows, rewards=RewardFunctions([fn]))
    ps = t.train_problems
    out = t.score(ps, ["2", "4"], completion_ids=[[5], [6, 7]])
    assert out[0].total == 1.0 and out[0].correct
    assert math.isnan(out[1].total) and out[1].info["unscorable"] and not out[1].correct
    assert seen["completions"] == [[{"role": "assistant", "content": "2"}], [{"role": "assistant", "content": "4"}]]
    assert seen["prompts"] == [r["prompt"] for r in rows] and seen["ids"] == [[5], [6, 7]] and seen["tag"] == [0, 1]


def test_structured_answers_need_a_reward_function():
    rows = [{"prompt": "q", "answer": {"tests": [1]}}]
    with pytest.raises(LumosError, match="answer must be a string or a number"):
        DatasetTask(rows)
    t = DatasetTask(rows, rewards=RewardFunctions([lambda completions, answer, **kw: [float(len(answer[0]))]]))
    assert t.score(t.train_problems, ["x"])[0].total == 1.0


def test_data_task_from_files(tmp_path):
    f, e = tmp_path / "train.jsonl", tmp_path / "eval.csv"
    f.write_text('{"q": "a", "answer": "b"}\n{"q": "c", "answer": "d"}\n')
    e.write_text("q,answer\nz,y\n")
    t = data_task(f, prompt_column="q", eval_data=e, eval_fraction=0.5)
    assert [p.prompt for p in t.train_problems] == ["a", "c"] and [p.prompt for p in t.held_out(9, 0)] == ["z"]


def test_a_column_named_like_a_reward_argument_is_refused():
    """A 'completions' column would shadow (or be shadowed by) the model's completions: refused, never guessed."""
    from lumos.rl.rewards import RewardFunctions

    def fn(completions, **kw):
        return [float(c == "good") for c in completions]

    rows = [{"prompt": "p", "completions": "bad-from-column"}]
    with pytest.raises(LumosError, match=r"the data column 'completions' has the name of an argument"):
        DatasetTask(rows, rewards=RewardFunctions([fn]))
    t = DatasetTask([{"prompt": "p", "note": "n"}], rewards=RewardFunctions([fn]))
    assert t.score(t.train_problems, ["good"])[0].total == 1.0
