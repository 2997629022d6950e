"""The model above the hardware: runtime PM, the IOMMU core, vsi-fixed, workloads.

Unit tests run model code straight through (NULL scheduler, one CPU, plain
``trio.run``); the end-to-end tests run vsi-fixed under the engine and must
find nothing, and a few one-method mutants of it show that the model gives
the checkers what they need to find each kind of bug.
"""

from errno import EADDRINUSE, EBUSY, EINVAL, EIO, ENODEV, ENOENT, EPERM

import pytest
import trio

import stress
from stress.checkers import default_checkers
from model.drivers import DRIVERS, VsiFixed, get_driver
from model.drivers import vsi_common as vf
from model.drivers.rk_fixed import RkFixed
from model.hw import (
    RK_MMU_CMD_ENABLE_PAGING,
    RK_MMU_COMMAND,
    RK_MMU_DTE_ADDR,
    RK_MMU_INT_MASK,
    RK_MMU_IRQ_MASK,
    RK_MMU_STATUS,
    RK_MMU_STATUS_PAGING_ENABLED,
    clk_bulk_disable,
    readl,
    writel,
)
from model.iommu import (
    IOMMU_DOMAIN_DMA,
    IOMMU_DOMAIN_IDENTITY,
    IOMMU_DOMAIN_UNMANAGED,
    IOMMU_READ,
    IommuDriver,
    iommu_attach_device,
    iommu_iova_to_phys,
    iommu_map,
    iommu_unmap,
    list_add_tail,
    list_del_init,
    list_entries,
    validate_driver,
)
from model.kernel import (
    GFP_ATOMIC,
    GFP_DMA32,
    GFP_KERNEL,
    GFP_KERNEL_ACCOUNT,
    Kernel,
    ModelBug,
    SZ_4G,
    __GFP_ACCOUNT,
    __GFP_DIRECT_RECLAIM,
    set_current,
    spin_lock,
    spin_lock_irqsave,
    spin_unlock,
    spin_unlock_irqrestore,
)
from model.kernel.dma import DMA_TO_DEVICE, dma_map_single, table_read, table_write
from model.kernel.pm import (
    DL_FLAG_PM_RUNTIME,
    DL_FLAG_STATELESS,
    RPM_ACTIVE,
    RPM_SUSPENDED,
    device_link_add,
    flush_pm_wq,
    pm_runtime_enable,
    pm_runtime_get,
    pm_runtime_get_if_active,
    pm_runtime_get_if_in_use,
    pm_runtime_put,
    pm_runtime_put_autosuspend,
    pm_runtime_resume_and_get,
    pm_runtime_use_autosuspend,
)
from model.workloads import (
    FAULT_IOVA,
    System,
    add_dma_agent,
    build_scenario,
    iova_of,
    op_attach,
    op_bind,
    op_claim_dma_owner,
    op_unbind,
    op_detach,
    op_dma,
    op_domain_alloc,
    op_domain_free,
    op_fault_irq,
    op_iova_to_phys,
    op_map,
    op_release_dma_owner,
    op_resume,
    op_suspend,
    op_unmap,
)
from stress.workload import driver_scenario, workload_config

X = iova_of(0)
Y = iova_of(1)
Z = iova_of(2)


# -- harness ------------------------------------------------------------------------


class Events:
    """Records the ``iommu`` and ``alloc`` hooks."""

    def __init__(self):
        self.log = []
        self.allocs = []

    def iommu(self, cpu, what, info):
        self.log.append((what, info))

    def alloc(self, cpu, obj):
        self.allocs.append(obj)

    def whats(self):
        return [w for w, _ in self.log]


def straight(test, driver=RkFixed, config=None, events=Events):
    """Boot a System and run ``await test(sys, events())`` on one CPU, then tear down."""

    async def main():
        k = Kernel()
        set_current(k.add_cpu())
        ev = events()
        k.attach(ev)
        sys = System.boot(k, driver, config)
        for fn in k.setup:
            await fn()
        await test(sys, ev)
        for fn in k.teardown:
            await fn()
        return k, sys

    return trio.run(main)


class Dev:
    """A bare device for runtime-PM tests."""

    def __init__(self, kernel, name, log):
        from model.kernel.pm import DevPmInfo

        self.name = name
        self.power = DevPmInfo(kernel, self)
        self.pm_ops = self
        self.log = log

    async def runtime_suspend(self, dev):
        self.log.append(f"{self.name} suspend")
        return 0

    async def runtime_resume(self, dev):
        self.log.append(f"{self.name} resume")
        return 0


def pm_test(test):
    async def main():
        k = Kernel()
        set_current(k.add_cpu())
        log = []
        iommu = Dev(k, "iommu", log)
        master = Dev(k, "master", log)
        pm_runtime_use_autosuspend(iommu)
        pm_runtime_enable(iommu)
        pm_runtime_enable(master)
        await device_link_add(master, iommu, DL_FLAG_STATELESS | DL_FLAG_PM_RUNTIME)
        await test(k, iommu, master, log)

    trio.run(main)


