"""The walk cache (paging-structure cache) is a stated hardware option: walks
fill it, zaps empty it, a stale entry is used until zapped, and a table page
freed while the cache still names it is a pagetable-use-after-free that says
it rests on the cache."""

import json
import os

import pytest
import trio

import stress
from model.hw import (
    RK_MMU_CMD_ENABLE_PAGING,
    RK_MMU_CMD_ZAP_CACHE,
    RK_MMU_COMMAND,
    RK_MMU_DTE_ADDR,
    RK_MMU_ZAP_ONE_LINE,
    VSI_MMU_AHB_CONTROL_BASE,
    VSI_MMU_AHB_TLB_ARRAY_BASE_L_BASE,
    VSI_MMU_BIT_ENABLE,
    VSI_MMU_BIT_FLUSH,
    VSI_MMU_FLUSH_BASE,
    DmaMaster,
    IommuHw,
    clk_bulk_disable,
    clk_bulk_enable,
    clk_bulk_prepare,
    writel,
)
from model.hw.tlb import DEFAULT_WALK_CACHE, WALK_CACHE_LEVELS
from model.kernel import GFP_DMA32, GFP_KERNEL, Kernel, alloc_pages, free_pages, set_current
from model.kernel.dma import DMA_TO_DEVICE, dma_map_single, dma_sync_single_for_device, table_write, table_write64
from model.workloads import SystemConfig
from stress.workload import driver_scenario, workload_config

IOVA = 0x10403000  # DTE index 0x41, PTE index 0x3
IOVA2 = IOVA + 0x1000  # same 4 MiB, next PTE
OTHER = 0x20000000  # DTE index 0x80
PADDR = 0x40005000
PADDR2 = 0x40009000


class _Dev:
    name = "iommu0"
    dma_mask = (1 << 32) - 1


class Recorder:
    def __init__(self):
        self.walks = []

    def walk(self, hw, page, rests=()):
        self.walks.append((page, rests))


async def _sync(page):
    await dma_sync_single_for_device(_Dev, page.phys, 4096, DMA_TO_DEVICE)


async def _page(tag):
    page = await alloc_pages(GFP_KERNEL | GFP_DMA32, tag=tag)
    await dma_map_single(_Dev, page, 4096, DMA_TO_DEVICE)
    return page


async def _pt(paddrs):
    """A PT page mapping {iova: paddr} (RW, valid in both formats' low bits)."""
    pt = await _page("pt")
    for iova, paddr in paddrs.items():
        await table_write(pt, (iova >> 12) & 0x3FF, (paddr & 0xFFFFF000) | 0x7)
    await _sync(pt)
    return pt


async def _dte(dt, iova, pt):
    await table_write(dt, iova >> 22, ((pt.phys & 0xFFFFFFC0) | 1) if pt is not None else 0)
    await _sync(dt)


def run(test, layout="rk", walk_cache=DEFAULT_WALK_CACHE, retention=("disable", "clock-off")):
    """``await test(k, hw, m, tables, rec)`` with translation on through DT -> PT
    mapping IOVA and IOVA2; ``tables`` holds dt, pt (and pta on vsi)."""

    async def main():
        k = Kernel()
        set_current(k.add_cpu())
        rec = Recorder()
        k.attach(rec)
        hw = IommuHw(k, "iommu0", 40, layout=layout, tlb_retention=retention, walk_cache=walk_cache)
        await clk_bulk_prepare(1, hw.clks)
        await clk_bulk_enable(1, hw.clks)
        dt = await _page("dt")
        pt = await _pt({IOVA: PADDR, IOVA2: PADDR2})
        await _dte(dt, IOVA, pt)
        tables = {"dt": dt, "pt": pt}
        if layout == "vsi":
            pta = await _page("pta")
            await table_write64(pta, 0, dt.phys & 0xFFFFFC00)
            await _sync(pta)
            tables["pta"] = pta
            await writel(hw, VSI_MMU_AHB_TLB_ARRAY_BASE_L_BASE, pta.phys)
            await writel(hw, VSI_MMU_AHB_CONTROL_BASE, VSI_MMU_BIT_ENABLE)
        else:
            await writel(hw, RK_MMU_DTE_ADDR, dt.phys)
            await writel(hw, RK_MMU_COMMAND, RK_MMU_CMD_ENABLE_PAGING)
        await test(k, hw, DmaMaster(hw, "vpu0"), tables, rec)

    trio.run(main)


