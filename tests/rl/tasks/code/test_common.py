"""Fenced-code extraction from completions."""

import pytest

from lumos.rl.tasks.code import extract_code_block


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


