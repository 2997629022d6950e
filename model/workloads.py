"""A booted machine (:class:`System`) and the operations CPUs run on it.

``System.boot(kernel, DriverClass, config)`` registers the boot
(``kernel.add_setup``): hardware, platform probe of every IOMMU, the masters
probed behind them (default DMA domain attached, runtime PM linked), the
user paging domains, and the masters resumed; and a teardown
(``kernel.add_teardown``) that gives everything back, so the leak oracle
can check that nothing is left.

Operations are plain coroutines ``op_xxx(sys, ...)`` a CPU (or an agent)
awaits; each emits ``op_begin(cpu, name)``/``op_end(cpu, name)`` around
itself.  They can be called in any order by concurrent CPUs: like the
kernel they return an errno rather than crash (a freed domain is -ENOENT,
one attached or in use -EBUSY), and the System keeps the books a real user
(VFIO/iommufd) keeps, so the WORKLOAD never creates a use-after-free of its
own: a domain is freed only when nothing of ours is attached to it or
mapping on it, a default domain is replaced only when no DMA-API map is in
flight, and device-level operations on one device do not overlap (VFIO's
device lock; here the later one gets -EBUSY).

Addresses: IOVA ``i`` of a program is ``IOVA_BASE + i * 2 MiB`` (two IOVAs
share each 4 MiB page table); every map gets fresh physical pages from a
data window below 4 GiB (not allocator memory), so the same IOVA mapped
twice points at different memory and a stale translation is visible; every
other map (the first, third, ...) takes them from the same window 4 GiB
higher when the IOMMU's page-table entries hold more than 32 address bits
(:meth:`System.alloc_paddr`), so a driver that drops the high bits is seen.

Masters: ``masters`` per IOMMU (default 1); device ``k`` of a program is
``vpu{k}``, behind IOMMU ``k // masters``.  Each has its own group
(``group="own"``, generic_single_device_group) or the masters of an IOMMU
share one (``"shared"``, one group per IOMMU as Rockchip's device_group):
the books the user keeps of ownership and attachment are then the group's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from errno import EBUSY, EINVAL, EIO, ENODEV, ENOENT, ENOMEM, EPERM

from model.hw import ClkBulk, DmaMaster, IommuHw, clk_bulk_prepare
from model.hw.codec import CodecPmOps
from model.hw.soc import DEFAULT_SOC, get_soc
from model.kernel.genpd import genpd_sync_power_off, genpd_sync_power_on, pm_genpd_add_device, pm_genpd_init
from model.hw.tlb import DEFAULT_RETENTION, DEFAULT_WALK_CACHE, RETENTION_EVENTS, WALK_CACHE_LEVELS
from model.iommu import (
    IOMMU_DOMAIN_DMA,
    IOMMU_DOMAIN_IDENTITY,
    IOMMU_READ,
    IOMMU_WRITE,
    IS_ERR,
    SZ_4K,
    Device,
    IommuDomain,
    IommuFwspec,
    IommuGroup,
    PlatformDevice,
    iommu_attach_device,
    iommu_detach_device,
    iommu_detach_group,
    iommu_device_claim_dma_owner,
    iommu_device_release_dma_owner,
    iommu_device_unuse_default_domain,
    iommu_device_use_default_domain,
    iommu_domain_free,
    iommu_group_replace_domain,
    iommu_group_store_type,
    iommu_iova_to_phys,
    iommu_map,
    iommu_paging_domain_alloc,
    iommu_probe_device,
    iommu_release_device,
    iommu_unmap,
    iommu_unmap_fast,
    iommu_iotlb_sync,
    IommuIotlbGather,
    iommu_set_fault_handler,
    platform_driver_probe,
)
from model.iommu.dma_iommu import (
    DMA_FROM_DEVICE,
    DMA_MAPPING_ERROR,
    DMA_TO_DEVICE,
    iommu_dma_map_phys,
    iommu_dma_unmap_phys,
)
from model.kernel import (
    GFP_ATOMIC,
    GFP_KERNEL_ACCOUNT,
    IRQ_HANDLED,
    IRQ_NONE,
    ModelBug,
    SpinLock,
    current,
    local_bh_disable,
    local_bh_enable,
    open_softirq,
    raise_softirq_irqoff,
    request_irq,
    spin_lock_irqsave,
    spin_unlock_irqrestore,
)
from model.kernel.softirq import NET_RX_SOFTIRQ
from model.kernel import gfp as _gfp
from model.kernel.pm import (
    RPM_ACTIVE,
    __pm_runtime_disable,
    flush_pm_wq,
    pm_runtime_barrier,
    pm_runtime_enable,
    pm_runtime_get_noresume,
    pm_runtime_put,
    pm_runtime_resume_and_get,
    pm_sleep_callback,
    pm_wq_freeze,
    pm_wq_thaw,
    wait_until,
)

__all__ = [
    "SystemConfig",
    "System",
    "IOVA_BASE",
    "FAULT_IOVA",
    "IOMMU_IRQ_BASE",
    "iova_of",
    "iova_index",
    "masters_behind",
    "op_map",
    "op_unmap",
    "op_attach",
    "op_detach",
    "op_claim_dma_owner",
    "op_release_dma_owner",
    "op_bind",
    "op_unbind",
    "op_domain_alloc",
    "op_domain_free",
    "op_suspend",
    "op_resume",
    "op_dma",
    "op_fault_irq",
    "op_set_fault_handler",
    "op_unmap_batch",
    "op_dma_map",
    "DMA_CONTEXTS",
    "op_iova_to_phys",
    "op_system_sleep",
    "dpm_suspend",
    "dpm_resume",
    "add_dma_agent",
    "teardown",
    "build_scenario",
    "check_programs",
    "program_bodies",
    "run_program",
    "run_program_op",
    "PROGRAM_OPS",
]

IOVA_BASE = 0x10000000
IOVA_STRIDE = 0x200000
FAULT_IOVA = 0xFFF00000  # never mapped by a workload
DATA_BASE = 0x40000000  # physical window the maps point at
DATA_HIGH_BASE = DATA_BASE + (1 << 32)  # the same window above 4 GiB (System.alloc_paddr)
#: physical address bits a page-table entry holds, per register layout
#: (model.hw.walker): VSI keeps bits 39:32 in PTE bits 11:4, Rockchip v1 bits 31:12
LAYOUT_PA_BITS = {"vsi": 40, "rk": 32}
#: how masters behind one IOMMU are grouped (SystemConfig.group)
GROUP_MODES = ("own", "shared")
IOMMU_IRQ_BASE = 40
NIC_IRQ_BASE = 80  # each master's own interrupt line (op_dma_map's hard-IRQ and softirq contexts)
PROT_RW = IOMMU_READ | IOMMU_WRITE


def iova_of(i):
    """The address of program IOVA number ``i``."""
    return IOVA_BASE + i * IOVA_STRIDE


def iova_index(iova):
    """The program IOVA number whose window ``iova`` lies in (``iova_of``'s
    inverse), or None below the first."""
    return (iova - IOVA_BASE) // IOVA_STRIDE if iova >= IOVA_BASE else None


def masters_behind(config, mmu):
    """The master numbers behind the IOMMU named ``mmu`` (``iommu{k}``, as
    :meth:`System._boot` names them) on a machine of ``config``; ``[]`` for
    another name."""
    cfg = config if isinstance(config, SystemConfig) else SystemConfig.from_dict(config)
    k = mmu[len("iommu"):] if mmu.startswith("iommu") else ""
    if not k.isdigit() or int(k) >= cfg.iommus:
        return []
    return list(range(int(k) * cfg.masters, (int(k) + 1) * cfg.masters))


@dataclass
class SystemConfig:
    """How many of each thing the machine has (keys as in ``stress.workload``)."""

    iommus: int = 2  # IOMMU instances
    masters: int = 1  # master devices behind each IOMMU (vpu0.. : IOMMU i has vpu{i*masters} ..)
    group: str = "own"  # "own": a group per master (generic_single_device_group); "shared": one per IOMMU
    high_pages: bool = True  # every other map's pages above 4 GiB, where the IOMMU's PTEs address them
    domains: int = 3  # user paging domain slots, allocated at boot
    iovas: int = 4  # program IOVA numbers (0 .. iovas-1)
    masters_active: bool = True  # masters resumed at boot (a driver using them)
    default_domain: str = "dma"  # "dma" or "identity" (iommu.passthrough=1)
    shared_irq: bool = False  # all IOMMUs on one IRQF_SHARED line: every handler runs on every fault
    teardown: bool = True  # give everything back at the end (leak checks)
    tlb_retention: tuple = DEFAULT_RETENTION  # what the IOTLB survives (model.hw.tlb)
    walk_cache: tuple = DEFAULT_WALK_CACHE  # paging-structure entries the MMU caches (model.hw.tlb)
    soc: str = DEFAULT_SOC  # clocks and power domains shared with the master (model.hw.soc)
    dma_strict: bool = True  # iommu.strict=1; False: DMA domains get a flush queue if the driver has flush_iotlb_all

    @classmethod
    def from_dict(cls, d):
        d = d or {}
        known = {f for f in cls.__dataclass_fields__}
        cfg = cls(**{k: v for k, v in d.items() if k in known})
        bad = set(cfg.tlb_retention) - set(RETENTION_EVENTS)
        if bad:
            raise ValueError(f"tlb_retention: unknown event {sorted(bad)[0]!r} (known: {', '.join(RETENTION_EVENTS)})")
        cfg.tlb_retention = tuple(cfg.tlb_retention)
        bad = set(cfg.walk_cache) - set(WALK_CACHE_LEVELS)
        if bad:
            raise ValueError(f"walk_cache: unknown level {sorted(bad)[0]!r} (known: {', '.join(WALK_CACHE_LEVELS)})")
        cfg.walk_cache = tuple(l for l in WALK_CACHE_LEVELS if l in cfg.walk_cache)
        get_soc(cfg.soc)
        for key in ("iommus", "masters"):
            v = getattr(cfg, key)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{key}: expected a positive integer, got {v!r}")
        if cfg.group not in GROUP_MODES:
            raise ValueError(f"group: expected one of {', '.join(GROUP_MODES)}, got {cfg.group!r}")
        return cfg


class _PerGroup(dict):
    """A book the user keeps per IOMMU group, looked up by any of its devices
    (``rep``: device -> its group's first device): VFIO/iommufd own and
    attach a group, not one device of it."""

    def __init__(self, rep):
        super().__init__()
        self.rep = rep

    def __reduce__(self):  # pickled (stress.bootimage): ``rep`` before the items
        return (type(self), (self.rep,), None, None, iter(dict.items(self)))

    def __getitem__(self, dev):
        return super().__getitem__(self.rep.get(dev, dev))

    def __setitem__(self, dev, value):
        super().__setitem__(self.rep.get(dev, dev), value)

    def __contains__(self, dev):
        return super().__contains__(self.rep.get(dev, dev))

    def get(self, dev, default=None):
        return super().get(self.rep.get(dev, dev), default)


class _GroupSet(set):
    """A set of groups, named by any of their devices (see :class:`_PerGroup`)."""

    def __init__(self, rep):
        super().__init__()
        self.rep = rep

    def __reduce__(self):  # pickled (stress.bootimage): ``rep`` before the items
        return (_group_set, (self.rep, list(set.__iter__(self))))

    def __contains__(self, dev):
        return super().__contains__(self.rep.get(dev, dev))

    def add(self, dev):
        super().add(self.rep.get(dev, dev))

    def discard(self, dev):
        super().discard(self.rep.get(dev, dev))


def _group_set(rep, groups):
    s = _GroupSet(rep)
    set.update(s, groups)
    return s


@dataclass(eq=False)
class System:
    """The machine a workload runs on, and the books its user keeps."""

    kernel: object
    driver_cls: type
    config: SystemConfig = field(default_factory=SystemConfig)
    driver: object = None
    hws: list = field(default_factory=list)
    iommus: list = field(default_factory=list)  # the IOMMUs' platform devices
    devices: list = field(default_factory=list)  # masters: vpu{k} behind IOMMU k // config.masters
    masters: list = field(default_factory=list)  # their DMA engines
    slots: list = field(default_factory=list)  # user domains (None: free slot)
    in_use: dict = field(default_factory=dict)  # domain -> operations in flight on it
    attached: dict = field(default_factory=dict)  # device (its group, if shared) -> user domain attached, or None
    owned: dict = field(default_factory=dict)  # device (its group, if shared) -> DMA ownership claims held
    bound: dict = field(default_factory=dict)  # device -> a kernel driver is bound (uses the default domain)
    pm_refs: dict = field(default_factory=dict)  # device -> runtime PM references held
    busy: set = field(default_factory=set)  # devices (groups, if shared) with a device-level op in flight
    changing: set = field(default_factory=set)  # devices (groups, if shared) whose default domain is being replaced
    reserved: set = field(default_factory=set)  # slots being allocated
    next_paddr: int = DATA_BASE
    paddrs: int = 0  # calls of alloc_paddr so far
    pa_bits: int = 32  # physical address bits the IOMMU's page tables hold (set at boot)
    frozen: bool = False  # a system sleep is under way: tasks stay in the refrigerator (op_system_sleep)
    suspended: list = field(default_factory=list)  # devices whose system suspend callback ran
    nic_locks: list = field(default_factory=list)  # each master driver's own spinlock (op_dma_map "irqoff")
    nic_work: dict = field(default_factory=dict)  # cpu id -> (dev, write, ctx): buffer work for its IRQ/softirq
    nic_ret: dict = field(default_factory=dict)  # cpu id -> what that work returned

    @classmethod
    def boot(cls, kernel, driver_cls, config=None):
        """A System whose boot and teardown are registered on ``kernel``."""
        if not isinstance(config, SystemConfig):
            config = SystemConfig.from_dict(config)
        sys = cls(kernel, driver_cls, config)
        kernel.add_setup(sys._boot)
        if config.teardown:
            kernel.add_teardown(partial(teardown, sys))  # a partial, not a closure: a booted System pickles
        return sys

    async def _boot(self):
        k, cfg = self.kernel, self.config
        self.driver = drv = self.driver_cls()
        soc = get_soc(cfg.soc)
        k.iommu_dma_strict = cfg.dma_strict  # iommu.strict= (model.iommu.dma_iommu)
        open_softirq(k, NET_RX_SOFTIRQ, partial(_net_rx_action, self))
        layout = getattr(drv, "layout", "rk")
        # what the page tables can address: the layout's PTE format, or less if the driver says so
        self.pa_bits = min(LAYOUT_PA_BITS.get(layout, 32), getattr(drv, "pa_bits", None) or 64)
        for i in range(cfg.iommus):
            irq = IOMMU_IRQ_BASE if cfg.shared_irq else IOMMU_IRQ_BASE + i
            hw = IommuHw(k, f"iommu{i}", irq, layout=layout, tlb_retention=cfg.tlb_retention, walk_cache=cfg.walk_cache)
            pdev = PlatformDevice(k, f"iommu{i}", hw)
            if soc.power_domain:  # dev_pm_domain_attach() before the driver's probe
                pd = pm_genpd_init(f"pd_vpu{i}")
                pd.hws.append(hw)
                hw.power_domain = pd
                pm_genpd_add_device(pd, pdev)
            ret = await platform_driver_probe(drv, pdev)
            if ret:
                raise ModelBug(f"{drv.name}: probe of {pdev} failed ({ret})")
            self.hws.append(hw)
            self.iommus.append(pdev)
        def_type = IOMMU_DOMAIN_IDENTITY if cfg.default_domain == "identity" else IOMMU_DOMAIN_DMA
        if cfg.group == "shared":  # the user's books are kept per group
            rep = {}
            self.attached, self.owned = _PerGroup(rep), _PerGroup(rep)
            self.busy, self.changing = _GroupSet(rep), _GroupSet(rep)
        for i in range(cfg.iommus * cfg.masters):
            pdev = self.iommus[i // cfg.masters]
            first = self.devices[i - i % cfg.masters] if i % cfg.masters else None  # its IOMMU's first master
            dev = Device(k, f"vpu{i}")
            dev.fwspec = IommuFwspec(pdev)
            # the master's driver: its clocks (the IOMMU's, on a SoC that shares them)
            clks = ClkBulk(dev, pdev.hw.clks.core if soc.shared_clocks else None)
            await clk_bulk_prepare(1, clks)
            dev.pm_ops = CodecPmOps(clks)
            if pdev.hw.power_domain is not None:
                pm_genpd_add_device(pdev.hw.power_domain, dev)
            pm_runtime_enable(dev)
            group = None  # ops->device_group: generic_single_device_group
            if cfg.group == "shared":  # one group per IOMMU (rk_iommu_device_group: iommu->group)
                group = first.iommu_group if first is not None else IommuGroup(k)
                rep[dev] = first if first is not None else dev
            ret = await iommu_probe_device(dev, def_type, group)
            if ret:
                raise ModelBug(f"{drv.name}: iommu_probe_device({dev}) failed ({ret})")
            self.devices.append(dev)
            self.masters.append(DmaMaster(pdev.hw, dev))
            self.nic_locks.append(SpinLock("vpu->lock"))
            request_irq(k, NIC_IRQ_BASE + len(self.devices) - 1, _nic_irq, 0, f"{dev.name}-nic", (self, len(self.devices) - 1))
            self.attached[dev] = None
            self.owned[dev] = 0
            self.bound[dev] = False
            self.pm_refs[dev] = 0
        self.slots = [None] * cfg.domains
        for s in range(cfg.domains):
            dom = await iommu_paging_domain_alloc(self.devices[(s % cfg.iommus) * cfg.masters])
            if IS_ERR(dom):
                raise ModelBug(f"{drv.name}: domain allocation failed ({dom})")
            self.slots[s] = dom
            self.in_use[dom] = 0
        if cfg.masters_active:
            for dev in self.devices:
                ret = await iommu_device_use_default_domain(dev)  # its driver binds
                if ret:
                    raise ModelBug(f"{drv.name}: iommu_device_use_default_domain({dev}) failed ({ret})")
                self.bound[dev] = True
                ret = await pm_runtime_resume_and_get(dev)
                if ret:
                    raise ModelBug(f"{drv.name}: resume of {dev} failed ({ret})")
                self.pm_refs[dev] += 1

    # -- the books ---------------------------------------------------------------

    def alloc_paddr(self, size, low=False):
        """Fresh data pages for one map: ``size`` bytes of the window at
        ``DATA_BASE``, or for every other call (the first, the third, ...) the
        same bytes in the window 4 GiB higher, if the IOMMU's page tables
        address them (``pa_bits``) and ``config.high_pages``; never with
        ``low`` (a buffer the device reaches without the IOMMU, as swiotlb
        bounces one above its 32-bit DMA mask).  The window is
        chosen by the call's number alone (no draw), and the low 32 bits of
        every address are what they are without the high window."""
        paddr = self.next_paddr
        self.next_paddr += size
        self.paddrs += 1
        high = paddr - DATA_BASE + DATA_HIGH_BASE
        if not low and self.paddrs % 2 and self.config.high_pages and high + size <= 1 << self.pa_bits:
            return high
        return paddr

    def default_domain(self, dev):
        group = dev.iommu_group
        return group.default_domain if group is not None else None

    def _domain(self, dom):
        """``(domain, 0)`` for a user slot or ``("default", i)``; ``(None, -errno)``."""
        if isinstance(dom, tuple) and dom[0] == "default":
            dev = self.devices[dom[1]]
            if dev in self.changing:
                return None, -EBUSY
            d = self.default_domain(dev)
            return (d, 0) if d is not None else (None, -ENOENT)
        if not 0 <= dom < len(self.slots):
            return None, -EINVAL
        d = self.slots[dom]
        return (d, 0) if isinstance(d, IommuDomain) else (None, -ENOENT)

    def _hold(self, domain):
        self.in_use[domain] = self.in_use.get(domain, 0) + 1

    def _unhold(self, domain):
        self.in_use[domain] -= 1


def _dom_name(dom):
    return f"default{dom[1]}" if isinstance(dom, tuple) else f"d{dom}"


async def _begin(sys, name):
    """Workload operation ``name`` starts on this CPU (hook ``op_begin``).

    While a system sleep is under way (``sys.frozen``) the task is frozen
    here, at the start of its next operation (``try_to_freeze``), until the
    system is thawed: the operation then runs, as a frozen task's does."""
    cpu = current()
    if sys.frozen:
        await wait_until(lambda: not sys.frozen, "refrigerator")
    cpu.op = name
    for fn in cpu.kernel.hooks.op_begin:
        fn(cpu, name)
    return cpu


def _end(cpu, ret):
    """... and returns ``ret`` (hook ``op_end``)."""
    for fn in cpu.kernel.hooks.op_end:
        fn(cpu, cpu.op)
    cpu.op = None
    return ret


# -- operations ------------------------------------------------------------------


async def op_map(sys, dom, iova, size=SZ_4K, gfp=None, prot=PROT_RW):
    """``iommu_map`` on a user domain (slot ``dom``; VFIO: GFP_KERNEL_ACCOUNT) or on
    a device's default domain (``("default", i)``; the DMA API: GFP_ATOMIC)."""
    cpu = await _begin(sys, f"map({_dom_name(dom)}, {iova:#x}, {size // SZ_4K}p)")
    domain, err = sys._domain(dom)
    if err:
        return _end(cpu, err)
    if gfp is None:
        gfp = GFP_ATOMIC if isinstance(dom, tuple) else GFP_KERNEL_ACCOUNT
    sys._hold(domain)
    ret = await iommu_map(domain, iova, sys.alloc_paddr(size), size, prot, gfp)
    sys._unhold(domain)
    return _end(cpu, ret)


async def op_unmap(sys, dom, iova, size=SZ_4K):
    """``iommu_unmap``: the bytes unmapped, or -errno when the domain is gone."""
    cpu = await _begin(sys, f"unmap({_dom_name(dom)}, {iova:#x}, {size // SZ_4K}p)")
    domain, err = sys._domain(dom)
    if err:
        return _end(cpu, err)
    sys._hold(domain)
    ret = await iommu_unmap(domain, iova, size)
    sys._unhold(domain)
    return _end(cpu, ret)


async def op_iova_to_phys(sys, dom, iova):
    cpu = await _begin(sys, f"iova_to_phys({_dom_name(dom)}, {iova:#x})")
    domain, err = sys._domain(dom)
    if err:
        return _end(cpu, err)
    sys._hold(domain)
    ret = await iommu_iova_to_phys(domain, iova)
    sys._unhold(domain)
    return _end(cpu, ret)


async def _attach_user_domain(sys, dev, domain):
    if sys.owned[dev]:
        # iommufd: the owned group goes straight to the new domain (replace)
        return await iommu_group_replace_domain(dev.iommu_group, domain)
    if not sys.bound[dev]:
        return -ENODEV  # neither VFIO nor a kernel driver holds the device
    # a kernel driver's own domain in place of the default one
    return await iommu_attach_device(domain, dev)


async def _block(sys, dev):
    if not sys.owned[dev]:
        return -EPERM  # only the owner of the group may block its DMA
    cur = sys.attached[dev]
    if cur is None:
        return 0  # an owned group without a user domain is blocked already
    sys._hold(cur)
    await iommu_detach_group(cur, dev.iommu_group)
    sys._unhold(cur)
    sys.attached[dev] = None
    return 0


async def _set_default_type(sys, dev, req_type):
    default = sys.default_domain(dev)
    if sys.owned[dev] or sys.attached[dev] is not None or (default is not None and sys.in_use.get(default, 0)):
        return -EBUSY
    sys.changing.add(dev)
    ret = await iommu_group_store_type(dev.iommu_group, req_type)
    sys.changing.discard(dev)
    return ret


async def op_attach(sys, dev, dom):
    """Attach to device ``dev`` (an index): user domain slot ``dom``, or
    ``"blocked"`` (an owned group detaches its user domain), ``"identity"`` /
    ``"dma"`` (a new default domain of that type, as through sysfs)."""
    cpu = await _begin(sys, f"attach(vpu{dev}, {dom if isinstance(dom, str) else _dom_name(dom)})")
    d = sys.devices[dev]
    if d in sys.busy:
        return _end(cpu, -EBUSY)
    if dom == "blocked":
        sys.busy.add(d)
        ret = await _block(sys, d)
    elif dom in ("identity", "dma"):
        sys.busy.add(d)
        ret = await _set_default_type(sys, d, IOMMU_DOMAIN_IDENTITY if dom == "identity" else IOMMU_DOMAIN_DMA)
    else:
        domain, err = sys._domain(dom)
        if err:
            return _end(cpu, err)
        sys.busy.add(d)
        sys._hold(domain)
        ret = await _attach_user_domain(sys, d, domain)
        if ret == 0:
            sys.attached[d] = domain
        sys._unhold(domain)
    sys.busy.discard(d)
    return _end(cpu, ret)


async def op_detach(sys, dev):
    """Detach the user domain of ``dev``: back to blocking (owned) or default."""
    cpu = await _begin(sys, f"detach(vpu{dev})")
    d = sys.devices[dev]
    cur = sys.attached[d]
    if d in sys.busy:
        return _end(cpu, -EBUSY)
    if cur is None:
        return _end(cpu, 0)
    sys.busy.add(d)
    sys._hold(cur)
    if sys.owned[d]:
        await iommu_detach_group(cur, d.iommu_group)
    else:
        await iommu_detach_device(cur, d)
    sys.attached[d] = None
    sys._unhold(cur)
    sys.busy.discard(d)
    return _end(cpu, 0)


async def op_claim_dma_owner(sys, dev):
    """VFIO opens the device: ``iommu_device_claim_dma_owner`` (blocking domain)."""
    cpu = await _begin(sys, f"claim(vpu{dev})")
    d = sys.devices[dev]
    if d in sys.busy:
        return _end(cpu, -EBUSY)
    sys.busy.add(d)
    ret = await iommu_device_claim_dma_owner(d, sys)
    if ret == 0:
        sys.owned[d] += 1
    sys.busy.discard(d)
    return _end(cpu, ret)


async def op_release_dma_owner(sys, dev):
    """VFIO closes it: the last release puts the default domain back."""
    cpu = await _begin(sys, f"release(vpu{dev})")
    d = sys.devices[dev]
    if not sys.owned[d]:
        return _end(cpu, -EINVAL)
    if d in sys.busy:
        return _end(cpu, -EBUSY)
    sys.busy.add(d)
    cur = sys.attached[d]
    if cur is not None:
        sys._hold(cur)
    await iommu_device_release_dma_owner(d)
    sys.owned[d] -= 1
    if not sys.owned[d]:
        sys.attached[d] = None  # the default domain replaced it
    if cur is not None:
        sys._unhold(cur)
    sys.busy.discard(d)
    return _end(cpu, 0)


async def op_unbind(sys, dev):
    """Its kernel driver is unbound (``echo ... > unbind``): the driver core
    drops its use of the default domain, so VFIO may claim the group."""
    cpu = await _begin(sys, f"unbind(vpu{dev})")
    d = sys.devices[dev]
    if not sys.bound[d]:
        return _end(cpu, -ENODEV)
    default = sys.default_domain(d)
    if d in sys.busy or sys.attached[d] is not None or (default is not None and sys.in_use.get(default, 0)):
        return _end(cpu, -EBUSY)  # the driver's remove() first stops its DMA and detaches its domain
    sys.busy.add(d)
    await iommu_device_unuse_default_domain(d)
    sys.bound[d] = False
    sys.busy.discard(d)
    return _end(cpu, 0)


async def op_bind(sys, dev):
    """A kernel driver binds: ``iommu_device_use_default_domain`` (-EBUSY while
    VFIO owns the group)."""
    cpu = await _begin(sys, f"bind(vpu{dev})")
    d = sys.devices[dev]
    if sys.bound[d]:
        return _end(cpu, -EBUSY)
    if d in sys.busy:
        return _end(cpu, -EBUSY)
    sys.busy.add(d)
    ret = await iommu_device_use_default_domain(d)
    if ret == 0:
        sys.bound[d] = True
    sys.busy.discard(d)
    return _end(cpu, ret)


async def op_domain_alloc(sys, dom, dev=None):
    """Allocate a paging domain into free slot ``dom`` (for ``dev``'s IOMMU)."""
    cpu = await _begin(sys, f"domain_alloc(d{dom})")
    if not 0 <= dom < len(sys.slots):
        return _end(cpu, -EINVAL)
    if sys.slots[dom] is not None or dom in sys.reserved:
        return _end(cpu, -EBUSY)
    sys.reserved.add(dom)
    d = sys.devices[(dom if dev is None else dev) % len(sys.devices)]
    domain = await iommu_paging_domain_alloc(d)
    sys.reserved.discard(dom)
    if IS_ERR(domain):
        return _end(cpu, domain)
    sys.slots[dom] = domain
    sys.in_use[domain] = 0
    return _end(cpu, 0)


async def op_domain_free(sys, dom):
    """``iommu_domain_free`` of slot ``dom``: -EBUSY while attached or in use."""
    cpu = await _begin(sys, f"domain_free(d{dom})")
    domain, err = sys._domain(dom)
    if err:
        return _end(cpu, err)
    if sys.in_use.get(domain, 0) or any(a is domain for a in sys.attached.values()):
        return _end(cpu, -EBUSY)
    sys.slots[dom] = None
    del sys.in_use[domain]
    await iommu_domain_free(domain)
    return _end(cpu, 0)


async def op_suspend(sys, dev):
    """The master's driver is idle: ``pm_runtime_put`` (the worker suspends it,
    then the IOMMU through the device link)."""
    cpu = await _begin(sys, f"suspend(vpu{dev})")
    d = sys.devices[dev]
    if not sys.pm_refs[d]:
        return _end(cpu, -EINVAL)
    sys.pm_refs[d] -= 1
    return _end(cpu, await pm_runtime_put(d))


async def op_resume(sys, dev):
    """The master's driver needs it: ``pm_runtime_resume_and_get`` (IOMMU first)."""
    cpu = await _begin(sys, f"resume(vpu{dev})")
    d = sys.devices[dev]
    ret = await pm_runtime_resume_and_get(d)
    if ret == 0:
        sys.pm_refs[d] += 1
    return _end(cpu, ret)


async def _dma(sys, dev, iova, write):
    master = sys.masters[dev]
    cpu = current()
    await cpu.sched.point(cpu)
    if master.dev.power.runtime_status != RPM_ACTIVE:
        return -EIO  # a runtime-suspended device issues no DMA
    return master.issue(iova, write)


async def op_dma(sys, dev, iova, write=False):
    """The master of ``dev`` issues one access at ``iova`` (if it is powered):
    the :class:`~model.hw.DmaAccess`, or -EIO."""
    cpu = await _begin(sys, f"dma(vpu{dev}, {iova:#x}, {'w' if write else 'r'})")
    return _end(cpu, await _dma(sys, dev, iova, write))


async def op_fault_irq(sys, dev):
    """A DMA at an IOVA nobody maps: the IOMMU faults and raises its IRQ."""
    cpu = await _begin(sys, f"fault(vpu{dev})")
    return _end(cpu, await _dma(sys, dev, FAULT_IOVA, False))


# -- the callers real drivers meet: fault handlers, the DMA API, batched unmaps ----------------


async def _fault_handler(domain, dev, iova, flags, sys):
    """A domain user's fault handler (``iommu_set_fault_handler``): it runs in
    the IOMMU driver's IRQ handler (``report_iommu_fault``) and re-enters the
    IOMMU API, as users that look the address up and drop a stale mapping do."""
    page = iova & ~(SZ_4K - 1)
    await iommu_iova_to_phys(domain, page)
    await iommu_unmap(domain, page, SZ_4K)
    return 0


async def op_set_fault_handler(sys, dom):
    """``iommu_set_fault_handler`` on user domain slot ``dom`` (a domain with
    no DMA cookie, as the C requires): :func:`_fault_handler`."""
    cpu = await _begin(sys, f"fault_handler({_dom_name(dom)})")
    domain, err = sys._domain(dom)
    if err:
        return _end(cpu, err)
    iommu_set_fault_handler(domain, _fault_handler, sys)
    return _end(cpu, 0)


async def op_unmap_batch(sys, dom, iova, count):
    """VFIO's batched unmap (``vfio_unmap_unpin``): ``iommu_unmap_fast`` of
    ``count`` slots from slot ``iova`` on (4 pages each, whatever is mapped),
    one ``iommu_iotlb_sync`` for all.  The bytes unmapped, or -errno."""
    cpu = await _begin(sys, f"unmap_batch({_dom_name(dom)}, {iova_of(iova):#x}, {count})")
    domain, err = sys._domain(dom)
    if err:
        return _end(cpu, err)
    sys._hold(domain)
    gather = IommuIotlbGather()
    unmapped = 0
    for i in range(count):
        slot = (iova + i) % sys.config.iovas
        unmapped += await iommu_unmap_fast(domain, iova_of(slot), 4 * SZ_4K, gather)
    await iommu_iotlb_sync(domain, gather)
    sys._unhold(domain)
    return _end(cpu, unmapped)


#: where a DMA-API user runs (``op_dma_map``'s ``ctx``), simplest first
DMA_CONTEXTS = ("task", "irqoff", "bh", "softirq", "hardirq")


async def _dma_api_xfer(sys, dev, write):
    """One buffer of a device driver: ``dma_map_single``, the device's DMA
    to it, ``dma_unmap_single``; 0 or -errno."""
    d = sys.devices[dev]
    dir = DMA_FROM_DEVICE if write else DMA_TO_DEVICE
    direct = sys.default_domain(d).type == IOMMU_DOMAIN_IDENTITY  # dma-direct, swiotlb below 4 GiB
    dma = await iommu_dma_map_phys(d, sys.alloc_paddr(SZ_4K, low=direct), SZ_4K, dir)
    if dma == DMA_MAPPING_ERROR:
        return -ENOMEM
    await _dma(sys, dev, dma, write)
    await iommu_dma_unmap_phys(d, dma, SZ_4K, dir)
    return 0


async def _nic_irq(irq, dev_id):
    """The device's own interrupt (a NIC's): the buffer work queued for this
    CPU runs here (hard IRQ) or in the NET_RX softirq it raises (NAPI)."""
    sys, dev = dev_id
    cpu = current()
    work = sys.nic_work.get(cpu.id)
    if work is None or work[0] != dev:
        return IRQ_NONE
    if work[2] == "hardirq":
        sys.nic_work.pop(cpu.id)
        sys.nic_ret[cpu.id] = await _dma_api_xfer(sys, dev, work[1])
    else:
        raise_softirq_irqoff(NET_RX_SOFTIRQ)  # napi_schedule()
    return IRQ_HANDLED


async def _net_rx_action(sys):
    """NET_RX_SOFTIRQ (``net_rx_action``): this CPU's queued buffer work."""
    cpu = current()
    work = sys.nic_work.pop(cpu.id, None)
    if work is not None:
        sys.nic_ret[cpu.id] = await _dma_api_xfer(sys, work[0], work[1])


async def op_dma_map(sys, dev, ctx="task", write=False):
    """A kernel driver of device ``dev`` maps a buffer with the DMA API, its
    device DMAs to it, it unmaps it - from context ``ctx``: ``task``;
    ``irqoff`` under the driver's spinlock with interrupts off; ``bh`` with
    BH disabled; ``softirq`` in NET_RX raised by the device's interrupt on
    this CPU; ``hardirq`` in that interrupt's handler.  -ENODEV when no
    kernel driver is bound (VFIO owns it) or its default domain is being
    replaced."""
    cpu = await _begin(sys, f"dma_map(vpu{dev}, {ctx}, {'w' if write else 'r'})")
    d = sys.devices[dev]
    default = sys.default_domain(d)
    if not sys.bound[d] or d in sys.changing or default is None:
        return _end(cpu, -ENODEV)
    sys._hold(default)
    if ctx == "task":
        ret = await _dma_api_xfer(sys, dev, write)
    elif ctx == "irqoff":
        flags = await spin_lock_irqsave(sys.nic_locks[dev])
        ret = await _dma_api_xfer(sys, dev, write)
        await spin_unlock_irqrestore(sys.nic_locks[dev], flags)
    elif ctx == "bh":
        local_bh_disable()
        ret = await _dma_api_xfer(sys, dev, write)
        await local_bh_enable()
    else:
        # the device's interrupt arrives on this CPU now
        sys.nic_work[cpu.id] = (dev, write, ctx)
        await sys.kernel.irq.handle(cpu, NIC_IRQ_BASE + dev)
        ret = sys.nic_ret.pop(cpu.id, -EIO)
    sys._unhold(default)
    return _end(cpu, ret)


# -- system sleep ---------------------------------------------------------------------
#
# ``echo mem > /sys/power/state``: pm_suspend() -> enter_state() ->
# suspend_devices_and_enter() (kernel/power/suspend.c), the device phases of
# drivers/base/power/main.c.  What may run while devices suspend, and what the
# model therefore lets run:
#
# * user space is frozen first (freeze_processes), then freezable kernel
#   threads and freezable workqueues (freeze_kernel_threads): pm_wq is one
#   (WQ_FREEZABLE, kernel/power/main.c), so no runtime-PM work runs from
#   before the devices suspend until after they resume; requests queued
#   before stay queued (device_suspend's pm_runtime_barrier() and
#   pm_runtime_force_suspend()'s pm_runtime_disable() cancel them, a pending
#   resume is carried out first);
# * every workload operation is a task's (VFIO, DMA API, the master's driver)
#   or a master's DMA: the freezer stops tasks at their next operation, and
#   a master's own driver is suspended before the IOMMU (consumers before
#   suppliers: dpm_list order and device links), so nothing of the workload
#   runs while an IOMMU suspends or resumes - an operation that comes while
#   the system is frozen waits for the thaw (it is not lost, as a frozen
#   task's is not);
# * interrupts stay on until suspend_device_irqs() (the noirq phase), but in
#   this machine only a master's fault raises one, and the masters are
#   stopped: a line raised before is delivered before the devices suspend
#   (the freeze takes milliseconds; the model waits for it), and none is
#   raised after.  The window the model explores is therefore the state the
#   runtime left behind (pending requests, a transition under way, usage
#   counts, links) meeting the drivers' system-sleep callbacks.
#
# dpm_list is probe order: the IOMMUs, then the masters (each after its
# IOMMU); suspend walks it backwards, resume forwards.


def _power_domains(sys):
    """The SoC's power domains (one per IOMMU and its masters), in probe order."""
    return [hw.power_domain for hw in sys.hws if hw.power_domain is not None]


def _dpm_list(sys):
    return list(sys.iommus) + list(sys.devices)


async def dpm_suspend(sys):
    """dpm_prepare + dpm_suspend + dpm_suspend_late (+ noirq, where nothing is
    left to stop): 0, or the errno of the first callback that failed (the
    devices suspended so far are then resumed, as dpm_resume_end does)."""
    devs = _dpm_list(sys)
    for dev in devs:
        pm_runtime_get_noresume(dev)  # device_prepare: no runtime suspend until complete
    sys.suspended = []
    for dev in reversed(devs):  # device_suspend
        await pm_runtime_barrier(dev)
        cb = pm_sleep_callback(dev, "suspend")
        ret = await cb(dev) if cb is not None else 0
        if ret:
            await dpm_resume(sys, late=False)
            return ret
        sys.suspended.append(dev)
    for dev in reversed(devs):  # device_suspend_late: no pending-resume check
        await __pm_runtime_disable(dev, False)
    for pd in _power_domains(sys):  # device_suspend_noirq: genpd_suspend_noirq of its last device
        genpd_sync_power_off(pd)
    return 0


async def dpm_resume(sys, late=True):
    """dpm_resume_early (runtime PM on again) + dpm_resume + dpm_complete
    (``device_prepare``'s reference dropped: an idle request, for after the thaw)."""
    devs = _dpm_list(sys)
    if late:
        for pd in _power_domains(sys):  # device_resume_noirq: genpd_resume_noirq
            genpd_sync_power_on(pd)
        for dev in devs:  # device_resume_early
            pm_runtime_enable(dev)
    for dev in devs:  # device_resume: only what device_suspend suspended
        if dev in sys.suspended:
            cb = pm_sleep_callback(dev, "resume")
            if cb is not None:
                await cb(dev)  # an error is logged (dpm_save_failed_dev), not undone
    sys.suspended = []
    for dev in reversed(devs):  # device_complete
        await pm_runtime_put(dev)


async def op_system_sleep(sys):
    """``echo mem > /sys/power/state`` from this CPU: freeze the tasks (each
    stops at its next operation) and pm_wq, suspend the devices, wake up,
    resume them, thaw.  The write returns after the resume, so the system
    is always awake again when the operation ends.  -EBUSY while another
    transition runs (``mutex_trylock(&system_transition_mutex)``)."""
    cpu = current()
    if sys.frozen:
        await cpu.sched.point(cpu)
        return -EBUSY
    sys.frozen = True
    cpu.op = "system_sleep()"
    for fn in cpu.kernel.hooks.op_begin:
        fn(cpu, cpu.op)
    k = sys.kernel
    # suspend_freeze_processes(): every other task reaches the refrigerator
    await wait_until(lambda: all(c.op is None for c in k.cpus if c is not cpu), "freeze_processes")
    await pm_wq_freeze(k)  # freeze_kernel_threads(): freezable workqueues too
    # an interrupt raised before is handled long before the devices suspend
    await wait_until(lambda: not k.irq.pending and not any(c.hardirq for c in k.cpus), "pending interrupts")
    ret = await dpm_suspend(sys)
    if ret == 0:
        # suspend_enter(): asleep; a wakeup event; dpm_resume_noirq ...
        await dpm_resume(sys)
    pm_wq_thaw(k)  # suspend_thaw_processes()
    sys.frozen = False
    return _end(cpu, ret)


def add_dma_agent(sys, dev, iovas, write=False):
    """Make the DMA master of ``dev`` an agent of its own: it issues one access
    per IOVA of ``iovas``, chosen by the scheduler like any CPU.  Call it while
    building the scenario (agents start with the CPUs)."""

    async def agent():
        for iova in iovas:
            await op_dma(sys, dev, iova, write)

    sys.kernel.add_agent(f"dma:vpu{dev}", agent, kind="dma")


# -- teardown ----------------------------------------------------------------------


async def teardown(sys):
    """Detach, free the user domains, drop the PM references, release the
    devices (default and blocking domains go with them), run the queued PM
    work: afterwards nothing the workload or the driver allocated is live."""
    for d in sys.devices:
        while sys.owned[d]:
            await iommu_device_release_dma_owner(d)
            sys.owned[d] -= 1
            if not sys.owned[d]:
                sys.attached[d] = None
        cur = sys.attached[d]
        if cur is not None:
            await iommu_detach_device(cur, d)
            sys.attached[d] = None
    for s, domain in enumerate(sys.slots):
        if isinstance(domain, IommuDomain):
            sys.slots[s] = None
            await iommu_domain_free(domain)
    for d in sys.devices:
        while sys.pm_refs[d]:
            sys.pm_refs[d] -= 1
            await pm_runtime_put(d)
    await flush_pm_wq(sys.kernel)
    for d in sys.devices:
        if sys.bound[d]:
            await iommu_device_unuse_default_domain(d)
            sys.bound[d] = False
        await iommu_release_device(d)
    await flush_pm_wq(sys.kernel)


# -- programs (stress.workload) ------------------------------------------------------


def _gfp_of(name):
    if isinstance(name, int):
        return name
    value = getattr(_gfp, name, None)
    if not isinstance(value, int):
        raise ValueError(f"unknown gfp {name!r}")
    return value


PROGRAM_OPS = {
    "map": lambda s, a: op_map(s, a["dom"], iova_of(a["iova"]), a.get("pages", 1) * SZ_4K, _gfp_of(a.get("gfp", "GFP_KERNEL_ACCOUNT"))),
    "unmap": lambda s, a: op_unmap(s, a["dom"], iova_of(a["iova"]), a.get("pages", 1) * SZ_4K),
    "attach": lambda s, a: op_attach(s, a["dev"], a["dom"]),
    "attach_identity": lambda s, a: op_attach(s, a["dev"], "identity"),
    "attach_blocked": lambda s, a: op_attach(s, a["dev"], "blocked"),
    "attach_dma": lambda s, a: op_attach(s, a["dev"], "dma"),
    "detach": lambda s, a: op_detach(s, a["dev"]),
    "claim": lambda s, a: op_claim_dma_owner(s, a["dev"]),
    "release": lambda s, a: op_release_dma_owner(s, a["dev"]),
    "unbind": lambda s, a: op_unbind(s, a["dev"]),
    "bind": lambda s, a: op_bind(s, a["dev"]),
    "dom_alloc": lambda s, a: op_domain_alloc(s, a["dom"]),
    "dom_free": lambda s, a: op_domain_free(s, a["dom"]),
    "suspend": lambda s, a: op_suspend(s, a["dev"]),
    "resume": lambda s, a: op_resume(s, a["dev"]),
    "dma": lambda s, a: op_dma(s, a["dev"], iova_of(a["iova"]), bool(a.get("write", False))),
    "fault": lambda s, a: op_fault_irq(s, a["dev"]),
    "fault_handler": lambda s, a: op_set_fault_handler(s, a["dom"]),
    "unmap_batch": lambda s, a: op_unmap_batch(s, a["dom"], a["iova"], a.get("count", 2)),
    "dma_map": lambda s, a: op_dma_map(s, a["dev"], a.get("ctx", "task"), bool(a.get("write", False))),
    "iova_to_phys": lambda s, a: op_iova_to_phys(s, a["dom"], iova_of(a["iova"])),
    "system_sleep": lambda s, a: op_system_sleep(s),
}


def run_program_op(sys, op):
    """The coroutine of one program step ``[kind, {args}]``."""
    kind, args = op
    return PROGRAM_OPS[kind](sys, args)


def _check_program(cfg, program):
    for op in program:
        if not (isinstance(op, (list, tuple)) and len(op) == 2 and isinstance(op[1], dict)):
            raise ValueError(f"a program step is [kind, {{args}}], not {op!r}")
        kind, args = op
        if kind not in PROGRAM_OPS:
            raise ValueError(f"unknown operation {kind!r} (known: {', '.join(sorted(PROGRAM_OPS))})")
        if "dev" in args and not 0 <= args["dev"] < cfg.iommus * cfg.masters:
            raise ValueError(f"{kind}: device {args['dev']} out of range ({cfg.iommus * cfg.masters} masters: iommus={cfg.iommus} x masters={cfg.masters})")
        if "dom" in args and isinstance(args["dom"], int) and not 0 <= args["dom"] < cfg.domains:
            raise ValueError(f"{kind}: domain {args['dom']} out of range (domains={cfg.domains})")
        if "gfp" in args:
            _gfp_of(args["gfp"])
        if "ctx" in args and args["ctx"] not in DMA_CONTEXTS:
            raise ValueError(f"{kind}: unknown context {args['ctx']!r} (known: {', '.join(DMA_CONTEXTS)})")


def build_scenario(kernel, driver_cls, config):
    """One CPU body per program of ``config["programs"]`` on a booted System."""
    cfg = check_programs(config)
    return program_bodies(System.boot(kernel, driver_cls, cfg), config.get("programs") or [])


def check_programs(config):
    """The :class:`SystemConfig` of ``config``, its programs checked against it
    (``ValueError`` naming the first bad operation)."""
    cfg = SystemConfig.from_dict(config)
    for program in config.get("programs") or []:
        _check_program(cfg, program)
    return cfg


def program_bodies(sys, programs):
    """One CPU body per program, on the booted ``sys``."""
    return [partial(run_program, sys, p) for p in programs]


async def run_program(sys, program):
    """A CPU's work: its program's operations, in order."""
    for op in program:
        await run_program_op(sys, op)