# -- runtime PM ------------------------------------------------------------------------


def test_pm_get_if_in_use_never_resumes():
    async def t(k, iommu, master, log):
        assert await pm_runtime_get_if_in_use(iommu) == 0  # suspended
        assert await pm_runtime_resume_and_get(iommu) == 0
        assert iommu.power.usage_count == 1
        assert await pm_runtime_get_if_in_use(iommu) == 1
        assert iommu.power.usage_count == 2
        await pm_runtime_put_autosuspend(iommu)
        await pm_runtime_put_autosuspend(iommu)
        assert iommu.power.runtime_status == RPM_ACTIVE  # the autosuspend is queued
        assert await pm_runtime_get_if_in_use(iommu) == 0  # active but unused
        assert await pm_runtime_get_if_active(iommu) == 1
        await pm_runtime_put(iommu)
        await flush_pm_wq(k)
        assert iommu.power.runtime_status == RPM_SUSPENDED
        assert log == ["iommu resume", "iommu suspend"]

    pm_test(t)


def test_pm_consumer_resume_resumes_supplier_first_and_holds_it():
    async def t(k, iommu, master, log):
        assert await pm_runtime_resume_and_get(master) == 0
        assert log == ["iommu resume", "master resume"]
        assert iommu.power.usage_count == 1  # held by the link
        await flush_pm_wq(k)
        assert iommu.power.runtime_status == RPM_ACTIVE  # cannot suspend under an active consumer
        await pm_runtime_put(master)
        await flush_pm_wq(k)
        assert (master.power.runtime_status, iommu.power.runtime_status) == (RPM_SUSPENDED, RPM_SUSPENDED)
        assert log[2:] == ["master suspend", "iommu suspend"]
        assert iommu.power.usage_count == 0

    pm_test(t)


def test_pm_queued_suspend_rechecks_usage_when_it_runs():
    async def t(k, iommu, master, log):
        await pm_runtime_resume_and_get(iommu)
        await pm_runtime_put_autosuspend(iommu)  # queued
        assert k.pm_wq.queue == [iommu]
        assert await pm_runtime_get_if_active(iommu) == 1  # in use again before the worker ran
        await flush_pm_wq(k)
        assert iommu.power.runtime_status == RPM_ACTIVE
        assert log == ["iommu resume"]

    pm_test(t)


def test_pm_get_is_async():
    async def t(k, iommu, master, log):
        assert await pm_runtime_get(iommu) == 0  # queued, not resumed
        assert iommu.power.runtime_status == RPM_SUSPENDED and iommu.power.usage_count == 1
        await flush_pm_wq(k)
        assert iommu.power.runtime_status == RPM_ACTIVE
        assert await pm_runtime_get(iommu) == 1

    pm_test(t)


def test_pm_usage_underflow_warns():
    async def t(k, iommu, master, log):
        with pytest.raises(ModelBug, match="usage count underflow"):
            await pm_runtime_put(iommu)

    pm_test(t)


def test_pm_resume_and_get_may_sleep():
    seen = []

    class Watch:
        def might_sleep(self, cpu, what):
            seen.append(what)

    async def t(k, iommu, master, log):
        k.attach(Watch())
        await pm_runtime_get_if_in_use(iommu)
        await pm_runtime_get(iommu)
        assert seen == []
        await pm_runtime_resume_and_get(iommu)
        assert seen == ["pm_runtime_resume_and_get"]

    pm_test(t)


# -- the core and vsi-fixed, straight through -------------------------------------------------


def test_boot_attaches_default_domains_and_programs_the_hardware():
    async def t(sys, ev):
        assert len(sys.hws) == 2 and len(sys.devices) == 2 and len(sys.slots) == 3
        for dev, hw, pdev in zip(sys.devices, sys.hws, sys.iommus):
            group = dev.iommu_group
            assert group.domain is group.default_domain and group.default_domain.type == IOMMU_DOMAIN_DMA
            assert hw.powered and hw.paging and hw.base == group.domain.dt.phys
            iommu = pdev.driver_data
            assert await list_entries(group.domain.iommus) == [iommu]
            assert dev.power.runtime_status == RPM_ACTIVE and pdev.power.runtime_status == RPM_ACTIVE
        assert ev.whats().count("probe") == 2 and ev.whats().count("domain_alloc") == 5
        for dom in sys.slots:
            assert dom.dt.phys < SZ_4G

    k, sys = straight(t)
    assert k.mm.live() == []  # teardown gave everything back
    assert not any(hw.powered for hw in sys.hws)


