"""Scale-out: process groups, FSDP2/DTensor sharding, expert parallelism, distributed checkpoints, the sharded RL layout.

Everything works unchanged in a single process. :mod:`~lumos.distributed.process_group` wraps
``torch.distributed``; :mod:`~lumos.distributed.parallel` shards a model on a device mesh;
:mod:`~lumos.distributed.expert_parallel` spreads MoE experts over ranks; :mod:`~lumos.distributed.checkpoint`
saves and resumes per-rank shards; :mod:`~lumos.distributed.rl_layout` is what the RL trainer does differently on a
sharded model. The last two import the model and RL code on use, so ``import lumos.distributed`` stays light.
"""

from lumos.distributed.parallel import clip_grad_norm, gathered_copy, is_sharded, make_mesh, shard_model
from lumos.distributed.process_group import (
    all_reduce_sum,
    barrier,
    init_distributed,
    is_distributed,
    is_main,
    rank,
    world_size,
)

__all__ = ["all_reduce_sum", "barrier", "clip_grad_norm", "gathered_copy", "init_distributed", "is_distributed",
           "is_main", "is_sharded", "make_mesh", "rank", "shard_model", "world_size"]
