"""Analysis from a config alone (no weights built): parameter counts, generation FLOPs and deployment plans.

:mod:`~lumos.analysis.sizes` counts parameters by part, :mod:`~lumos.analysis.flops` compares the generation FLOPs
of MiniMax-M1 with DeepSeek-R1, and :mod:`~lumos.analysis.plan` sizes memory per GPU for inference and training.
"""

from lumos.analysis.flops import ModelFlops, deepseek_r1, from_minimax_config, minimax_m1
from lumos.analysis.plan import PlanSpec, Precision, memory, plan
from lumos.analysis.sizes import ParamCounts, count_params, preset_config

__all__ = ["ModelFlops", "ParamCounts", "PlanSpec", "Precision", "count_params", "deepseek_r1", "from_minimax_config",
           "memory", "minimax_m1", "plan", "preset_config"]