def test_map_unmap_iova_to_phys_and_dma():
    async def t(sys, ev):
        assert await op_map(sys, 0, X, 0x2000) == 0
        assert await op_map(sys, 0, X + 0x1000, 0x1000) == -EADDRINUSE
        paddr = await op_iova_to_phys(sys, 0, X + 0x1234)
        assert paddr & 0xFFF == 0x234
        assert await op_attach(sys, 0, 0) == 0
        a = await op_dma(sys, 0, X + 0x1234, True)
        assert (a.outcome, a.paddr) == ("walk", paddr)
        assert (await op_dma(sys, 0, X + 0x1234)).outcome == "tlb"
        assert await op_unmap(sys, 0, X, 0x2000) == 0x2000
        assert (await op_dma(sys, 0, X + 0x1234)).outcome == "fault"  # unmap zapped the TLB
        assert await op_iova_to_phys(sys, 0, X) == 0
        assert await op_unmap(sys, 0, X, 0x1000) == 0

    straight(t)


def test_map_keeps_callers_accounting_and_never_blocks_under_the_lock():
    async def t(sys, ev):
        start = len(ev.allocs)
        assert await op_map(sys, 0, Z, 0x1000, GFP_KERNEL_ACCOUNT) == 0
        (pt,) = ev.allocs[start:]
        assert pt.gfp & __GFP_ACCOUNT and pt.gfp & GFP_DMA32 and not pt.gfp & __GFP_DIRECT_RECLAIM
        assert pt.phys < SZ_4G

    straight(t)


def test_events_carry_the_documented_fields():
    async def t(sys, ev):
        ev.log.clear()
        await op_map(sys, 1, Y, 0x1000, GFP_KERNEL)
        await op_attach(sys, 1, 1)
        await op_unmap(sys, 1, Y, 0x1000)
        await op_detach(sys, 1)
        await op_domain_free(sys, 1)
        fields = {}
        for what, info in ev.log:
            fields.setdefault(what, set(info))
        assert fields == {
            "map_begin": {"domain", "iova", "paddr", "size", "prot", "gfp", "ret"},
            "map_end": {"domain", "iova", "paddr", "size", "prot", "gfp", "ret"},
            "dma_map": {"dev", "page", "addr", "size", "mask"},
            "attach_begin": {"group", "dev", "old", "new", "ret"},
            "attach_end": {"group", "dev", "old", "new", "ret"},
            "unmap_begin": {"domain", "iova", "size", "unmapped"},
            "unmap_end": {"domain", "iova", "size", "unmapped"},
            "domain_free": {"domain", "pages"},
            "dma_unmap": {"dev", "addr", "size"},
        }
        dom = sys.slots[1] if sys.slots[1] is not None else ev.log[0][1]["domain"]
        begin = dict(ev.log[0][1])
        assert begin["ret"] is None and begin["gfp"] == GFP_KERNEL and begin["domain"] is dom
        ends = [info for what, info in ev.log if what == "attach_end"]
        assert ends[0]["new"] is dom and ends[0]["ret"] == 0 and ends[1]["old"] is dom
        assert [info["unmapped"] for what, info in ev.log if what == "unmap_end"] == [0x1000]

    straight(t)


def test_attach_rules_and_dma_ownership():
    async def t(sys, ev):
        dev = sys.devices[0]
        assert await op_attach(sys, 0, 0) == 0
        # a kernel-attached domain: neither another domain nor an owner may come in
        assert await iommu_attach_device(sys.slots[1], dev) == -EBUSY
        assert await op_claim_dma_owner(sys, 0) == -EPERM  # the kernel driver uses the group
        assert await op_domain_free(sys, 0) == -EBUSY
        assert await op_attach(sys, 0, "identity") == -EBUSY
        assert await op_detach(sys, 0) == 0
        assert dev.iommu_group.domain is dev.iommu_group.default_domain
        # a kernel driver is bound (iommu_device_use_default_domain at boot):
        # no claim, no type change until it is unbound (iommu.c: -EPERM)
        assert await op_claim_dma_owner(sys, 0) == -EPERM
        assert await op_attach(sys, 0, "identity") == -EPERM
        assert await op_bind(sys, 0) == -EBUSY  # bound already
        assert await op_unbind(sys, 0) == 0
        assert await op_attach(sys, 0, 1) == -ENODEV  # no driver to attach a domain of its own
        # VFIO: claim -> blocked (an empty paging domain here), user domain, replace, release
        assert await op_attach(sys, 0, "blocked") == -EPERM
        assert await op_claim_dma_owner(sys, 0) == 0
        assert await op_bind(sys, 0) == -EBUSY  # iommu_device_use_default_domain: the group is owned
        group = dev.iommu_group
        assert group.domain is group.blocking_domain and group.blocking_domain.type == IOMMU_DOMAIN_UNMANAGED
        assert (await op_dma(sys, 0, X)).outcome == "fault"  # blocked
        assert await op_map(sys, 2, X, 0x1000) == 0
        assert await op_attach(sys, 0, 2) == 0
        assert (await op_dma(sys, 0, X)).outcome == "walk"
        assert await op_attach(sys, 0, 0) == 0  # replace, hitless
        assert (await op_dma(sys, 0, X)).outcome == "fault"
        assert await op_attach(sys, 0, "blocked") == 0
        assert group.domain is group.blocking_domain
        assert await op_release_dma_owner(sys, 0) == 0
        assert group.domain is group.default_domain and group.owner is None
        assert await op_release_dma_owner(sys, 0) == -EINVAL
        assert await op_bind(sys, 0) == 0 and dev.iommu_group.owner_cnt == 1
        assert await op_domain_free(sys, 2) == 0
        assert await op_domain_free(sys, 2) == -ENOENT
        assert await op_map(sys, 2, X, 0x1000) == -ENOENT
        assert await op_domain_alloc(sys, 2) == 0
        assert await op_domain_alloc(sys, 2) == -EBUSY

    straight(t)


