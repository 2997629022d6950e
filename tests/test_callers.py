"""The callers real drivers meet: fault handlers, the DMA API from atomic
context, batched unmaps and the DMA API's flush queue.

Each caller is checked in both directions: vsi-fixed (which handles it) runs
clean, and a driver that mishandles it is caught by the checker that watches
that rule (lockdep for the re-entering fault handler and the sleeping map,
the page-table and isolation oracles for the unmap windows).  The zoo rates
of the one-defect mutants (B13-B15) are in tests/test_zoo.py.
"""

import pytest

import stress
from model.drivers.mutants import FaultUnderLock, SleepingMap
from model.drivers.vsi_fixed import VsiFixed, to_vsi_domain

from .test_oracles import NoFlushOnUnmap
from model.kernel import spin_lock_irqsave, spin_unlock_irqrestore
from model.workloads import DMA_CONTEXTS
from stress.choosers import Replay
from stress.engine import run_schedule
from stress.workload import CALLER_KINDS, CALLER_STORIES, OP_KINDS, draw_programs, driver_scenario, workload_config


def _cfg(*programs, **extra):
    return dict({"iommus": 2, "domains": 3, "iovas": 4, "programs": list(programs)}, **extra)


class ContextWatch:
    """Records the CPU context of every DMA-API map (the ``map_begin`` of a
    GFP_ATOMIC map made from ``op_dma_map``)."""

    def __init__(self, kernel):
        self.seen = []

    def iommu(self, cpu, what, info):
        if what == "map_begin" and cpu is not None and cpu.op and cpu.op.startswith("dma_map("):
            self.seen.append(
                "hardirq" if cpu.hardirq else "softirq" if cpu.softirq else "bh" if cpu.bh
                else "irqoff" if not cpu.irqs_enabled else "task"
            )


def _watched(scenario, watch_cls):
    watches = []

    def scenario_with(kernel):
        w = watch_cls(kernel)
        watches.append(w)
        kernel.attach(w)
        return scenario(kernel)

    scenario_with.target = getattr(scenario, "target", None)
    return scenario_with, watches


# -- the DMA API from every context ----------------------------------------------------


@pytest.mark.parametrize("ctx", DMA_CONTEXTS)
def test_dma_api_map_runs_in_the_context_asked_and_vsi_fixed_is_clean(ctx):
    prog = [["dma_map", {"dev": 0, "ctx": ctx, "write": True}], ["dma_map", {"dev": 0, "ctx": ctx, "write": False}]]
    scen, watches = _watched(driver_scenario("vsi-fixed", _cfg(prog)), ContextWatch)
    out = run_schedule(scen, Replay([]))
    assert out.violation is None, out.violation
    assert watches[0].seen == [ctx, ctx]


@pytest.mark.parametrize("ctx", DMA_CONTEXTS)
def test_a_map_that_sleeps_is_caught_in_every_atomic_context_and_only_there(ctx):
    prog = [["dma_map", {"dev": 0, "ctx": ctx, "write": False}]]
    out = run_schedule(driver_scenario(SleepingMap.name, _cfg(prog)), Replay([]))
    if ctx == "task":
        assert out.violation is None, out.violation  # VFIO-style process context may sleep
    else:
        assert out.kind == "sleep-in-atomic", out.violation
        assert "mutex_lock" in out.violation["message"]


def test_dma_api_users_and_vfio_share_a_device_clean_under_pct():
    """Three CPUs: a NIC driver mapping from IRQ and softirq, the same from
    task context with BH off, and a VFIO-style user of a user domain."""
    progs = [
        [["dma_map", {"dev": 0, "ctx": "hardirq", "write": True}], ["dma_map", {"dev": 1, "ctx": "softirq", "write": False}]],
        [["dma_map", {"dev": 0, "ctx": "bh", "write": False}], ["dma_map", {"dev": 0, "ctx": "irqoff", "write": True}]],
        [["attach", {"dev": 1, "dom": 0}], ["map", {"dom": 0, "iova": 0}], ["dma", {"dev": 1, "iova": 0}], ["unmap", {"dom": 0, "iova": 0}]],
    ]
    for seed in range(2):
        r = stress.explore(driver_scenario("vsi-fixed", _cfg(*progs)), strategy="pct", schedules=120, seed=seed, shrink=False)
        assert not r.violations, r.violations[0].report["violation"]["splat"]


