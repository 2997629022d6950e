"""vsi-v3 (the driver as posted in v3 of the series) and vsi-v3-gfp-or.

The hunt finds the review's points in vsi-v3 as consequences of the code:
the identity window inside attach (``dma-isolation``: the device's DMA
bypasses translation while a paging domain is being attached) and the
caller's ``__GFP_ACCOUNT`` dropped by the forced ``GFP_ATOMIC | GFP_DMA32``
page-table allocation (``gfp-accounting-dropped``); each report replays to
its kind.  The thread's proposed ``gfp | GFP_ATOMIC | GFP_DMA32`` keeps
``__GFP_DIRECT_RECLAIM`` of GFP_KERNEL: ``sleep-in-atomic`` under dt_lock.

The hunts run without the ``race`` checker: it has no happens-before edge
from the boot CPU to the workload CPUs, so v3's unlocked ``iommu->domain``
(written at boot by ``domain_alloc_paging``) is reported as a data race
with boot at schedule 0 of every run and stops it before anything else.
"""

import trio

import stress
import stress.targets
import stress.workload
from model.drivers import DRIVERS, VsiV3, VsiV3GfpOr, get_driver
from model.hw import (
    VSI_MMU_AHB_CONTROL_BASE,
    VSI_MMU_AHB_EXCEPTION_BASE,
    VSI_MMU_AHB_TLB_ARRAY_BASE_L_BASE,
    VSI_MMU_BIT_ENABLE,
    VSI_MMU_CONFIG1_BASE,
    VSI_MMU_FLUSH_BASE,
    VSI_MMU_OUT_OF_BOUND,
)
from model.kernel import GFP_KERNEL_ACCOUNT, Kernel, set_current
from model.workloads import System, iova_of, op_attach, op_claim_dma_owner, op_iova_to_phys, op_map, op_unbind, op_unmap
from stress.checkers import default_checkers

CHECKERS = [c for c in default_checkers() if c != "race"]
HUNT = dict(strategy="pct", seed=0, keep_going=True, shrink=False, checkers=CHECKERS)


class Mmio:
    def __init__(self):
        self.log = []

    def mmio(self, cpu, hw, off, value, is_write):
        if is_write:
            self.log.append((hw, off, value))


def straight(driver, test):
    async def main():
        k = Kernel()
        set_current(k.add_cpu())
        mm = Mmio()
        k.attach(mm)
        sys = System.boot(k, driver, None)
        for fn in k.setup:
            await fn()
        await test(sys, mm)

    trio.run(main)


def replay_kind(report):
    """The kind the report replays to (``replay_report``: with the options and
    prior schedules the report records, as ``iommu-stress replay``)."""
    out = stress.targets.replay_report(report, trace=False)
    return out.violation["kind"] if out.violation else None


def hunt(driver, schedules, **cfg):
    scenario = stress.workload.driver_scenario(driver, stress.workload.workload_config(**cfg))
    return stress.explore(scenario, schedules=schedules, **HUNT)


def test_registered():
    assert get_driver("vsi-v3") is VsiV3 and DRIVERS["vsi-v3"] is VsiV3
    assert get_driver("vsi-v3-gfp-or") is VsiV3GfpOr and issubclass(VsiV3GfpOr, VsiV3)
    assert VsiV3.summary and VsiV3GfpOr.summary and VsiV3.layout == "vsi"
    # the subclass overrides only what the thread changed
    own = {k for k, v in vars(VsiV3GfpOr).items() if callable(v)}
    assert own == {"vsi_dte_get_page_table", "vsi_iommu_map"}