def test_identity_default_domain_and_back():
    async def t(sys, ev):
        dev, hw = sys.devices[0], sys.hws[0]
        assert await op_unbind(sys, 0) == 0  # a type change needs the kernel driver gone
        assert await op_attach(sys, 0, "identity") == 0
        assert dev.iommu_group.domain.type == IOMMU_DOMAIN_IDENTITY and not hw.paging
        a = await op_dma(sys, 0, 0x1234000)
        assert (a.outcome, a.paddr) == ("bypass", 0x1234000)
        assert await op_map(sys, ("default", 0), X, 0x1000) == -EINVAL  # identity is not a paging domain
        assert await op_claim_dma_owner(sys, 0) == 0  # identity -> blocked: translation back on
        assert hw.paging and (await op_dma(sys, 0, 0x1234000)).outcome == "fault"
        assert await op_release_dma_owner(sys, 0) == 0
        assert not hw.paging
        assert await op_attach(sys, 0, "dma") == 0
        assert hw.paging and dev.iommu_group.default_domain.type == IOMMU_DOMAIN_DMA
        assert await op_map(sys, ("default", 0), X, 0x1000) == 0
        assert (await op_dma(sys, 0, X)).outcome == "walk"

    k, sys = straight(t)
    assert k.mm.live() == []


def test_suspend_resume_and_fault_irq():
    async def t(sys, ev):
        k, hw, pdev = sys.kernel, sys.hws[1], sys.iommus[1]
        await op_map(sys, 1, X, 0x1000)
        await op_attach(sys, 1, 1)
        assert (await op_dma(sys, 1, X)).outcome == "walk"
        assert await op_suspend(sys, 1) == 0
        assert await op_suspend(sys, 1) == -EINVAL  # no reference left to drop
        await flush_pm_wq(k)
        assert not hw.powered and not hw.paging and pdev.power.runtime_status == RPM_SUSPENDED
        assert await op_dma(sys, 1, X) == -EIO  # a suspended master issues nothing
        assert await op_resume(sys, 1) == 0
        assert hw.powered and hw.paging and hw.base == sys.slots[1].dt.phys and len(hw.tlb) == 0
        assert (await op_dma(sys, 1, X)).outcome == "walk"
        acc = await op_fault_irq(sys, 1)
        assert acc.outcome == "fault" and acc.iova == FAULT_IOVA and k.irq.pending == [hw.irq]
        # deliver it: the handler acknowledges the fault
        k.irq.pending.clear()
        await k.irq.handle(k.cpus[0], hw.irq)
        assert hw.int_rawstat == 0 and not hw.fault_active
        assert [w for w in ev.whats() if w == "fault"] == ["fault"]

    straight(t)


def test_map_rejects_zone_flags_and_identity():
    async def t(sys, ev):
        with pytest.raises(ModelBug, match="zone flags"):
            await iommu_map(sys.slots[0], X, 0x40000000, 0x1000, IOMMU_READ, GFP_KERNEL | GFP_DMA32)
        assert await iommu_map(sys.driver.identity_domain, X, 0x40000000, 0x1000, IOMMU_READ, GFP_KERNEL) == -EINVAL
        assert await iommu_map(sys.slots[0], X + 1, 0x40000000, 0x1000, IOMMU_READ, GFP_KERNEL) == -EINVAL
        assert await iommu_unmap(sys.slots[0], X, 0x1000) == 0
        assert await iommu_iova_to_phys(sys.driver.identity_domain, X) == X

    straight(t)


