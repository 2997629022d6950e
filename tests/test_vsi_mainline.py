"""vsi-mainline: drivers/iommu/vsi-iommu.c as merged, transcribed.

The hunt finds the merged driver's defects by kind; each report replays to
its kind; and, straight through, the transcription programs the VSI
registers as the C does.
"""

from errno import ENOMEM  # noqa: F401

import trio

import stress
import stress.targets
import stress.workload
from stress.checkers import default_checkers
from model.drivers import DRIVERS, VsiMainline, get_driver
from model.hw import (
    VSI_MMU_AHB_CONTROL_BASE,
    VSI_MMU_AHB_EXCEPTION_BASE,
    VSI_MMU_AHB_TLB_ARRAY_BASE_L_BASE,
    VSI_MMU_BIT_ENABLE,
    VSI_MMU_BIT_FLUSH,
    VSI_MMU_CONFIG1_BASE,
    VSI_MMU_FLUSH_BASE,
    VSI_MMU_OUT_OF_BOUND,
    VSI_MASTER_TLB_MASK,
)
from model.kernel import Kernel, set_current
from model.workloads import System, iova_of, op_attach, op_iova_to_phys, op_map, op_unmap

# The random hunt also reports a data-race on vsi_iommu->enable between a
# runtime resume and an earlier runtime suspend; the PM core orders those
# (the race checker has no happens-before edge through runtime PM), so it is
# not asserted here; the genuine data-race is the list one below.
EXPECTED = {"sleep-in-atomic", "invalid-access"}
HUNT = dict(strategy="pct", schedules=2000, seed=0, keep_going=True, shrink=False)


class Mmio:
    def __init__(self):
        self.log = []

    def mmio(self, cpu, hw, off, value, is_write):
        if is_write:
            self.log.append((hw, off, value))


def straight(test):
    async def main():
        k = Kernel()
        set_current(k.add_cpu())
        mm = Mmio()
        k.attach(mm)
        sys = System.boot(k, VsiMainline, None)
        for fn in k.setup:
            await fn()
        await test(sys, mm)
        return k, sys

    return trio.run(main)


def test_registered():
    assert get_driver("vsi-mainline") is VsiMainline and DRIVERS["vsi-mainline"] is VsiMainline
    assert VsiMainline.layout == "vsi" and VsiMainline.summary


def test_programs_the_vsi_registers_as_the_c_does():
    async def t(sys, mm):
        for dev, hw, pdev in zip(sys.devices, sys.hws, sys.iommus):
            dom = dev.iommu_group.domain
            # vsi_iommu_enable: pta_dma -> TLB_ARRAY_BASE_L, OUT_OF_BOUND -> CONFIG1,
            # ENABLE -> AHB_EXCEPTION then AHB_CONTROL; the attach then flushes (bit 4, then 0)
            writes = [(off, v) for h, off, v in mm.log if h is hw]
            seq = [
                (VSI_MMU_AHB_TLB_ARRAY_BASE_L_BASE, dom.pta_dma),
                (VSI_MMU_CONFIG1_BASE, VSI_MMU_OUT_OF_BOUND),
                (VSI_MMU_AHB_EXCEPTION_BASE, VSI_MMU_BIT_ENABLE),
                (VSI_MMU_AHB_CONTROL_BASE, VSI_MMU_BIT_ENABLE),
                (VSI_MMU_FLUSH_BASE, VSI_MMU_BIT_FLUSH),
                (VSI_MMU_FLUSH_BASE, 0),
            ]
            i = writes.index(seq[0])
            assert writes[i : i + len(seq)] == seq
            assert hw.base == dom.pta.phys and hw.paging and pdev.driver_data.enable.value
            # pta[0] = vsi_mk_pta(dt_dma)
            assert dom.pta.words[0] == dom.dt_dma & VSI_MASTER_TLB_MASK
        hw = sys.hws[0]
        X = iova_of(0)
        assert await op_attach(sys, 0, 0) == 0  # slot 0 on device 0: iommu0 on its list
        assert hw.base == sys.slots[0].pta.phys
        del mm.log[:]
        assert await op_map(sys, 0, X, 0x1000) == 0
        assert await op_iova_to_phys(sys, 0, X + 0x123) & 0xFFF == 0x123
        # map flushes the TLB of every attached IOMMU: FLUSH bit 4, then 0
        flushes = [(h, v) for h, off, v in mm.log if off == VSI_MMU_FLUSH_BASE]
        assert (hw, VSI_MMU_BIT_FLUSH) in flushes and (hw, 0) in flushes
        # the same PTE again: (pte_count - 1) * SPAGE_SIZE as an int, -4096
        assert await op_map(sys, 0, X, 0x1000) == -4096
        del mm.log[:]
        assert await op_unmap(sys, 0, X, 0x1000) == 0x1000
        assert [v for h, off, v in mm.log if off == VSI_MMU_FLUSH_BASE and h is hw] == [VSI_MMU_BIT_FLUSH, 0]
        assert await op_iova_to_phys(sys, 0, X) == 0

    straight(t)