# -- fault handlers ------------------------------------------------------------------------

FAULT_USER = [
    ["attach", {"dev": 0, "dom": 0}],
    ["fault_handler", {"dom": 0}],
    ["map", {"dom": 0, "iova": 0}],
    ["fault", {"dev": 0}],
]
MAPPER = [["map", {"dom": 0, "iova": 1}], ["unmap", {"dom": 0, "iova": 1}]]


class HandlerWatch:
    """Counts fault handlers that ran (report_iommu_fault with a handler)."""

    def __init__(self, kernel):
        self.calls = 0

    def iommu(self, cpu, what, info):
        if what == "fault" and info["domain"].handler is not None:
            self.calls += 1


def test_the_fault_handler_runs_and_reenters_on_vsi_fixed_clean():
    scen, watches = _watched(driver_scenario("vsi-fixed", _cfg(FAULT_USER, MAPPER)), HandlerWatch)
    for seed in range(3):
        r = stress.explore(scen, strategy="pct", schedules=100, seed=seed, shrink=False)
        assert not r.violations, r.violations[0].report["violation"]["splat"]
    assert sum(w.calls for w in watches) > 100  # the handler really ran in most schedules


def test_a_fault_reported_under_the_iommu_lock_inverts_the_map_order():
    found = 0
    for seed in range(4):
        r = stress.explore(driver_scenario(FaultUnderLock.name, _cfg(FAULT_USER, MAPPER)), strategy="pct", schedules=60, seed=seed, shrink=False)
        if r.violations and r.violations[0].kind in ("lock-inversion", "recursive-locking"):
            found += 1
            splat = r.violations[0].report["violation"]["splat"]
            assert "report_iommu_fault" in splat and "_fault_handler" in splat
    assert found >= 3


def test_vsi_mainline_reports_its_faults_under_the_lock_too():
    r = stress.explore(driver_scenario("vsi-mainline", _cfg(FAULT_USER, MAPPER)), strategy="pct", schedules=200, seed=0, shrink=False, keep_going=True)
    kinds = {v.kind for v in r.violations}
    assert "lock-inversion" in kinds, kinds


# -- batched unmaps: the window until the sync is legal, not after -----------------------


class DeferredFlush(NoFlushOnUnmap):
    """vsi-fixed that leaves the flush of an unmap to ``iotlb_sync`` (as
    drivers with a gather-based range invalidation do): tests/test_oracles.py's
    double that skips unmap's flush, with a sync that flushes; test double."""

    name = "test-deferred-flush"

    async def iotlb_sync(self, domain, gather):
        vsi_domain = to_vsi_domain(domain)
        flags = await spin_lock_irqsave(vsi_domain.lock)
        await VsiFixed.vsi_iommu_flush_tlb(self, domain)
        await spin_unlock_irqrestore(vsi_domain.lock, flags)


class NoSyncFlush(DeferredFlush):
    """... whose ``iotlb_sync`` forgets the flush: the stale line outlives the sync."""

    name = "test-no-sync-flush"

    async def iotlb_sync(self, domain, gather):
        return None


BATCH_USER = [
    ["attach", {"dev": 0, "dom": 0}],
    ["map", {"dom": 0, "iova": 0, "pages": 2}],
    ["dma", {"dev": 0, "iova": 0}],
    ["unmap_batch", {"dom": 0, "iova": 0, "count": 2}],
    ["dma", {"dev": 0, "iova": 0}],
]
DMA_DURING = [["dma", {"dev": 0, "iova": 0}], ["dma", {"dev": 0, "iova": 0}], ["dma", {"dev": 0, "iova": 0}]]