def test_driver_registry_and_validation():
    assert get_driver("vsi-fixed") is VsiFixed and DRIVERS["vsi-fixed"] is VsiFixed
    assert get_driver("model.drivers.vsi_fixed:VsiFixed") is VsiFixed
    with pytest.raises(LookupError, match="unknown driver"):
        get_driver("nope")
    assert validate_driver(VsiFixed) is None

    class NoName(IommuDriver):
        pass

    class Sync(VsiFixed):
        name = "sync"

        def map_pages(self, *a):
            return 0, 0

    assert "name" in validate_driver(NoName)
    assert "map_pages" in validate_driver(Sync)
    with pytest.raises(LookupError, match="coroutine"):
        get_driver("tests.test_model:BadDriver")


class BadDriver(RkFixed):
    name = "bad"

    def attach_dev(self, domain, dev, old):
        return 0


def test_build_scenario_validates_programs():
    k = Kernel()
    with pytest.raises(ValueError, match="unknown operation"):
        build_scenario(k, RkFixed, {"programs": [[["frob", {}]]]})
    with pytest.raises(ValueError, match="out of range"):
        build_scenario(k, RkFixed, {"iommus": 2, "programs": [[["suspend", {"dev": 5}]]]})
    bodies = build_scenario(k, RkFixed, {"programs": [[["map", {"dom": 0, "iova": 1, "pages": 2, "gfp": "GFP_KERNEL"}]], []]})
    assert len(bodies) == 2 and len(k.setup) == 1 and len(k.teardown) == 1


# -- under the engine: vsi-fixed must run clean ----------------------------------------------


def scenario(*programs, driver=RkFixed, config=None):
    """A scenario: boot ``driver``, one CPU per ``program(sys)`` coroutine function."""

    def build(kernel):
        sys = System.boot(kernel, driver, config)
        return [(lambda p=p: p(sys)) for p in programs]

    build.__qualname__ = f"scenario[{driver.name}]"
    return build


async def map_attach_unmap(sys):
    await op_map(sys, 0, X, 0x2000)
    await op_attach(sys, 0, 0)
    await op_unmap(sys, 0, X, 0x1000)
    await op_map(sys, 0, X, 0x1000)


async def dma_x(sys):
    await op_dma(sys, 0, X)
    await op_dma(sys, 0, X + 0x1000, True)
    await op_dma(sys, 0, X)


async def map_unmap_y(sys):
    await op_map(sys, 0, Y, 0x1000)
    await op_unmap(sys, 0, Y, 0x1000)
    await op_iova_to_phys(sys, 0, X)


async def switch_domains(sys):
    await op_attach(sys, 0, 0)
    await op_attach(sys, 0, 1)
    await op_attach(sys, 0, 0)


async def map_unmap_both(sys):
    await op_map(sys, 0, X, 0x1000)
    await op_map(sys, 1, X, 0x1000)
    await op_unmap(sys, 0, X, 0x1000)
    await op_unmap(sys, 1, X, 0x1000)


async def dma_and_fault(sys):
    await op_dma(sys, 0, X)
    await op_fault_irq(sys, 0)
    await op_dma(sys, 0, X)


async def suspend_resume(sys):
    await op_suspend(sys, 0)
    await op_resume(sys, 0)
    await op_suspend(sys, 0)


async def attach_map_dma(sys):
    await op_attach(sys, 0, 1)
    await op_map(sys, 1, X, 0x1000)
    await op_dma(sys, 0, X)


async def fault_unmap_resume(sys):
    await op_fault_irq(sys, 0)
    await op_unmap(sys, 1, X, 0x1000)
    await op_resume(sys, 0)


async def vfio_owner(sys):
    await op_claim_dma_owner(sys, 1)
    await op_attach(sys, 1, 2)
    await op_attach(sys, 1, "blocked")
    await op_attach(sys, 1, 0)
    await op_release_dma_owner(sys, 1)


async def map_dma_free(sys):
    await op_map(sys, 2, X, 0x1000)
    await op_dma(sys, 1, X)
    await op_domain_free(sys, 2)
    await op_domain_alloc(sys, 2)


async def map_dma_unmap_free_d0(sys):
    await op_map(sys, 0, X, 0x1000)
    await op_dma(sys, 1, X)
    await op_unmap(sys, 0, X, 0x1000)
    await op_domain_free(sys, 0)


async def pm_dev1(sys):
    await op_suspend(sys, 1)
    await op_resume(sys, 1)


async def faults_both(sys):
    await op_fault_irq(sys, 0)
    await op_suspend(sys, 1)
    await op_fault_irq(sys, 0)


async def fault_dev1_resume(sys):
    await op_fault_irq(sys, 1)
    await op_resume(sys, 1)
    await op_fault_irq(sys, 1)


async def identity_and_back(sys):
    await op_attach(sys, 0, "identity")
    await op_dma(sys, 0, X)
    await op_attach(sys, 0, 0)
    await op_detach(sys, 0)
    await op_attach(sys, 0, "dma")