def _replays_to_its_kind(v):
    """The report replays to its kind (``replay_report``: with the options
    and prior schedules the report records, as ``iommu-stress replay``)."""
    got = stress.targets.replay_report(v.report, trace=False)
    assert got is not None and got.kind == v.kind, (v.kind, got and got.kind)


def test_hunt_finds_the_merged_drivers_defects_and_each_replays():
    scenario = stress.workload.driver_scenario("vsi-mainline", stress.workload.workload_config())
    result = stress.explore(scenario, **HUNT)
    kinds = {v.kind for v in result.violations}
    assert EXPECTED <= kinds, kinds
    for v in result.violations:
        _replays_to_its_kind(v)


# The TLB is never flushed on resume and vsi_iommu_flush_tlb skips an IOMMU
# whose ``enable`` is false (suspended): an unmap while the IOMMU is
# runtime-suspended leaves the line for the DMA after resume.  The data race
# on ``iommu->enable`` (suspend writes it unlocked) fires first in the random
# hunt, so this program is hunted without the race checker.
STALE_PROGRAM = [
    ["attach", {"dev": 0, "dom": 0}],
    ["map", {"dom": 0, "iova": 0, "pages": 1, "gfp": "GFP_KERNEL"}],
    ["dma", {"dev": 0, "iova": 0, "write": False}],
    ["suspend", {"dev": 0}],
    ["unmap", {"dom": 0, "iova": 0, "pages": 1}],
    ["resume", {"dev": 0}],
    ["dma", {"dev": 0, "iova": 0, "write": False}],
]


def _hunt_program(programs, checkers=None, schedules=50):
    cfg = stress.workload.workload_config(cpus=len(programs), programs=programs)
    scenario = stress.workload.driver_scenario("vsi-mainline", cfg)
    # (a fixed-program driver scenario does not name its target itself; say it)
    target = {"driver": "vsi-mainline", "workload": cfg}
    return stress.explore(
        scenario, strategy="pct", schedules=schedules, seed=0, keep_going=True, shrink=False, checkers=checkers, target=target
    )


def test_attach_unlinks_from_the_old_domains_list_under_the_new_domains_lock():
    """vsi_iommu_attach_device holds only the NEW domain's lock for
    list_del_init(&iommu->node); a map on the old domain walks that list in
    vsi_iommu_flush_tlb under the old domain's lock."""
    programs = [
        [["attach", {"dev": 0, "dom": 0}], ["detach", {"dev": 0}]],
        [["map", {"dom": 0, "iova": 0, "pages": 1, "gfp": "GFP_KERNEL"}], ["map", {"dom": 0, "iova": 1, "pages": 1, "gfp": "GFP_KERNEL"}]],
    ]
    result = _hunt_program(programs)
    races = [v for v in result.violations if v.kind == "data-race"]
    assert races and "vsi_iommu_domain->iommus" in races[0].message, [v.message for v in result.violations]
    for v in result.violations:
        _replays_to_its_kind(v)


def test_unmap_while_suspended_leaves_a_stale_tlb_line():
    checkers = [c for c in default_checkers() if c != "race"]
    result = _hunt_program([STALE_PROGRAM], checkers=checkers)
    kinds = {v.kind for v in result.violations}
    assert "stale-tlb" in kinds, kinds
    for v in result.violations:
        _replays_to_its_kind(v)
