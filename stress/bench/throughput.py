"""Throughput figures (``iommu-stress bench``); wall-clock measurements, outside any run.

* ``raw_handoffs_per_s``: a bare Trio ping-pong between two tasks
  (``wait_task_rescheduled`` / ``reschedule``), the cost of one real switch.
* ``points_per_s_*``: preemption points per second through the controlled
  scheduler with lockdep and the race checker on, for a lock-heavy scenario,
  under PCT (few switches) and the random walk (a switch at most points).
* ``engine_vs_raw``: PCT points/s over raw handoffs/s (goal: >= 0.5).
* the same for a representative driver workload, with every checker and
  oracle on (:func:`bench_workload`).
* ``soak_schedules_per_s_*``: a soak on one and on two worker processes,
  and the speed-up (:func:`bench_soak`).
"""

from __future__ import annotations

import time
from statistics import median

import outcome
import trio

from model.kernel import Shared, SpinLock, spin_lock, spin_unlock

from .. import bootimage
from ..engine import explore
from ..workload import DEFAULT_WORKLOAD, driver_scenario, workload_config

__all__ = [
    "run_bench",
    "raw_handoffs_per_s",
    "lock_loop",
    "engine_points_per_s",
    "workload_rate",
    "driver_mix",
    "empty_programs",
    "bench_workload",
    "bench_soak",
]


def raw_handoffs_per_s(n=100_000):
    """Switches/s of a bare two-task ping-pong through Trio's park/reschedule."""

    async def main():
        tasks = {}
        left = [n]
        done = trio.Event()

        async def player(me, other):
            tasks[me] = trio.lowlevel.current_task()
            while True:
                await trio.lowlevel.wait_task_rescheduled(lambda _: trio.lowlevel.Abort.SUCCEEDED)
                left[0] -= 1
                if left[0] <= 0:
                    done.set()
                    return
                trio.lowlevel.reschedule(tasks[other], outcome.Value(None))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(player, "a", "b")
            nursery.start_soon(player, "b", "a")
            while len(tasks) < 2:
                await trio.sleep(0)
            await trio.sleep(0)
            t0 = time.perf_counter()
            trio.lowlevel.reschedule(tasks["a"], outcome.Value(None))
            await done.wait()
            elapsed = time.perf_counter() - t0
            nursery.cancel_scope.cancel()
        return n / elapsed

    return trio.run(main)


def lock_loop(iterations):
    """Two CPUs, each taking its own lock and touching its own counter in a loop."""

    def scenario(kernel):
        def body(i):
            lock, cell = SpinLock(f"lock{i}"), Shared(f"count{i}", 0)

            async def run():
                for _ in range(iterations):
                    await spin_lock(lock)
                    await cell.store(cell.value + 1)
                    spin_unlock(lock)

            return run

        return [body(0), body(1)]

    return scenario


def _points_per_s(scenario, strategy, schedules, **kw):
    t0 = time.perf_counter()
    result = explore(scenario, strategy=strategy, schedules=schedules, seed=0, shrink=False, **kw)
    elapsed = time.perf_counter() - t0
    if result.found:
        raise RuntimeError(f"bench scenario reported {result.violations[0].kind}")
    return result.points / elapsed, result.schedules / elapsed


def engine_points_per_s(quick=False):
    """``(raw_handoffs_per_s, points_per_s_pct, points_per_s_random)``: the bare
    Trio switch and the engine's points/s on :func:`lock_loop` (lockdep and
    the race checker on, no model)."""
    raw = raw_handoffs_per_s(20_000 if quick else 200_000)
    scen = lock_loop(200 if quick else 2_000)
    pts, _ = _points_per_s(scen, "pct", 5 if quick else 20)
    pts_r, _ = _points_per_s(scen, "random", 2 if quick else 10)
    return raw, pts, pts_r


def run_bench(quick=False):
    figures = {}
    raw, pts, pts_r = engine_points_per_s(quick)
    figures["raw_handoffs_per_s"] = raw
    figures["points_per_s_pct"] = pts
    figures["points_per_s_random"] = pts_r
    figures["engine_vs_raw"] = figures["points_per_s_pct"] / figures["raw_handoffs_per_s"]
    figures.update(bench_workload(quick))
    figures.update(bench_soak(quick))
    return figures


def workload_rate(cfg, n):
    """``(seconds per schedule, points per schedule)`` of ``n`` PCT schedules
    (seed 0, every checker, no shrinking) of the workload ``cfg`` on vsi-fixed,
    which finds nothing there (a find raises: the figure would be wrong)."""
    t0 = time.perf_counter()
    result = explore(driver_scenario("vsi-fixed", cfg), strategy="pct", schedules=n, seed=0, shrink=False)
    elapsed = time.perf_counter() - t0
    if result.found:
        raise RuntimeError(f"vsi-fixed reported {result.violations[0].kind} in the bench workload")
    return elapsed / n, result.points / n