async def map_claim_release(sys):
    await op_map(sys, 0, X, 0x1000)
    await op_dma(sys, 0, X)
    await op_claim_dma_owner(sys, 0)
    await op_release_dma_owner(sys, 0)


def dma_agent_scenario(kernel):
    """The DMA master as an agent of its own, beside CPUs switching and unmapping."""
    sys = System.boot(kernel, RkFixed)
    add_dma_agent(sys, 0, [X, X + 0x1000, X, Y, X])
    return [lambda: switch_domains(sys), lambda: map_unmap_both(sys), lambda: suspend_resume(sys)]


CLEAN = {
    "dma-agent": dma_agent_scenario,
    "map-unmap-dma": scenario(map_attach_unmap, dma_x, map_unmap_y),
    "switch-domains": scenario(switch_domains, map_unmap_both, dma_and_fault),
    "pm-vs-attach": scenario(suspend_resume, attach_map_dma, fault_unmap_resume),
    "vfio": scenario(vfio_owner, map_dma_free, map_dma_unmap_free_d0, pm_dev1),
    "identity": scenario(identity_and_back, map_claim_release),
    "shared-irq": scenario(faults_both, fault_dev1_resume, suspend_resume, config={"shared_irq": True}),
}


@pytest.mark.parametrize("strategy", ["pct", "random"])
@pytest.mark.parametrize("name", sorted(CLEAN))
def test_vsi_fixed_runs_clean(name, strategy):
    r = stress.explore(CLEAN[name], strategy=strategy, schedules=200, seed=3)
    assert r.schedules == 200
    assert not r.violations, r.violations[0].report["violation"]["splat"]


@pytest.mark.parametrize("strategy", ["pct", "random"])
def test_vsi_fixed_runs_clean_under_drawn_workloads(strategy):
    family = driver_scenario("vsi-fixed", workload_config(cpus=3, ops=5))
    r = stress.explore(family, strategy=strategy, schedules=300, seed=11)
    assert not r.violations, r.violations[0].report["violation"]["splat"]


# -- ...and one-method mutants of it are caught, each by its kind ----------------------------


class ForcedAtomicOr(RkFixed):
    """B1: ``gfp | GFP_ATOMIC | GFP_DMA32`` still has __GFP_DIRECT_RECLAIM, under the spinlock."""

    name = "mut-b1"

    async def vsi_dte_get_page_table(self, vsi_domain, iova, gfp):
        dte_index = vf.vsi_iova_dte_index(iova)
        dte = await table_read(vsi_domain.dt, dte_index)
        if not vf.vsi_dte_is_pt_valid(dte):
            from model.iommu import iommu_alloc_pages_sz

            page_table = await iommu_alloc_pages_sz(gfp | GFP_ATOMIC | GFP_DMA32, 4096)
            pt_dma = await dma_map_single(vsi_domain.dev, page_table, 4096, DMA_TO_DEVICE)
            dte = vf.vsi_mk_dte(pt_dma)
            await table_write(vsi_domain.dt, dte_index, dte)
            await self.vsi_table_flush(vsi_domain, vsi_domain.dt_dma + dte_index * 4, 1)
        return vf.phys_to_virt(vf.vsi_dte_pt_address(dte))


class ForcedAtomic(RkFixed):
    """B2: the PT allocation forces GFP_ATOMIC, dropping the caller's __GFP_ACCOUNT."""

    name = "mut-b2"

    async def vsi_dte_get_page_table(self, vsi_domain, iova, gfp):
        return await super().vsi_dte_get_page_table(vsi_domain, iova, GFP_ATOMIC)


class IdentityStep(RkFixed):
    """B3: attach goes through identity first (the VFIO bypass window)."""

    name = "mut-b3"

    async def vsi_iommu_attach_device(self, domain, dev, old):
        ret = await self.vsi_iommu_identity_attach(self.identity_domain, dev, old)
        if ret:
            return ret
        return await super().vsi_iommu_attach_device(domain, dev, old)


class SplitAttach(RkFixed):
    """B4: registers and flush under one lock section, list and iommu->domain under another."""

    name = "mut-b4"

    async def vsi_iommu_attach_device(self, domain, dev, old):
        iommu = vf.dev_iommu_priv_get(dev)
        vsi_domain = vf.to_vsi_domain(domain)
        await pm_runtime_resume_and_get(iommu.dev)
        flags = await spin_lock_irqsave(iommu.lock)
        await self.vsi_iommu_enable(iommu, vsi_domain)
        await spin_unlock_irqrestore(iommu.lock, flags)
        flags = await spin_lock_irqsave(self.vsi_iommus_lock)
        await spin_lock(iommu.lock)
        await list_del_init(iommu.node)
        await list_add_tail(iommu.node, vsi_domain.iommus)
        await iommu.domain.store(domain)
        spin_unlock(iommu.lock)
        await spin_unlock_irqrestore(self.vsi_iommus_lock, flags)
        await pm_runtime_put_autosuspend(iommu.dev)
        return 0


