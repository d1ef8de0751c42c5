"""Where partitions run, behind one interface: in this process, in a local process pool, or
as Ray tasks on a cluster (Ray is vLLM's own distributed runtime, so a team serving vLLM at
scale has it). Results come back in the order the partitions were given, so the run
publishes the same way whichever computed them.

A partition reads the raw store by its path: every process that runs one must see the data
directory at the same path (one machine, or a shared filesystem).
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Protocol

from inferledger.errors import UserError

EXECUTORS = ("local", "inline", "ray")
MAX_LOCAL_WORKERS = 4


class Executor(Protocol):
    share: float  # the part of its machine one call gets (a pool's workers split theirs)

    def map(self, fn: Callable[..., Any], calls: Sequence[tuple]) -> Iterator[Any]:
        """``fn(*args)`` for each of ``calls``, results in that order."""
        ...

    def close(self) -> None: ...


class InProcess:
    """One partition after another, here (a live run's single window, tests)."""

    share = 1.0

    def map(self, fn: Callable[..., Any], calls: Sequence[tuple]) -> Iterator[Any]:
        return (fn(*args) for args in calls)

    def close(self) -> None:
        pass


class LocalPool:
    """Spawned worker processes (spawned, not forked: the caller may run threads, e.g. the
    scheduler's), at most ``workers`` at once."""

    def __init__(self, workers: int) -> None:
        self.pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
        self.share = 1.0 / workers

    def map(self, fn: Callable[..., Any], calls: Sequence[tuple]) -> Iterator[Any]:
        futures = [self.pool.submit(fn, *args) for args in calls]
        for f in futures:
            yield f.result()

    def close(self) -> None:
        self.pool.shutdown(cancel_futures=True)


class RayTasks:
    """One Ray task per partition on the cluster at ``address`` (``None``: the one
    ``RAY_ADDRESS`` names, else a local one started for this run). Ray places the tasks by
    its own resources, so each has its node to itself."""

    share = 1.0

    def __init__(self, address: str | None = None) -> None:
        try:
            import ray
        except ImportError:
            raise UserError("--executor ray needs Ray: pip install -e '.[scale]' "
                            "(or ray itself) in InferLedger's environment") from None
        self.ray = ray
        self.started = not ray.is_initialized()
        if self.started:
            ray.init(address=address, include_dashboard=False, log_to_driver=False,
                     configure_logging=False)

    def map(self, fn: Callable[..., Any], calls: Sequence[tuple]) -> Iterator[Any]:
        task = self.ray.remote(fn)
        refs = [task.remote(*args) for args in calls]
        for ref in refs:
            try:
                yield self.ray.get(ref)
            except self.ray.exceptions.RayTaskError as e:
                # the task's own error (a ConservationError, a vanished file), as if local
                raise (e.cause if isinstance(e.cause, BaseException) else e) from None

    def close(self) -> None:
        if self.started:
            self.ray.shutdown()


def open_executor(kind: str = "local", partitions: int = 1, *, workers: int | None = None,
                  address: str | None = None) -> Executor:
    """``local``: a process pool of one worker per core, at most ``workers`` (default at most
    4, since each holds a day's data in memory), when there is more than one partition, else
    this process; ``inline``: always this process; ``ray``: Ray tasks."""
    if kind == "ray":
        return RayTasks(address)
    if kind == "inline":
        return InProcess()
    if kind != "local":
        raise UserError(f"unknown executor {kind!r}: use {', '.join(EXECUTORS)}")
    n = min(partitions, workers or min(len(os.sched_getaffinity(0)), MAX_LOCAL_WORKERS))
    return LocalPool(n) if n > 1 else InProcess()
