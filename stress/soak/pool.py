"""The executor of this machine: worker processes (:class:`ProcessExecutor`).

Implements :mod:`stress.soak.executor` with a
:class:`concurrent.futures.ProcessPoolExecutor`.  Guarantees:

* a worker that dies (SIGKILL, out of memory) costs only time: every batch
  in flight when the pool broke comes back from :meth:`poll` with a
  :class:`~stress.soak.executor.WorkerLost` error, and a fresh pool takes
  the next submissions;
* workers ignore SIGINT and take SIGTERM's default action: Ctrl-C (sent to
  the whole process group) reaches only the parent, which decides;
* ``close(cancel=True)`` ends the workers at once (SIGTERM, then SIGKILL
  after a second), so an interrupted soak stops within about a second
  however long a batch is.

Workers are forked from a fork server that has already imported the engine
and the model (``forkserver`` with preloading: a cheap start per worker, and
no fork of the parent's threads).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from .executor import WorkerLost

__all__ = ["ProcessExecutor", "default_workers"]

#: imported once in the fork server, so every worker starts warm
PRELOAD = ["stress.soak.batch", "stress.engine", "stress.workload", "stress.targets", "model.workloads"]


def default_workers():
    """Every core this process may use."""
    count = getattr(os, "process_cpu_count", None)
    n = count() if count is not None else None
    if n is None:
        try:
            n = len(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            n = os.cpu_count()
    return max(1, n or 1)


def _init_worker():
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _context():
    methods = multiprocessing.get_all_start_methods()
    if "forkserver" in methods:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(PRELOAD)
        return ctx
    return multiprocessing.get_context("spawn")


class ProcessExecutor:
    """``workers`` processes on this machine (see the module docstring)."""

    def __init__(self, workers=None):
        self.workers = workers or default_workers()
        self._ctx = _context()
        self._pool = None
        self._futures = {}  # future -> key
        self.restarts = 0

    def _ensure_pool(self):
        if self._pool is None:
            self._pool = ProcessPoolExecutor(self.workers, mp_context=self._ctx, initializer=_init_worker)
        return self._pool

    def submit(self, key, fn, *args):
        try:
            fut = self._ensure_pool().submit(fn, *args)
        except BrokenProcessPool:
            self._replace_pool()
            fut = self._ensure_pool().submit(fn, *args)
        self._futures[fut] = key

    def poll(self, timeout):
        if not self._futures:
            time.sleep(timeout)
            return []
        done, _ = wait(list(self._futures), timeout=timeout, return_when=FIRST_COMPLETED)
        out, broken = [], False
        for fut in done:
            key = self._futures.pop(fut)
            if fut.cancelled():
                out.append((key, None, WorkerLost("cancelled")))
                continue
            err = fut.exception()
            if isinstance(err, BrokenProcessPool):
                broken = True
                out.append((key, None, WorkerLost(str(err) or "a worker process died")))
            elif err is not None:
                out.append((key, None, err))
            else:
                out.append((key, fut.result(), None))
        if broken:
            # every other batch of the broken pool fails the same way: report them now
            for fut, key in list(self._futures.items()):
                if fut.done() and not fut.cancelled() and fut.exception() is None:
                    out.append((key, fut.result(), None))
                else:
                    out.append((key, None, WorkerLost("the worker pool broke")))
            self._futures.clear()
            self._replace_pool()
        return out

    def _replace_pool(self):
        old, self._pool = self._pool, None
        self.restarts += 1
        if old is not None:
            self._kill(old)

    def alive(self):
        pool = self._pool
        if pool is None:
            return 0
        procs = getattr(pool, "_processes", None) or {}
        return sum(1 for p in list(procs.values()) if p.is_alive())

    def pids(self):
        """The worker processes' ids (for tests and diagnostics)."""
        procs = getattr(self._pool, "_processes", None) or {}
        return sorted(p.pid for p in list(procs.values()) if p.pid)

    def close(self, cancel=True):
        pool, self._pool = self._pool, None
        self._futures.clear()
        if pool is None:
            return
        if cancel:
            self._kill(pool)
        else:
            pool.shutdown(wait=True)

    @staticmethod
    def _kill(pool):
        procs = list((getattr(pool, "_processes", None) or {}).values())
        for p in procs:
            if p.is_alive():
                p.terminate()
        deadline = time.monotonic() + 1.0
        for p in procs:
            p.join(max(0.0, deadline - time.monotonic()))
            if p.is_alive():
                p.kill()
                p.join(1.0)
        try:
            pool.shutdown(wait=False, cancel_futures=True)
        except Exception:  # noqa: BLE001 - a broken pool may complain; its processes are gone
            pass
