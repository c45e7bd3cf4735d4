"""Code tasks scored by sandboxed execution (MiniMax-M1's competitive-programming and SWE environments).

Registered tasks (``lumos rl train --task NAME``):

- ``code-expr``: "Write a Python expression equal to N." The answer is the first line of the completion
  (or a fenced code block). Small enough for the built-in byte-level model to learn.
- ``code-functions``: write a function from a parameterised family (string, list and arithmetic); hidden
  unit tests run in the sandbox; reward = fraction of tests passed + 0.1 × format (a well-formed
  ```` ```python ```` block).
- ``code-repair``: a small repository with a failing test; the answer is a unified diff, applied to a copy
  (paths checked, tests protected) and the repository's tests run in the sandbox; reward 1 when the failing
  tests pass and every test that passed before still passes. Built-in repositories (:mod:`.problems`), or
  user tasks from a directory (``get_task("code-repair", root=DIR)``; see :func:`load_repair_dir`), checked
  with ``lumos rl check-tasks DIR`` (:mod:`.check`).

Every ``score`` call runs the batch through one :class:`~lumos.sandbox.SandboxPool`, in order. The sandbox
itself (:mod:`lumos.sandbox`) knows nothing of these tasks.
"""

from lumos.rl.tasks.code.common import SandboxTask, extract_code_block
from lumos.rl.tasks.code.diff import PatchError, apply_patch, parse_unified_diff
from lumos.rl.tasks.code.loader import load_repair_dir
from lumos.rl.tasks.code.repair import RepairTask
from lumos.rl.tasks.code.tasks import ExpressionTask, FunctionTask

__all__ = ["extract_code_block", "SandboxTask", "ExpressionTask", "FunctionTask", "RepairTask", "load_repair_dir",
           "PatchError", "apply_patch", "parse_unified_diff"]