def driver_mix():
    """The workload :func:`bench_workload` weighs the model by: 4 CPUs, 6
    operations each, of map/unmap/attach/suspend/resume/DMA."""
    return workload_config(cpus=4, ops=6, kinds=["map", "unmap", "attach", "suspend", "resume", "dma"])


def empty_programs():
    """The default machine with nothing to run: its boot (or copy) and teardown alone."""
    return dict(DEFAULT_WORKLOAD, programs=[[] for _ in range(4)])


#: rounds of each side of :func:`bench_workload`'s ratios (one with ``--quick``)
ROUNDS = 3


def bench_workload(quick):
    """Points/s and schedules/s of a representative driver mix, every checker
    on, and what the model costs per point against the bare engine.

    4 CPUs running map/unmap/attach/suspend/resume/DMA on ``vsi-fixed``;
    ``model_cost_per_point`` is the bare engine's points/s (:func:`lock_loop`
    under PCT, lockdep and the race checker on) over this one's: how much
    the full model costs per point.  Every schedule also boots and tears
    down a machine (probe, domains, release: many events, five points);
    ``boot_ms_per_schedule`` measures that with empty programs (the boot is
    a copy of a boot image, as in every search: :mod:`stress.bootimage`),
    ``boot_ms_per_schedule_no_images`` with a real boot each time, and
    ``model_cost_per_point_after_boot`` leaves it out.

    The two sides of a ratio run in alternation, a round of each at a time
    (:data:`ROUNDS`), and a ratio is the median of its rounds' (measured
    once each, minutes apart, a shared machine's drift would land in one
    side only).
    """
    rounds = 1 if quick else ROUNDS
    n = 30 if quick else 100
    mix, empty = driver_mix(), empty_programs()
    bare_scen = lock_loop(200 if quick else 2_000)
    per_round = []
    for _ in range(rounds):
        bare, _ = _points_per_s(bare_scen, "pct", 5 if quick else 7)
        per_schedule, points = workload_rate(mix, n)
        boot, boot_points = workload_rate(empty, n)
        per_round.append((bare, per_schedule, points, boot, boot_points))
    with bootimage.disabled():
        real_boot, _ = workload_rate(empty, n)
    per_schedule = sum(r[1] for r in per_round) / rounds
    points = sum(r[2] for r in per_round) / rounds
    return {
        "workload_points_per_s": points / per_schedule,
        "workload_schedules_per_s": 1 / per_schedule,
        "model_cost_per_point": median([bare / (pts / per) for bare, per, pts, _, _ in per_round]),
        "boot_ms_per_schedule": sum(r[3] for r in per_round) / rounds * 1000,
        "boot_ms_per_schedule_no_images": real_boot * 1000,
        "model_cost_per_point_after_boot": median([bare / ((pts - bpts) / max(per - boot, 1e-9)) for bare, per, pts, boot, bpts in per_round]),
    }


def bench_soak(quick):
    """Schedules/s of ``iommu-stress soak`` on one worker process and on two, and the speed-up.

    The default workload on ``vsi-fixed`` (nothing to find, so no shrinking
    distorts it), a fixed number of schedules in a temporary directory;
    the rate counts everything a soak pays: worker start-up, batches,
    checkpoints and the event log.
    """
    import tempfile

    from ..checkers import default_checkers
    from ..soak.runner import run_soak

    n = 300 if quick else 3000
    options = {
        "target": {"driver": "vsi-fixed", "workload": workload_config()},
        "strategy": "pct",
        "seed": 0,
        "checkers": list(default_checkers()),
        "max_steps": 20_000,
        "pct_depth": 3,
        "batch": 50 if quick else 250,
    }
    t0 = time.perf_counter()
    explore(driver_scenario("vsi-fixed", options["target"]["workload"]), strategy="pct", schedules=n // 2, seed=0, shrink=False)
    in_process = (n // 2) / (time.perf_counter() - t0)
    rates = {}
    for workers in (1, 2):
        with tempfile.TemporaryDirectory(prefix="iommu-stress-bench-") as d:
            summary = run_soak(d + "/soak", options, schedules=n, workers=workers)
        if summary.found:
            raise RuntimeError(f"vsi-fixed reported {next(iter(summary.findings))} in the soak bench")
        rates[workers] = summary.rate
    return {
        "soak_schedules_per_s_1_worker": rates[1],
        "soak_schedules_per_s_2_workers": rates[2],
        "soak_speedup_2_workers": rates[2] / rates[1],
        # what one worker keeps of an in-process search: start-up, batches,
        # checkpoints and the event log all paid (goal: >= 0.9)
        "soak_1_worker_vs_in_process": rates[1] / in_process,
    }
