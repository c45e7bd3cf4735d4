"""Progress bars for every loop a user waits on (rich; silent when not a terminal or when disabled)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterable, Iterator, Sized
from typing import TypeVar

T = TypeVar("T")

__all__ = ["track", "progress_enabled", "counter"]


def progress_enabled() -> bool:
    """Progress is shown on a terminal unless ``LUMOS_PROGRESS=0``; ``LUMOS_PROGRESS=1`` forces it."""
    from lumos.core.env import env_flag

    flag = env_flag("LUMOS_PROGRESS", default=None)
    return sys.stderr.isatty() if flag is None else flag


@contextlib.contextmanager
def counter(description: str = "", total: int | None = None, disable: bool | None = None) -> Iterator[Callable[[int], None]]:
    """A progress bar driven by callbacks: ``with counter("decode", total=n) as advance: ... advance(1)``.

    For loops a user waits on that lumos does not iterate itself (e.g. a generation callback).
    """
    if disable is None:
        disable = not progress_enabled()
    if disable:
        yield lambda n=1: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as prog:
        task = prog.add_task(description, total=total)
        yield lambda n=1: prog.advance(task, n)


def track(iterable: Iterable[T], description: str = "", total: int | None = None, disable: bool | None = None) -> Iterator[T]:
    """Iterate with a rich progress bar on stderr (time elapsed and remaining)."""
    if disable is None:
        disable = not progress_enabled()
    if disable:
        yield from iterable
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    if total is None and isinstance(iterable, Sized):
        total = len(iterable)
    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as prog:
        task = prog.add_task(description, total=total)
        for item in iterable:
            yield item
            prog.advance(task)
