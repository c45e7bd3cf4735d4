"""Fenced-code extraction from completions."""

import pytest

from lumos.rl.tasks.code import extract_code_block
from lumos.rl.tasks.code.common import parses


@pytest.mark.parametrize("text, code, ok", [
    ("```python\nx = 1\n```", "x = 1", True),
    ("intro\n```py\nprint(2)\n```\nmore ```python\ny\n```", "print(2)", True),
    ("```python\ndef f(:\n```", "def f(:", False),
    ("```python\nx = 1\n", None, False),  # unclosed fence
    ("no code at all", None, False),
    ("```rust\nfn main() {}\n```", None, False),
])
def test_extract_code_block(text, code, ok):
    assert extract_code_block(text) == (code, ok)




@pytest.mark.parametrize("text", ["```" * 20_000, "```py\n" * 20_000, "```x\n" + "a" * 100_000,
                                  "```python\n" + "(" * 3000 + "\n```", "```python\n" + "-" * 50_000 + "1\n```"])
def test_hostile_blocks_give_an_answer_not_an_exception(text):
    code, ok = extract_code_block(text)
    assert ok is False or code is not None


def test_parses_turns_parser_failures_into_no():
    assert parses("x = 1") and parses("1 + 2", "eval")
    assert not parses("-" * 100_000 + "1", "eval")  # MemoryError in the parser
    assert not parses("a." * 200_000 + "b", "eval")  # RecursionError
    assert not parses("\x00") and not parses("def f(:")
