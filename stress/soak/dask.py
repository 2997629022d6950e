"""Run a soak's batches on a Dask cluster (``iommu-stress soak --dask ADDRESS``).

:class:`DaskExecutor` implements :class:`stress.soak.executor.Executor` with
``distributed``: each batch is one Dask task, ``client.submit(fn, *args,
pure=False)`` under a key of its own, so two submissions of the same batch
(a re-run after a lost worker) are two tasks, never one cached result.

``address`` is a scheduler's address (``tcp://host:8786``: start one with
``dask scheduler`` and workers with ``dask worker tcp://host:8786
--nthreads 1``; every worker needs this package installed, at the same
version, because ``fn`` is pickled by reference) or ``"local"``: a
:class:`distributed.LocalCluster` of ``n_workers`` single-threaded worker
processes that the executor starts and closes.

``workers`` is the number of Dask worker threads (the sum of the workers'
``nthreads``; one batch runs per thread), refreshed by :meth:`alive` (the
soak's progress line calls it several times a second), so workers that
join a running soak get batches too.  A batch is pure Python: threads of
one worker share a core (the GIL), so give workers one thread each
(``dask worker ADDRESS --nworkers N --nthreads 1``); a worker with more
draws a ``RuntimeWarning``.

What happens when a worker dies
-------------------------------

A batch whose worker process dies under it (``os._exit``, the OOM killer,
a lost machine) is **re-run by Dask itself**, transparently, on another
(or the restarted) worker: the scheduler allows each task
``distributed.scheduler.allowed-failures`` such deaths (3 by default).
The soak sees nothing but the batch's result (no ``worker_lost`` event),
one worker fewer in :meth:`alive` for a moment (a nanny restarts the
process: about half a second on a ``LocalCluster``), and an ERROR line in
Dask's log (silenced for a ``"local"`` cluster: ``silence_logs``).  Only a
batch that killed a worker more often than that comes back as
``KilledWorker`` (after 4 deaths), which :meth:`poll` turns into
:class:`~stress.soak.executor.WorkerLost`, so the soak re-runs it itself
(and stops after ``runner.MAX_LOSSES`` of those: a batch that always kills
its worker costs 4 x 3 worker processes before the soak gives up).  A
future cancelled under us (the scheduler forgot it, the client lost the
scheduler) is a :class:`WorkerLost` too; a finished result lost with its
worker before it was fetched is recomputed by Dask and simply comes back
later.  An exception
raised by ``fn`` comes back as itself (with the worker's traceback).
``tests/test_soak_cluster.py`` checks both.

Dask is imported here only when a :class:`DaskExecutor` is made, so
``import stress`` (and the process pool) never load it; the optional extra
``iommu-stress[cluster]`` installs it.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
import uuid
import warnings
from typing import Any, Callable, Hashable

from .executor import WorkerLost

__all__ = ["DaskExecutor"]


class DaskExecutor:
    """Batches as tasks of a Dask cluster; see the module docstring."""

    def __init__(
        self,
        address: str = "local",
        *,
        n_workers: int | None = None,
        connect_timeout: float = 30.0,
        silence_logs: int = logging.CRITICAL,
    ):
        try:
            from distributed import Client, LocalCluster
        except ImportError as e:  # pragma: no cover - the cluster extra is missing
            raise ImportError("the Dask executor needs 'distributed': pip install 'iommu-stress[cluster]'") from e

        self.address = address
        self._cluster = None
        self._futures: dict[Any, Hashable] = {}  # Dask future -> the caller's key
        self._prefix = f"iommu-stress-soak-{uuid.uuid4().hex[:12]}"
        self._count = itertools.count()
        self._workers = 0
        if address == "local":
            n = n_workers or os.cpu_count() or 1
            self._cluster = LocalCluster(
                n_workers=n,
                threads_per_worker=1,
                processes=True,
                dashboard_address="127.0.0.1:0",  # no fixed port (8787): two soaks, or a test, at once
                silence_logs=silence_logs,
            )
            try:
                self._client = Client(self._cluster, set_as_default=False)
            except BaseException:
                self._cluster.close()
                raise
        else:
            self._client = Client(address, timeout=connect_timeout, set_as_default=False)
        try:
            # a scheduler without workers yet: wait for the first one
            self._client.wait_for_workers(1, timeout=connect_timeout)
            threaded = {w: n for w, n in self._client.nthreads().items() if n > 1}
        except BaseException:
            self.close()
            raise
        if threaded:
            warnings.warn(
                f"Dask workers with several threads ({', '.join(sorted(threaded))}): a batch is pure Python, "
                "so threads share one core; start workers with --nthreads 1 (and --nworkers N)",
                RuntimeWarning,
                stacklevel=2,
            )
        self.alive()

    # -- the Executor interface --------------------------------------------

    @property
    def workers(self) -> int:
        """Dask worker threads as last seen (at least 1: the soak keeps that many batches in flight)."""
        return max(1, self._workers)

    def submit(self, key: Hashable, fn: Callable[..., Any], *args: Any) -> None:
        name = getattr(fn, "__name__", "task")
        future = self._client.submit(fn, *args, pure=False, key=f"{self._prefix}-{name}-{next(self._count)}")
        self._futures[future] = key

    def poll(self, timeout: float) -> list[tuple[Hashable, Any, BaseException | None]]:
        if not self._futures:
            if timeout > 0:
                time.sleep(timeout)
            return []
        done = [f for f in self._futures if f.done()]
        if not done and timeout > 0:
            from distributed import wait

            try:
                with self._client.as_current():  # wait() asks for the current client: ours is no default
                    wait(list(self._futures), timeout=timeout, return_when="FIRST_COMPLETED")
            except TimeoutError:
                pass
            except Exception as e:  # FuturesCancelledError: sorted out below, future by future
                if not _is_cancelled(e):
                    raise
            done = [f for f in self._futures if f.done()]
        out = []
        for future in done:
            key = self._futures.pop(future)
            out.append((key, *self._outcome(future)))
        return out

    def alive(self) -> int:
        try:
            nthreads = self._client.nthreads()
        except Exception:  # the scheduler is unreachable right now: nothing alive
            return 0
        self._workers = sum(nthreads.values())
        return len(nthreads)

    def close(self, cancel: bool = True) -> None:
        client, self._client = getattr(self, "_client", None), None
        futures, self._futures = list(self._futures), {}
        try:
            if client is not None:
                if futures:
                    if cancel:
                        client.cancel(futures, force=True)
                    else:
                        from distributed import wait

                        try:
                            with client.as_current():
                                wait(futures)
                        except Exception as e:
                            if not _is_cancelled(e):
                                raise
                client.close()
        finally:
            cluster, self._cluster = self._cluster, None
            if cluster is not None:
                if cancel:
                    _stop_workers_now(cluster)
                cluster.close()

    # -- helpers -----------------------------------------------------------

    def _outcome(self, future) -> tuple[Any, BaseException | None]:
        from distributed import KilledWorker

        status = future.status
        if status == "finished":
            try:
                return future.result(), None
            except Exception as e:  # the result was lost on the way: run the batch again
                return None, _lost(f"result of {future.key} lost: {e!r}", e)
        if status == "cancelled":
            return None, _lost(f"{future.key} was cancelled (worker or scheduler lost)", None)
        exc = future.exception()
        if isinstance(exc, KilledWorker):
            return None, _lost(str(exc), exc)
        if _is_cancelled(exc):
            return None, _lost(f"{future.key} was cancelled: {exc}", exc)
        return None, exc

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close(cancel=True)

    def __repr__(self):
        return f"DaskExecutor({self.address!r}, workers={self._workers})"


def _stop_workers_now(cluster, timeout=1.0):
    """Stop an owned LocalCluster's workers without waiting for their running batches.

    A nanny's default close gives a busy worker 4 s to finish its task
    before killing it; a cancelled soak (Ctrl-C) has nothing to wait for.
    Best effort: whatever fails here, ``cluster.close()`` still closes all.
    """
    import asyncio

    async def close_all(nannies):
        await asyncio.gather(*(n.close(timeout=timeout, reason="soak-cancelled") for n in nannies), return_exceptions=True)

    try:
        nannies = [w for w in cluster.workers.values() if hasattr(w, "close")]
        cluster.sync(close_all, nannies)
    except Exception:  # pragma: no cover - a distributed without these internals
        pass


def _lost(message, cause):
    err = WorkerLost(message)
    err.__cause__ = cause
    return err


def _is_cancelled(exc) -> bool:
    from concurrent.futures import CancelledError

    try:
        from distributed.client import FuturesCancelledError
    except ImportError:  # pragma: no cover - older distributed
        FuturesCancelledError = CancelledError
    return isinstance(exc, (CancelledError, FuturesCancelledError))
