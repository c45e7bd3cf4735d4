"""RL tasks with exact verifiers. Importing this package registers every built-in task.

Built-in: ``addition``, ``multiplication`` (worked steps), ``countdown``, ``sorting``,
``guess-check`` (a rare fork token decides success), ``jsonl`` (user file).
User tasks: :class:`~lumos.rl.tasks.user.CallableTask`, :class:`~lumos.rl.tasks.dataset.DatasetTask` (rows of a
data file with TRL-style reward functions), :class:`~lumos.rl.tasks.user.JsonlTask`,
:func:`~lumos.rl.tasks.user.resolve_task` (``--task NAME | FILE.jsonl | module:factory``).
"""

from lumos.rl.tasks import (  # noqa: F401  (register the built-in tasks)
    arithmetic,
    code,  # noqa: F401  (sandboxed code tasks: code-expr, code-functions, code-repair)
    countdown,
    fork,  # noqa: F401  (guess-check: the fork-token task of the CISPO study)
    sorting,
    user,
)
from lumos.rl.tasks.base import TASKS, Problem, Reward, Task, available_tasks, get_task, register_task
from lumos.rl.tasks.dataset import DatasetTask
from lumos.rl.tasks.user import CallableTask, JsonlTask, resolve_task

__all__ = [
    "Problem",
    "Reward",
    "Task",
    "TASKS",
    "register_task",
    "get_task",
    "available_tasks",
    "CallableTask",
    "JsonlTask",
    "DatasetTask",
    "resolve_task",
]