class WindowHits:
    """DMAs that hit a TLB line while an unmap of the domain waits for its sync."""

    def __init__(self, kernel):
        self.pending = 0
        self.hits = 0

    def iommu(self, cpu, what, info):
        if what == "unmap_begin":
            self.pending += 1
        elif what == "unmap_end":
            self.pending -= 1

    def dma(self, master, acc):
        if self.pending and acc.outcome == "tlb":
            self.hits += 1


def test_a_stale_translation_between_unmap_fast_and_the_sync_is_legal():
    scen, watches = _watched(driver_scenario("tests.test_callers:DeferredFlush", _cfg(BATCH_USER, DMA_DURING)), WindowHits)
    for seed in range(3):
        r = stress.explore(scen, strategy="pct", schedules=150, seed=seed, shrink=False)
        assert not r.violations, r.violations[0].report["violation"]["splat"]
    assert sum(w.hits for w in watches) > 10  # the window was really used


def test_a_stale_translation_after_the_sync_is_stale_tlb():
    out = run_schedule(driver_scenario("tests.test_callers:NoSyncFlush", _cfg(BATCH_USER)), Replay([]))
    assert out.kind in ("stale-tlb", "pagetable-use-after-free"), out.violation


# -- the flush queue (iommu.strict=0) --------------------------------------------------------


class UnmapEnds:
    """When each DMA-API unmap ended, relative to the flushes, and how many
    ended in the flush queue's timer (softirq context)."""

    def __init__(self, kernel):
        self.events = []
        self.by_timer = 0

    def iommu(self, cpu, what, info):
        if what in ("unmap_begin", "unmap_end") and info["iova"] >= 0xA0000000:
            self.events.append(what)
            if what == "unmap_end" and cpu is not None and cpu.softirq:
                self.by_timer += 1


def test_flush_queue_defers_unmap_end_and_stays_clean():
    progs = [
        [["dma_map", {"dev": 0, "ctx": c, "write": True}] for c in ("task", "softirq", "hardirq")],
        [["dma_map", {"dev": 0, "ctx": "bh", "write": False}], ["dma_map", {"dev": 0, "ctx": "irqoff", "write": False}]],
    ]
    scen, watches = _watched(driver_scenario("vsi-fixed", _cfg(*progs, dma_strict=False)), UnmapEnds)
    out = run_schedule(scen, Replay([]))
    assert out.violation is None, out.violation
    ev = watches[0].events
    assert ev.count("unmap_begin") == 5 and ev.count("unmap_end") == 5  # all flushed by teardown at the latest
    assert ev[:2] != ["unmap_begin", "unmap_end"]  # the first unmap's end waited for a flush
    scen, watches = _watched(driver_scenario("vsi-fixed", _cfg(*progs, dma_strict=False)), UnmapEnds)
    for seed in range(3):
        r = stress.explore(scen, strategy="pct", schedules=100, seed=seed, shrink=False)
        assert not r.violations, r.violations[0].report["violation"]["splat"]
    assert sum(w.by_timer for w in watches) > 50  # the queue's timer flushed them (TIMER_SOFTIRQ)


def test_strict_mode_ends_each_unmap_at_once():
    prog = [["dma_map", {"dev": 0, "ctx": "task", "write": True}]] * 2
    scen, watches = _watched(driver_scenario("vsi-fixed", _cfg(prog)), UnmapEnds)
    assert run_schedule(scen, Replay([])).violation is None
    assert watches[0].events == ["unmap_begin", "unmap_end"] * 2


# -- the default workload draws them ----------------------------------------------------------


def test_callers_are_drawn_in_about_half_the_schedules_and_leave_the_other_programs_alone():
    cfg = workload_config()
    others = [k for k in OP_KINDS if k not in CALLER_KINDS]
    with_callers = 0
    stories = 0
    for i in range(400):
        progs = draw_programs(cfg, 0, i)
        has = any(op[0] in CALLER_KINDS for p in progs for op in p)
        with_callers += has
        if not has:
            assert progs == draw_programs(cfg, 0, i, others)
        stories += any([op[0] for op in p] in CALLER_STORIES.values() for p in progs)
    assert 140 < with_callers < 260  # CALLER_RATE = 0.5
    assert stories > 40
