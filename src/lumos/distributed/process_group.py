"""Thin torch.distributed helpers: works unchanged single-process, under torchrun, and in tests.

Under ``torchrun`` call :func:`init_distributed` once; everything else is a no-op when not distributed.
Tests use :func:`spawn` to run a function in N gloo processes on CPU.
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist

from lumos.core.env import distributed_env

__all__ = [
    "init_distributed",
    "is_distributed",
    "rank",
    "world_size",
    "is_main",
    "all_reduce_sum",
    "barrier",
    "spawn",
    "free_port",
    "local_shard",
]


def is_distributed() -> bool:
    """Whether a default process group is initialised."""
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    """This process's rank (0 single-process)."""
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    """The number of processes (1 single-process)."""
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    """Whether this is rank 0 (the process that writes run directories)."""
    return rank() == 0


def init_distributed(backend: str | None = None) -> bool:
    """Initialise the default process group from torchrun's environment (RANK, WORLD_SIZE, MASTER_ADDR...).

    Returns True when running distributed. Backend: nccl when CUDA is available, else gloo.
    """
    if is_distributed():
        return True
    if distributed_env()[0] == 1:  # checks WORLD_SIZE / RANK / MASTER_* together, naming what is wrong
        return False
    backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
    dist.init_process_group(backend=backend)
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    return True


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` across processes in place (no-op single-process) and return it."""
    if is_distributed():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def barrier() -> None:
    """Wait for every process (no-op single-process)."""
    if is_distributed():
        dist.barrier()


def local_shard(t: torch.Tensor) -> torch.Tensor:
    """The local tensor of a DTensor (a sharded parameter or gradient); any other tensor unchanged."""
    from torch.distributed.tensor import DTensor

    return t.to_local() if isinstance(t, DTensor) else t


def free_port() -> int:
    """A free TCP port on localhost for a test process group."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _worker(local_rank: int, fn: Callable[..., Any], world: int, port: int, args: tuple[Any, ...]) -> None:
    os.environ.update(
        {
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
            "RANK": str(local_rank),
            "LOCAL_RANK": str(local_rank),
            "WORLD_SIZE": str(world),
        }
    )
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=local_rank, world_size=world)
    try:
        fn(local_rank, world, *args)
        # Every rank reaches this point before any tears gloo down: a rank that destroys the group while a peer
        # is still in a collective makes gloo's threads abort the peer ("terminate called without an active
        # exception").
        dist.barrier()
    finally:
        dist.destroy_process_group()
    # Leave without the interpreter's teardown: a C++ thread still joinable when static destructors run (gloo's,
    # the TCP store's) aborts the process with SIGABRT after all its work is done, which mp.spawn reports as a
    # failure. ``fn`` has returned and written its results; flush what is buffered and exit 0.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def spawn(fn: Callable[..., Any], nprocs: int = 2, args: tuple[Any, ...] = ()) -> None:
    """Run ``fn(rank, world_size, *args)`` in ``nprocs`` gloo processes on localhost (for tests and CPU runs).

    ``fn`` must be importable (a module-level function). Results are exchanged through files or the process group.
    """
    from torch.multiprocessing.spawn import spawn as mp_spawn

    mp_spawn(_worker, args=(fn, nprocs, free_port(), args), nprocs=nprocs, join=True)