def test_straight_through_as_the_c_does():
    async def t(sys, mm):
        hw, pdev = sys.hws[0], sys.iommus[0]
        iommu = pdev.driver_data
        # domain_alloc_paging's side effect: after the boot's user domains,
        # iommu->domain is the identity domain and resume skipped the enable
        assert iommu.domain.value is sys.driver.identity_domain
        assert not hw.paging
        # VFIO: claim (blocking domain), then the user domain: the identity
        # attach turns translation OFF (AHB_CONTROL = 0) before the enable
        assert await op_unbind(sys, 0) == 0  # vfio-pci: the kernel driver is unbound first
        assert await op_claim_dma_owner(sys, 0) == 0
        assert hw.paging
        del mm.log[:]
        assert await op_attach(sys, 0, 0) == 0
        dom = sys.slots[0]
        writes = [(off, v) for h, off, v in mm.log if h is hw]
        assert writes == [
            (VSI_MMU_AHB_CONTROL_BASE, 0),
            (VSI_MMU_AHB_TLB_ARRAY_BASE_L_BASE, dom.pta_dma),
            (VSI_MMU_CONFIG1_BASE, VSI_MMU_OUT_OF_BOUND),
            (VSI_MMU_AHB_EXCEPTION_BASE, VSI_MMU_BIT_ENABLE),
            (VSI_MMU_AHB_CONTROL_BASE, VSI_MMU_BIT_ENABLE),
        ]
        assert hw.base == dom.pta.phys and hw.paging
        # the driver holds its clocks only around each register sequence (the
        # clock itself may run on: a master sharing it holds it)
        assert iommu.clocks.enable_count == 0
        X = iova_of(0)
        del mm.log[:]
        assert await op_map(sys, 0, X, 0x1000, GFP_KERNEL_ACCOUNT) == 0
        assert await op_iova_to_phys(sys, 0, X + 0x123) & 0xFFF == 0x123
        assert await op_unmap(sys, 0, X, 0x1000) == 0x1000
        assert await op_iova_to_phys(sys, 0, X) == 0
        # no TLB flush in map or unmap
        assert not [1 for h, off, v in mm.log if off == VSI_MMU_FLUSH_BASE]

    straight(VsiV3, t)


def test_hunt_vsi_v3_finds_the_review_points_and_each_replays():
    result = hunt("vsi-v3", 300)
    found = {v.kind: v for v in result.violations}
    assert {"dma-isolation", "gfp-accounting-dropped"} <= set(found), set(found)
    assert "bypass" in found["dma-isolation"].message
    for v in result.violations:
        assert replay_kind(v.report) == v.kind


def test_identity_window_on_the_vfio_path():
    """VFIO: claim DMA ownership of vpu1, then attach user domain d0, while
    vpu1 DMAs.  The access goes through bypass inside ``attach(vpu1, d0)``,
    after ``vsi_iommu_identity_attach`` wrote ``AHB_CONTROL = 0``.

    One user domain, allocated at boot for vpu0, so that iommu1 translates
    through its default domain after boot (``domain_alloc_paging`` sets
    ``iommu->domain`` of the IOMMU it is allocated for to identity, and
    resume then skips the enable: iommu0 is left in bypass from boot).
    """
    read = ["dma", {"dev": 1, "iova": 0, "write": False}]
    cfg = dict(domains=1, programs=[[["claim", {"dev": 1}], ["attach", {"dev": 1, "dom": 0}]], [read] * 6])
    config = stress.workload.workload_config(**cfg)
    scenario = stress.workload.driver_scenario("vsi-v3", config)
    result = stress.explore(scenario, schedules=200, target={"driver": "vsi-v3", "workload": config}, **HUNT)
    found = {v.kind: v for v in result.violations}
    assert "dma-isolation" in found, set(found)
    v = found["dma-isolation"]
    assert "vpu1" in v.message and "bypass" in v.message
    kasan = v.report["options"].get("kasan_reported", False)  # found after KASAN's one report
    out = stress.replay_decisions(scenario, v.report["decisions"], checkers=CHECKERS, trace=True, kasan_reported=kasan)
    assert out.violation["kind"] == "dma-isolation"
    cpu0 = [tuple(e[2:4]) for e in out.timeline if e[1] == "CPU0"]
    ops = [t for kind, t in cpu0 if kind == "op"]
    assert ops[-1] == "begin attach(vpu1, d0)", ops
    after = cpu0[cpu0.index(("op", "begin attach(vpu1, d0)")) :]
    assert ("mmio", f"writel(0x0, iommu1 + AHB_CONTROL({VSI_MMU_AHB_CONTROL_BASE:#x}))") in after, after
    assert replay_kind(v.report) == "dma-isolation"


def test_hunt_gfp_or_sleeps_in_atomic_and_replays():
    result = hunt("vsi-v3-gfp-or", 200)
    found = {v.kind: v for v in result.violations}
    assert "sleep-in-atomic" in found, set(found)
    assert "gfp-accounting-dropped" not in found  # the caller's gfp is kept now
    assert replay_kind(found["sleep-in-atomic"].report) == "sleep-in-atomic"
