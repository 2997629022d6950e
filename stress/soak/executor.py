"""Where a soak's batches run: the executor interface.

A soak cuts its schedules into batches (disjoint index ranges) and hands
each to an executor, which runs ``fn(*args)`` somewhere (a worker process
of this machine, a Dask worker of a cluster) and gives the result back.
Everything else - signatures, reports, checkpoints, logs - lives in the
parent and is the same for every executor.

An executor has:

* ``workers`` - how many batches it runs at once (the soak keeps that many
  in flight);
* ``submit(key, fn, *args)`` - start ``fn(*args)``; ``key`` (hashable) names
  it in what :meth:`poll` returns;
* ``poll(timeout)`` - wait up to ``timeout`` seconds for at least one
  submitted batch to end; returns ``[(key, result, error)]`` for those that
  ended: ``error`` is None, a :class:`WorkerLost` (the process running it
  died: the soak re-runs the batch) or the exception ``fn`` raised;
* ``alive()`` - workers alive now (for the progress line and the logs);
* ``close(cancel)`` - stop; with ``cancel`` drop unfinished batches at once
  (Ctrl-C), else wait for them.

Implementations: :class:`stress.soak.pool.ProcessExecutor` (this machine)
and :class:`stress.soak.dask.DaskExecutor` (``--dask ADDRESS``).
"""

from __future__ import annotations

from typing import Any, Callable, Hashable, Protocol

__all__ = ["Executor", "WorkerLost"]


class WorkerLost(Exception):
    """The worker running a batch died (killed, out of memory): run the batch again."""


class Executor(Protocol):
    workers: int

    def submit(self, key: Hashable, fn: Callable[..., Any], *args: Any) -> None: ...

    def poll(self, timeout: float) -> list[tuple[Hashable, Any, BaseException | None]]: ...

    def alive(self) -> int: ...

    def close(self, cancel: bool = True) -> None: ...