class UnlockedSuspend(RkFixed):
    """B5: runtime suspend programs the registers without the IOMMU's lock."""

    name = "mut-b5"

    async def vsi_iommu_suspend(self, dev):
        iommu = vf.dev_get_drvdata(dev)
        await self.vsi_iommu_disable(iommu)
        await clk_bulk_disable(iommu.num_clocks, iommu.clocks)
        return 0


class SleepingPowerCheck(RkFixed):
    """B6: the "powered up" check is pm_runtime_resume_and_get inside the spinlock."""

    name = "mut-b6"

    async def vsi_iommu_flush_tlb(self, vsi_domain):
        await spin_lock(self.vsi_iommus_lock)
        for iommu in await list_entries(vsi_domain.iommus):
            if await pm_runtime_resume_and_get(iommu.dev) < 0:
                continue
            await spin_lock(iommu.lock)
            await self.vsi_iommu_zap_tlb(iommu)
            spin_unlock(iommu.lock)
            await pm_runtime_put_autosuspend(iommu.dev)
        spin_unlock(self.vsi_iommus_lock)


class InvertedFlush(RkFixed):
    """B8: the flush takes the IOMMU's lock, then vsi_iommus_lock; attach the other way."""

    name = "mut-b8"

    async def vsi_iommu_flush_tlb(self, vsi_domain):
        await spin_lock(self.vsi_iommus_lock)
        iommus = await list_entries(vsi_domain.iommus)
        spin_unlock(self.vsi_iommus_lock)
        for iommu in iommus:
            await spin_lock(iommu.lock)
            await spin_lock(self.vsi_iommus_lock)
            if await iommu.enable.load():
                await self.vsi_iommu_zap_tlb(iommu)
            spin_unlock(self.vsi_iommus_lock)
            spin_unlock(iommu.lock)


class PlainLockSuspend(RkFixed):
    """B7: runtime suspend takes the IRQ handler's lock with interrupts on."""

    name = "mut-b7"

    async def vsi_iommu_suspend(self, dev):
        iommu = vf.dev_get_drvdata(dev)
        await spin_lock(iommu.lock)
        await self.vsi_iommu_disable(iommu)
        spin_unlock(iommu.lock)
        await clk_bulk_disable(iommu.num_clocks, iommu.clocks)
        return 0


class NoZapOnReenable(RkFixed):
    """B9: the TLB is zapped only on a hitless switch, not when translation is re-enabled."""

    name = "mut-b9"

    async def vsi_iommu_enable(self, iommu, domain):
        if domain is self.identity_domain:
            return
        vsi_domain = vf.to_vsi_domain(domain)
        was_on = await readl(iommu.regs, RK_MMU_STATUS) & RK_MMU_STATUS_PAGING_ENABLED
        await writel(iommu.regs, RK_MMU_DTE_ADDR, vsi_domain.dt_dma)
        if was_on:
            await self.vsi_iommu_zap_tlb(iommu)
        await writel(iommu.regs, RK_MMU_INT_MASK, RK_MMU_IRQ_MASK)
        if not was_on:
            await writel(iommu.regs, RK_MMU_COMMAND, RK_MMU_CMD_ENABLE_PAGING)
        await iommu.enable.store(True)


class DisableKeepsPaging(RkFixed):
    """B10: "disable" masks the interrupt but leaves translation on the old tables."""

    name = "mut-b10"

    async def vsi_iommu_disable(self, iommu):
        await writel(iommu.regs, RK_MMU_INT_MASK, 0)
        await iommu.enable.store(False)


class HighPageTables(RkFixed):
    """B11: the PT comes from ZONE_NORMAL (above 4 GiB here)."""

    name = "mut-b11"

    async def vsi_dte_get_page_table(self, vsi_domain, iova, gfp):
        dte_index = vf.vsi_iova_dte_index(iova)
        dte = await table_read(vsi_domain.dt, dte_index)
        if not vf.vsi_dte_is_pt_valid(dte):
            from model.iommu import iommu_alloc_pages_sz

            page_table = await iommu_alloc_pages_sz((gfp & ~GFP_KERNEL) | GFP_ATOMIC, 4096)
            pt_dma = await dma_map_single(vsi_domain.dev, page_table, 4096, DMA_TO_DEVICE)
            dte = vf.vsi_mk_dte(pt_dma)
            await table_write(vsi_domain.dt, dte_index, dte)
            await self.vsi_table_flush(vsi_domain, vsi_domain.dt_dma + dte_index * 4, 1)
        return vf.phys_to_virt(vf.vsi_dte_pt_address(dte))


