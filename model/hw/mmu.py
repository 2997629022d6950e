"""One simulated IOMMU instance: register file, commands, TLB, translation.

One state, two front-ends (``layout``):

* ``"rk"`` - the Rockchip map: DTE_ADDR, STATUS, COMMAND (enable/disable
  paging, enable/disable stall, zap cache, page fault done, force reset),
  PAGE_FAULT_ADDR, ZAP_ONE_LINE, INT_RAWSTAT/CLEAR/MASK/STATUS, AUTO_GATING;
  v1 DTE/PTE format.
* ``"vsi"`` - the merged VSI map: TLB_ARRAY_BASE_L (the PTA address),
  AHB_CONTROL bit 0 (translation on), AHB_EXCEPTION (write: interrupt
  enable; read: the fault address), CONFIG1, FLUSH bit 4, STATUS (the
  interrupt status); the walk goes PTA -> DT -> PT in the VSI formats.

Command semantics follow the Rockchip driver's expectations: a stall is
only granted while paging is enabled; FORCE_RESET works only while stalled
and clears DTE_ADDR (and everything else); DTE_ADDR keeps bits 31:12.
Commands take effect at once, so a driver's poll succeeds on its first read.

Access while unpowered (``hw.powered`` false: no clock runs, or the power
domain is off) is observed through the ``mmio`` hook like any other and
otherwise ignored (reads return 0): the power oracle decides whether that
was a bug.  Power-off (:meth:`IommuHw.power_off`) resets every register.
"""

from __future__ import annotations

from model.kernel.core import current
from model.kernel.irq import raise_irq

from .clk import ClkBulk
from .master import DmaAccess
from .regs import (
    IOVA_PAGE_MASK,
    LAYOUTS,
    reg_name,
    RK_MMU_AUTO_GATING,
    RK_MMU_CMD_DISABLE_PAGING,
    RK_MMU_CMD_DISABLE_STALL,
    RK_MMU_CMD_ENABLE_PAGING,
    RK_MMU_CMD_ENABLE_STALL,
    RK_MMU_CMD_FORCE_RESET,
    RK_MMU_CMD_PAGE_FAULT_DONE,
    RK_MMU_CMD_ZAP_CACHE,
    RK_MMU_COMMAND,
    RK_MMU_DTE_ADDR,
    RK_MMU_INT_CLEAR,
    RK_MMU_INT_MASK,
    RK_MMU_INT_RAWSTAT,
    RK_MMU_INT_STATUS,
    RK_MMU_IRQ_PAGE_FAULT,
    RK_MMU_PAGE_FAULT_ADDR,
    RK_MMU_STATUS,
    RK_MMU_STATUS_IDLE,
    RK_MMU_STATUS_PAGE_FAULT_ACTIVE,
    RK_MMU_STATUS_PAGE_FAULT_IS_WRITE,
    RK_MMU_STATUS_PAGING_ENABLED,
    RK_MMU_STATUS_REPLAY_BUFFER_EMPTY,
    RK_MMU_STATUS_STALL_ACTIVE,
    RK_MMU_STATUS_STALL_NOT_ACTIVE,
    RK_MMU_ZAP_ONE_LINE,
    VSI_MMU_AHB_CONTROL_BASE,
    VSI_MMU_AHB_EXCEPTION_BASE,
    VSI_MMU_AHB_TLB_ARRAY_BASE_L_BASE,
    VSI_MMU_BIT_ENABLE,
    VSI_MMU_BIT_FLUSH,
    VSI_MMU_CONFIG1_BASE,
    VSI_MMU_FLUSH_BASE,
    VSI_MMU_IRQ_FAULT_IS_WRITE,
    VSI_MMU_IRQ_MASK,
    VSI_MMU_IRQ_PAGE_FAULT,
    VSI_MMU_STATUS_BASE,
)
from .tlb import DEFAULT_RETENTION, DEFAULT_WALK_CACHE, RETENTION_EVENTS, Tlb, TlbEntry
from .walker import hw_references, walk

__all__ = ["IommuHw", "readl", "writel"]