async def _zap_all(hw):
    if hw.layout == "vsi":
        await writel(hw, VSI_MMU_FLUSH_BASE, VSI_MMU_BIT_FLUSH)
        await writel(hw, VSI_MMU_FLUSH_BASE, 0)
    else:
        await writel(hw, RK_MMU_COMMAND, RK_MMU_CMD_ZAP_CACHE)


# -- the hardware ------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["rk", "vsi"])
def test_a_walk_fills_the_cache_and_the_next_walk_skips_the_dt(layout):
    async def t(k, hw, m, tb, rec):
        a = await m.dma(IOVA)
        assert (a.outcome, a.paddr, a.cached) == ("walk", PADDR, ())
        levels = sorted(e.level for e in hw.tlb.walk.values())
        assert levels == (["dte", "pta"] if layout == "vsi" else ["dte"])
        rec.walks.clear()
        b = await m.dma(IOVA2)  # a TLB miss in the same 4 MiB: the DTE comes from the cache
        assert (b.outcome, b.paddr, b.cached, b.dt, b.pt) == ("walk", PADDR2, (), tb["dt"], tb["pt"])
        assert rec.walks == [(tb["pt"], ())]  # only the PT is read, and nothing rests on the cache

    run(t, layout)


@pytest.mark.parametrize("layout", ["rk", "vsi"])
def test_a_zap_empties_it(layout):
    async def t(k, hw, m, tb, rec):
        await m.dma(IOVA)
        assert hw.tlb.walk and len(hw.tlb) == 1
        await _zap_all(hw)
        assert not hw.tlb.walk and len(hw.tlb) == 0

    run(t, layout)


def test_rk_zap_one_line_drops_the_dte_of_its_4mib_only():
    async def t(k, hw, m, tb, rec):
        pt2 = await _pt({OTHER: PADDR})
        await _dte(tb["dt"], OTHER, pt2)
        await m.dma(IOVA)
        await m.dma(OTHER)
        assert len(hw.tlb.walk) == 2
        await writel(hw, RK_MMU_ZAP_ONE_LINE, IOVA2)  # another line of the same 4 MiB
        assert [e.addr for e in hw.tlb.walk.values()] == [tb["dt"].phys + 4 * (OTHER >> 22)]
        assert (await m.dma(IOVA)).outcome == "tlb"  # IOVA's own line was not zapped

    run(t)


@pytest.mark.parametrize("layout", ["rk", "vsi"])
def test_a_stale_dte_is_used_until_zapped(layout):
    async def t(k, hw, m, tb, rec):
        await m.dma(IOVA)
        # the CPU points the DTE at a new PT (mapping IOVA2 elsewhere) and syncs, no zap
        pt2 = await _pt({IOVA2: 0x40077000})
        await _dte(tb["dt"], IOVA, pt2)
        a = await m.dma(IOVA2)  # a TLB miss: the walk takes the cached DTE
        assert (a.outcome, a.paddr, a.pt, a.cached) == ("walk", PADDR2, tb["pt"], ("dte",))
        assert rec.walks[-1] == (tb["pt"], ("dte",))
        assert hw.page_references()[tb["pt"]] == ("dte",)  # only the cache still names the old PT
        assert hw.page_references()[pt2] == ()
        await _zap_all(hw)
        b = await m.dma(IOVA2)
        assert (b.outcome, b.paddr, b.pt, b.cached) == ("walk", 0x40077000, pt2, ())
        assert tb["pt"] not in hw.page_references()

    run(t, layout)


def test_without_the_cache_every_walk_reads_memory():
    async def t(k, hw, m, tb, rec):
        await m.dma(IOVA)
        assert not hw.tlb.walk
        pt2 = await _pt({IOVA2: 0x40077000})
        await _dte(tb["dt"], IOVA, pt2)
        a = await m.dma(IOVA2)
        assert (a.paddr, a.pt, a.cached) == (0x40077000, pt2, ())

    run(t, walk_cache=())


def test_vsi_a_stale_pta_entry_is_used_until_flushed():
    async def t(k, hw, m, tb, rec):
        await m.dma(IOVA)
        dt2 = await _page("dt")
        pt2 = await _pt({IOVA2: 0x40077000})
        await _dte(dt2, IOVA2, pt2)
        await table_write64(tb["pta"], 0, dt2.phys & 0xFFFFFC00)
        await _sync(tb["pta"])
        a = await m.dma(IOVA2)
        assert (a.paddr, a.dt, a.cached) == (PADDR2, tb["dt"], ("pta",))  # the old DT itself is unchanged
        await _zap_all(hw)
        assert (await m.dma(IOVA2)).paddr == 0x40077000

    run(t, "vsi")