class UnsyncedUnmap(RkFixed):
    """B12: unmap clears the PTEs in the CPU's cache only (no vsi_table_flush)."""

    name = "mut-b12"

    async def vsi_iommu_unmap_iova(self, vsi_domain, page_table, pte_index, pte_dma, size):
        pte_count = 0
        while pte_count < size // 4096:
            pte = await table_read(page_table, pte_index + pte_count)
            if not vf.vsi_pte_is_page_valid(pte):
                break
            await table_write(page_table, pte_index + pte_count, vf.vsi_mk_pte_invalid(pte))
            pte_count += 1
        return pte_count * 4096


async def map_x(sys):
    await op_map(sys, 0, X, 0x1000)


async def attach_map(sys):
    await op_attach(sys, 0, 0)
    await op_map(sys, 0, X, 0x1000)


async def attach_d0(sys):
    await op_attach(sys, 0, 0)


async def dma_x_twice(sys):
    await op_dma(sys, 0, X)
    await op_dma(sys, 0, X)


async def map_attach_d0(sys):
    await op_map(sys, 0, X, 0x1000)
    await op_attach(sys, 0, 0)


async def unmap_then_dma(sys):
    await op_unmap(sys, 0, X, 0x1000)
    await op_dma(sys, 0, X)


async def attach_suspend(sys):
    await op_attach(sys, 0, 0)
    await op_suspend(sys, 0)


async def map_x_y(sys):
    await op_map(sys, 0, X, 0x1000)
    await op_map(sys, 0, Y, 0x1000)


async def to_identity(sys):
    await op_attach(sys, 0, "identity")


async def fault_then_suspend(sys):
    await op_fault_irq(sys, 0)
    await op_suspend(sys, 0)


async def stale_across_suspend(sys):
    await op_map(sys, 0, X, 0x1000)
    await op_attach(sys, 0, 0)
    await op_dma(sys, 0, X)
    await op_suspend(sys, 0)
    await op_unmap(sys, 0, X, 0x1000)
    await op_resume(sys, 0)
    await op_dma(sys, 0, X)


async def map_attach_dma_unmap_dma(sys):
    # three pages mapped, two unmapped: the table stays (an emptied one is
    # taken off its DTE, and the unsynced PTEs would never be walked)
    await op_map(sys, 0, X, 0x3000)
    await op_attach(sys, 0, 0)
    await op_dma(sys, 0, X + 0x1000)
    await op_unmap(sys, 0, X, 0x2000)
    await op_dma(sys, 0, X + 0x1000)


NO_RACE = [c for c in default_checkers() if c != "race"]

MUTANTS = [
    (ForcedAtomicOr, scenario(map_x, driver=ForcedAtomicOr), "sleep-in-atomic"),
    (ForcedAtomic, scenario(map_x, driver=ForcedAtomic), "gfp-accounting-dropped"),
    (IdentityStep, scenario(attach_d0, dma_x_twice, driver=IdentityStep), "dma-isolation"),
    # the lost flush shows as a stale line, or as the emptied table freed while
    # the walk cache of the IOMMU the flush missed still names it
    (SplitAttach, scenario(map_attach_d0, dma_x_twice, unmap_then_dma, driver=SplitAttach), ("stale-tlb", "pagetable-use-after-free")),
    # the unlocked store to iommu->enable is a data race first; without the race checker:
    (UnlockedSuspend, scenario(attach_suspend, map_x_y, driver=UnlockedSuspend), "mmio-while-suspended", NO_RACE),
    (SleepingPowerCheck, scenario(attach_suspend, map_x_y, driver=SleepingPowerCheck), "sleep-in-atomic"),  # the IOMMU suspended: might_sleep_if
    (InvertedFlush, scenario(attach_map, driver=InvertedFlush), "lock-inversion"),
    (PlainLockSuspend, scenario(fault_then_suspend, driver=PlainLockSuspend), "irq-lock-inversion"),
    (NoZapOnReenable, scenario(stale_across_suspend, driver=NoZapOnReenable), "stale-tlb"),
    (DisableKeepsPaging, scenario(to_identity, driver=DisableKeepsPaging), "pagetable-use-after-free"),
    (HighPageTables, scenario(map_x, driver=HighPageTables), "dma32-violation"),
    (UnsyncedUnmap, scenario(map_attach_dma_unmap_dma, driver=UnsyncedUnmap), "dma-isolation"),
]


@pytest.mark.parametrize("mutant", MUTANTS, ids=[m[0].__doc__.split(":")[0] for m in MUTANTS])
def test_mutants_of_vsi_fixed_are_caught(mutant):
    driver, scen, kind, *checkers = mutant
    r = stress.explore(scen, strategy="pct", schedules=1000, seed=1, shrink=False, checkers=checkers[0] if checkers else None)
    assert r.violations, f"{driver.name}: nothing found in {r.schedules} schedules"
    assert r.violations[0].kind in (kind if isinstance(kind, tuple) else (kind,)), r.violations[0].report["violation"]["splat"]