class IommuHw:
    """The MMU hardware of one IOMMU instance (``iommu->regs``)."""

    def __init__(self, kernel, name, irq, layout="rk", tlb_retention=DEFAULT_RETENTION, walk_cache=DEFAULT_WALK_CACHE):
        if layout not in LAYOUTS:
            raise ValueError(f"unknown register layout {layout!r} (choose from {', '.join(LAYOUTS)})")
        self.kernel = kernel
        self.name = name
        self.irq = irq
        self.layout = layout
        self.clks = ClkBulk(self)
        self.power_domain = None  # a GenericPmDomain, or always powered
        self.tlb = Tlb(tlb_retention, walk_cache)  # and the walk cache (model.hw.tlb)
        # register state shared by both front-ends
        self.base = 0  # rk DTE_ADDR / vsi TLB_ARRAY_BASE_L (PTA)
        self.paging = False  # rk STATUS.PAGING_ENABLED / vsi AHB_CONTROL bit 0
        self.stall = False
        self.fault_active = False
        self.fault_is_write = False
        self.fault_addr = 0
        self.int_rawstat = 0  # rk INT_RAWSTAT / vsi STATUS
        self.int_mask = 0
        self.auto_gating = 0
        self.config1 = 0
        self.exception = 0  # vsi AHB_EXCEPTION (written value)
        self.flush = 0
        if not hasattr(kernel, "dma_seq"):
            kernel.dma_seq = 0
        kernel.devices.append(self)

    @property
    def powered(self):
        """Clocked and in a powered domain: registers respond and the MMU translates."""
        return self.clks.running and (self.power_domain is None or self.power_domain.on)

    def power_off(self):
        """Its power domain went off (``model.kernel.genpd``): every register
        back to its reset value; the TLB survives only if stated to."""
        self._reset_registers()
        self.tlb.lose("power-off")  # and the walk cache with it

    def __repr__(self):
        return self.name

    def reg_name(self, off):
        """The register at ``off`` in this MMU's layout: ``FLUSH(0x184)``."""
        return reg_name(self.layout, off)

    # -- register front-ends ---------------------------------------------------

    def read_reg(self, off):
        if self.layout == "vsi":
            return self._read_vsi(off)
        return self._read_rk(off)

    def write_reg(self, off, value):
        if self.layout == "vsi":
            self._write_vsi(off, value)
        else:
            self._write_rk(off, value)

    def _rk_status(self):
        s = RK_MMU_STATUS_IDLE | RK_MMU_STATUS_REPLAY_BUFFER_EMPTY
        if self.paging:
            s |= RK_MMU_STATUS_PAGING_ENABLED
        if self.fault_active:
            s |= RK_MMU_STATUS_PAGE_FAULT_ACTIVE
        if self.fault_is_write:
            s |= RK_MMU_STATUS_PAGE_FAULT_IS_WRITE
        s |= RK_MMU_STATUS_STALL_ACTIVE if self.stall else RK_MMU_STATUS_STALL_NOT_ACTIVE
        return s

    def _read_rk(self, off):
        if off == RK_MMU_DTE_ADDR:
            return self.base
        if off == RK_MMU_STATUS:
            return self._rk_status()
        if off == RK_MMU_PAGE_FAULT_ADDR:
            return self.fault_addr
        if off == RK_MMU_INT_RAWSTAT:
            return self.int_rawstat
        if off == RK_MMU_INT_MASK:
            return self.int_mask
        if off == RK_MMU_INT_STATUS:
            return self.int_rawstat & self.int_mask
        if off == RK_MMU_AUTO_GATING:
            return self.auto_gating
        return 0

    def _write_rk(self, off, value):
        if off == RK_MMU_DTE_ADDR:
            self.base = value & 0xFFFFF000
        elif off == RK_MMU_COMMAND:
            self._command(value)
        elif off == RK_MMU_ZAP_ONE_LINE:
            self.tlb.zap_line(value)
        elif off == RK_MMU_INT_CLEAR:
            self.int_rawstat &= ~value
        elif off == RK_MMU_INT_MASK:
            self.int_mask = value
            self._maybe_raise()
        elif off == RK_MMU_AUTO_GATING:
            self.auto_gating = value

    def _command(self, cmd):
        if cmd == RK_MMU_CMD_ENABLE_PAGING:
            self.paging = True
        elif cmd == RK_MMU_CMD_DISABLE_PAGING:
            if self.paging:
                self.tlb.lose("disable")
            self.paging = False
            self.stall = False
        elif cmd == RK_MMU_CMD_ENABLE_STALL:
            if self.paging:  # stall can only be enabled if paging is enabled
                self.stall = True
        elif cmd == RK_MMU_CMD_DISABLE_STALL:
            self.stall = False
        elif cmd == RK_MMU_CMD_ZAP_CACHE:
            self.tlb.zap_all()
        elif cmd == RK_MMU_CMD_PAGE_FAULT_DONE:
            self.fault_active = False
        elif cmd == RK_MMU_CMD_FORCE_RESET:
            if self.stall:  # only a stalled MMU resets
                self._reset()

    def _reset(self):
        """FORCE_RESET: registers and the TLB."""
        self._reset_registers()
        self.tlb.zap_all()

    def _reset_registers(self):
        self.base = 0
        self.paging = False
        self.stall = False
        self.fault_active = False
        self.fault_is_write = False
        self.fault_addr = 0
        self.int_rawstat = 0
        self.int_mask = 0
        self.auto_gating = 0
        self.config1 = 0  # vsi only: FORCE_RESET is an rk command
        self.exception = 0
        self.flush = 0

    def _read_vsi(self, off):
        if off == VSI_MMU_AHB_EXCEPTION_BASE:  # == VSI_MMU_PAGE_FAULT_ADDR
            return self.fault_addr
        if off == VSI_MMU_STATUS_BASE:
            return self.int_rawstat
        if off == VSI_MMU_AHB_CONTROL_BASE:
            return VSI_MMU_BIT_ENABLE if self.paging else 0
        if off == VSI_MMU_AHB_TLB_ARRAY_BASE_L_BASE:
            return self.base
        if off == VSI_MMU_CONFIG1_BASE:
            return self.config1
        if off == VSI_MMU_FLUSH_BASE:
            return self.flush
        return 0

    def _write_vsi(self, off, value):
        if off == VSI_MMU_AHB_TLB_ARRAY_BASE_L_BASE:
            self.base = value
        elif off == VSI_MMU_AHB_CONTROL_BASE:
            if self.paging and not value & VSI_MMU_BIT_ENABLE:
                self.tlb.lose("disable")
            self.paging = bool(value & VSI_MMU_BIT_ENABLE)
        elif off == VSI_MMU_AHB_EXCEPTION_BASE:
            self.exception = value
            self._maybe_raise()
        elif off == VSI_MMU_CONFIG1_BASE:
            self.config1 = value
        elif off == VSI_MMU_FLUSH_BASE:
            if value & VSI_MMU_BIT_FLUSH:
                self.tlb.zap_all()
            self.flush = value
        elif off == VSI_MMU_STATUS_BASE:
            self.int_rawstat = value
            if not value & VSI_MMU_IRQ_PAGE_FAULT:
                self.fault_active = False

    # -- interrupts ------------------------------------------------------------

    def irq_asserted(self):
        if self.layout == "vsi":
            return bool(self.int_rawstat & VSI_MMU_IRQ_MASK and self.exception & VSI_MMU_BIT_ENABLE)
        return bool(self.int_rawstat & self.int_mask)

    def _maybe_raise(self):
        if self.powered and self.irq_asserted():
            raise_irq(self.kernel, self.irq)

    def _page_fault(self, iova, is_write):
        self.fault_active = True
        self.fault_is_write = is_write
        self.fault_addr = iova
        if self.layout == "vsi":
            self.int_rawstat |= VSI_MMU_IRQ_PAGE_FAULT | (VSI_MMU_IRQ_FAULT_IS_WRITE if is_write else 0)
        else:
            self.int_rawstat |= RK_MMU_IRQ_PAGE_FAULT
        self._maybe_raise()

    # -- translation -------------------------------------------------------------

    def translate(self, dev_name, iova, is_write):
        """One access of a DMA master: a :class:`DmaAccess` saying where it went."""
        k = self.kernel
        k.dma_seq += 1
        iova &= 0xFFFFFFFF
        acc = DmaAccess(k.dma_seq, dev_name, self, iova, is_write)
        if not self.powered:
            acc.outcome = "off"  # no clock: the access goes nowhere
            return acc
        if not self.paging:
            acc.outcome = "bypass"
            acc.paddr = iova
            return acc
        if self.stall:
            acc.outcome = "stall"  # held back; the model does not replay it
            return acc
        off = iova & IOVA_PAGE_MASK
        e = self.tlb.lookup(iova)
        if e is not None:
            f = e.fill
            acc.fill, acc.base, acc.dt, acc.pt = f, f.base, f.dt, f.pt
            if e.writable if is_write else e.readable:
                acc.outcome = "tlb"
                # what the line lived through, and what the walk that filled it rested on
                acc.cached = f.cached
                acc.survived = tuple(ev for ev in RETENTION_EVENTS if ev in e.survived or ev in f.survived)
                acc.paddr = e.paddr | off
                return acc
            self._page_fault(iova, is_write)
            return acc
        w = walk(self, iova)
        acc.base, acc.dt, acc.pt = w.base, w.dt, w.pt
        acc.cached, acc.survived = w.cached, w.survived  # stale walk-cache entries it used
        if w.ok and (w.writable if is_write else w.readable):
            acc.outcome = "walk"
            acc.paddr = w.paddr | off
            self.tlb.insert(TlbEntry(iova & ~IOVA_PAGE_MASK, w.paddr, w.readable, w.writable, acc))
            return acc
        self._page_fault(iova, is_write)
        return acc

    def referenced_pages(self):
        """Table pages the hardware may still use: reachable from the base
        register, or named by a live walk-cache entry (a TLB line alone reads
        no table: model.hw.walker).  Nothing while translation is off
        (re-enabling it must zap the TLB and the walk cache; a DMA through a
        stale entry is the isolation oracle's to report, a walk through a
        freed page the page-table oracle's)."""
        if not self.paging:
            return ()
        return set(self.page_references())

    def page_references(self):
        """``{page: rests}`` (:func:`model.hw.walker.hw_references`) whatever
        the paging state: what each page's use rests on (empty: any MMU)."""
        return hw_references(self)


async def readl(hw, off):
    """``readl(iommu->regs + off)``: a preemption point; 0 while unclocked."""
    cpu = current()
    await cpu.sched.point(cpu)
    value = hw.read_reg(off) if hw.powered else 0
    for fn in hw.kernel.hooks.mmio:
        fn(cpu, hw, off, value, False)
    return value


async def writel(hw, off, value):
    """``writel(value, iommu->regs + off)``: a preemption point; ignored while unclocked."""
    cpu = current()
    await cpu.sched.point(cpu)
    value &= 0xFFFFFFFF
    for fn in hw.kernel.hooks.mmio:
        fn(cpu, hw, off, value, True)
    if hw.powered:
        hw.write_reg(off, value)
