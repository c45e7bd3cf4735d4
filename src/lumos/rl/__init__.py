"""Reinforcement learning with verifiable rewards: CISPO, GRPO, DAPO, GSPO and Dr. GRPO objectives, tasks and the trainer.

Public API::

    from lumos.rl import cispo_loss, grpo_loss, dapo_loss, group_advantages

Heavier parts are imported from their modules: :mod:`lumos.rl.trainer` (``RLTrainer``, ``RLConfig``),
:mod:`lumos.rl.policy` (rollouts from a lumos ``HybridLM`` or any transformers causal LM),
:mod:`lumos.rl.tasks` (built-in and user tasks). The FLOPs calculator is :mod:`lumos.analysis.flops`.
"""

from lumos.core.extras import require_extra

require_extra("lumos.rl", "rl", "report")

from lumos.rl.advantages import dynamic_sampling_mask, group_advantages, overlong_penalty
from lumos.rl.objectives import (
    available_losses,
    cispo_loss,
    dapo_loss,
    dr_grpo_loss,
    get_loss,
    grpo_loss,
    gspo_loss,
)

__all__ = [
    "cispo_loss",
    "grpo_loss",
    "dapo_loss",
    "gspo_loss",
    "dr_grpo_loss",
    "get_loss",
    "available_losses",
    "group_advantages",
    "dynamic_sampling_mask",
    "overlong_penalty",
]