def test_entries_live_through_what_the_tlb_does_and_say_so():
    async def t(k, hw, m, tb, rec):
        await m.dma(IOVA)
        await clk_bulk_disable(1, hw.clks)
        await clk_bulk_enable(1, hw.clks)
        e = next(iter(hw.tlb.walk.values()))
        assert e.survived == {"clock-off"}
        await _dte(tb["dt"], IOVA, None)  # the DTE cleared, no zap
        a = await m.dma(IOVA2)
        assert (a.outcome, a.cached, a.survived) == ("walk", ("dte",), ("clock-off",))
        assert hw.page_references()[tb["pt"]] == ("dte", "clock-off")

    run(t)


def test_with_no_retention_a_clock_off_empties_it():
    async def t(k, hw, m, tb, rec):
        await m.dma(IOVA)
        await clk_bulk_disable(1, hw.clks)
        assert not hw.tlb.walk

    run(t, retention=())


def test_a_freed_and_reused_pt_behind_a_cached_dte_is_reported():
    async def t(k, hw, m, tb, rec):
        await m.dma(IOVA)
        pt = tb["pt"]
        await _dte(tb["dt"], IOVA, None)
        free_pages(pt)
        other = await alloc_pages(GFP_KERNEL | GFP_DMA32, tag="data")
        assert other.phys == pt.phys  # the pfn is reused at once
        rec.walks.clear()
        await m.dma(IOVA2)
        assert (pt, ("dte",)) in rec.walks  # the walker used the freed PT's memory

    run(t)


def test_the_config_default_and_a_bad_level():
    assert DEFAULT_WALK_CACHE == WALK_CACHE_LEVELS == ("pta", "dte")
    assert SystemConfig.from_dict({}).walk_cache == ("pta", "dte")
    assert SystemConfig.from_dict({"walk_cache": ["dte", "pta"]}).walk_cache == ("pta", "dte")
    assert SystemConfig.from_dict({"walk_cache": []}).walk_cache == ()
    with pytest.raises(ValueError, match="unknown level 'pde'"):
        SystemConfig.from_dict({"walk_cache": ["pde"]})


# -- the oracle: a table freed before the flush ------------------------------------------


def free_before_flush(walk_cache=DEFAULT_WALK_CACHE, flush_first=False):
    """Two CPUs on VSI hardware: CPU0 unmaps the last page of a PT, clears the
    DTE, syncs, and frees the PT, then flushes (the bug) or flushes first (the
    fix); CPU1 is the master doing DMA in that 4 MiB."""

    def scenario(kernel):
        st = {}

        async def setup():
            hw = IommuHw(kernel, "iommu0", 40, layout="vsi", walk_cache=walk_cache)
            await clk_bulk_prepare(1, hw.clks)
            await clk_bulk_enable(1, hw.clks)
            dt, pta = await _page("dt"), await _page("pta")
            pt = await _pt({IOVA: PADDR, IOVA2: PADDR2})
            await _dte(dt, IOVA, pt)
            await table_write64(pta, 0, dt.phys & 0xFFFFFC00)
            await _sync(pta)
            await writel(hw, VSI_MMU_AHB_TLB_ARRAY_BASE_L_BASE, pta.phys)
            await writel(hw, VSI_MMU_AHB_CONTROL_BASE, VSI_MMU_BIT_ENABLE)
            st.update(hw=hw, dt=dt, pta=pta, pt=pt, m=DmaMaster(hw, "vpu0"))

        async def unmap():
            hw, pt = st["hw"], st["pt"]
            for iova in (IOVA, IOVA2):
                await table_write(pt, (iova >> 12) & 0x3FF, 0)
            await _sync(pt)
            await _dte(st["dt"], IOVA, None)
            if flush_first:
                await _zap_all(hw)
            free_pages(pt)
            if not flush_first:
                await _zap_all(hw)

        async def dma():
            for iova in (IOVA, IOVA2, IOVA):
                await st["m"].dma(iova)

        async def teardown():
            hw = st["hw"]
            await writel(hw, VSI_MMU_AHB_CONTROL_BASE, 0)
            free_pages(st["dt"])
            free_pages(st["pta"])

        kernel.add_setup(setup)
        kernel.add_teardown(teardown)
        return [unmap, dma]

    return scenario


def _found(scenario, seeds=10, schedules=30):
    """Seeds whose search found something, and the violations."""
    hits = []
    for seed in range(seeds):
        r = stress.explore(scenario, strategy="pct", schedules=schedules, seed=seed, shrink=False)
        hits += r.violations
    return hits


def test_a_pt_freed_while_the_walk_cache_names_it_is_found_and_rests_on_it():
    """Measured: every one of 10 seeds finds it within 30 schedules (the DMA
    must walk before the DTE is cleared); without the walk cache, or with the
    flush before the free, none does."""
    hits = _found(free_before_flush())
    assert len(hits) >= 7, len(hits)
    for v in hits:
        assert v.kind == "pagetable-use-after-free", v.message
        assert "walk cache" in v.message
        a = v.report["violation"]["assumptions"]
        assert any("caches DT entries" in x for x in a), a
        assert "this rests on a hardware fact the model assumes (walk_cache)" in v.report["violation"]["splat"]
    assert _found(free_before_flush(walk_cache=())) == []
    assert _found(free_before_flush(flush_first=True)) == []


def _off_free_on(zap):
    """One CPU, rk: a walk caches the DTE; translation off; the DTE cleared and
    the PT freed (no finding: nothing translates); translation back on, with
    or without a zap; a DMA in that 4 MiB."""

    def scenario(kernel):
        async def body():
            hw = IommuHw(kernel, "iommu0", 40)
            await clk_bulk_prepare(1, hw.clks)
            await clk_bulk_enable(1, hw.clks)
            dt = await _page("dt")
            pt = await _pt({IOVA: PADDR})
            await _dte(dt, IOVA, pt)
            await writel(hw, RK_MMU_DTE_ADDR, dt.phys)
            await writel(hw, RK_MMU_COMMAND, RK_MMU_CMD_ENABLE_PAGING)
            m = DmaMaster(hw, "vpu0")
            await m.dma(IOVA)
            await writel(hw, RK_MMU_COMMAND, 1)  # RK_MMU_CMD_DISABLE_PAGING
            await _dte(dt, IOVA, None)
            free_pages(pt)
            if zap:
                await writel(hw, RK_MMU_COMMAND, RK_MMU_CMD_ZAP_CACHE)
            await writel(hw, RK_MMU_COMMAND, RK_MMU_CMD_ENABLE_PAGING)
            await m.dma(IOVA2)
            await writel(hw, RK_MMU_COMMAND, 1)
            free_pages(dt)

        return [body]

    return scenario


def test_a_walk_through_a_cached_dte_of_a_freed_pt_rests_on_cache_and_retention():
    from stress.choosers import Replay
    from stress.engine import run_schedule

    out = run_schedule(_off_free_on(zap=False), Replay([]))
    assert out.kind == "pagetable-use-after-free", out.violation
    assert "walked table page" in out.violation["message"] and "through its walk cache" in out.violation["message"]
    a = out.violation["assumptions"]
    assert any("caches DT entries" in x for x in a) and any("translation is disabled" in x for x in a), a
    assert run_schedule(_off_free_on(zap=True), Replay([])).kind is None


# -- the command line and the fixed driver ------------------------------------------------


def test_cli_option_is_checked_and_recorded(tmp_path, capsys):
    from stress.cli import main

    assert main(["hunt", "--driver", "vsi-mainline", "--walk-cache", "pde"]) == 2
    err = capsys.readouterr().err
    assert "--walk-cache" in err and len(err.strip().splitlines()) == 1
    assert main(["soak", "--driver", "vsi-mainline", "--walk-cache", "all", "--schedules", "1"]) == 2
    assert "--walk-cache" in capsys.readouterr().err
    assert main(["hunt", "--scenario", "stress.examples:abba", "--walk-cache", "none"]) == 2
    assert "not of --scenario" in capsys.readouterr().err
    out = tmp_path / "r"
    main(["hunt", "--driver", "vsi-mainline", "--walk-cache", "dte", "--schedules", "20", "--out", str(out), "--json"])
    reports = [json.load(open(out / n)) for n in os.listdir(out) if n.endswith(".json")]
    assert reports and all(r["target"]["workload"]["walk_cache"] == ["dte"] for r in reports)


def test_vsi_fixed_stays_clean_with_the_walk_cache():
    """Both levels on (a superset of what one level caches): no finding in
    1000 schedules here; the CLI hunts of 5000 per --walk-cache value and
    the 100,000-schedule soaks of the issue are clean too).  Both levels are
    the default, so every clean-driver test runs with them."""
    cfg = workload_config(walk_cache=list(WALK_CACHE_LEVELS))
    r = stress.explore(driver_scenario("vsi-fixed", cfg), strategy="pct", schedules=1000, seed=1)
    assert r.violations == [], [v.message for v in r.violations]
    assert r.schedules == 1000
