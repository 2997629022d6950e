"""The timeline of one run: every event, in order, by CPU.

Attached only when a report is built (a replay of the found schedule), so
the search itself pays nothing for it.  Entries are ``[step, actor, what,
detail]`` lists, JSON-ready.
"""

from __future__ import annotations

from model.kernel.gfp import gfp_name
from model.kernel.shared import RMW

__all__ = ["Tracer"]

# iommu hook events the timeline shows (model.iommu lists them all); map and
# unmap are left out: the workload's op rows name them already.
_IOMMU_EVENTS = {
    "domain_alloc": "domain_alloc {domain}",
    "domain_free": "domain_free {domain}",
    "attach_begin": "attach_dev {dev}: {old} -> {new}",
    "attach_end": "attach_dev {dev} -> {new} = {ret}",
    "probe": "probe_device {dev} done",
    "release": "release_device {dev} done",
    "fault": "report_iommu_fault {domain} {dev} iova={iova:#x}",
}


def _name(value):
    return "NULL" if value is None else value if isinstance(value, int) else repr(value)


class Tracer:
    name = "trace"

    def __init__(self, kernel):
        self.kernel = kernel
        self.entries = []

    def _add(self, actor, what, detail):
        self.entries.append([len(self.entries), repr(actor) if actor is not None else "-", what, detail])

    # scheduler callbacks
    def begin(self, cpu):
        self._add(cpu, "start", "")

    def switch(self, cpu):
        self._add(cpu, "runs", "")

    def event(self, cpu, what, detail):
        self._add(cpu, what, str(detail))

    # model hooks
    def lock_acquire(self, cpu, lock, trylock, subclass, read=0):
        what = "trylock" if trylock else ("mutex_lock" if lock.sleeps else "spin_lock")
        self._add(cpu, f"{what} (read)" if read else what, repr(lock))

    def lock_acquired(self, cpu, lock):
        self._add(cpu, "acquired", repr(lock))

    def lock_release(self, cpu, lock):
        self._add(cpu, "unlock", repr(lock))

    def irqs(self, cpu, enabled):
        self._add(cpu, "irqs", "on" if enabled else "off")

    def hardirq_enter(self, cpu, irq):
        self._add(cpu, "hardirq", f"enter {irq}")

    def hardirq_exit(self, cpu, irq):
        self._add(cpu, "hardirq", f"exit {irq}")

    def might_sleep(self, cpu, what):
        self._add(cpu, "may-sleep", what)

    def alloc(self, cpu, obj):
        self._add(cpu, "alloc", repr(obj))

    def free(self, cpu, obj):
        self._add(cpu, "free", repr(obj))

    def access(self, cpu, cell, is_write, marked=False):
        # plain "load"/"store" as before; a marked access says so (an atomic RMW shows the value it read)
        what = "store" if is_write else "load"
        if marked:
            what = "rmw (marked)" if marked & RMW else f"{what} (marked)"
        self._add(cpu, what, f"{cell.name} = {cell.value!r}" if not is_write or marked & RMW else cell.name)

    def op_begin(self, cpu, name):
        self._add(cpu, "op", f"begin {name}")

    def op_end(self, cpu, name):
        if name is not None:
            self._add(cpu, "op", f"end {name}")

    def mmio(self, cpu, hw, reg, value, is_write):
        # writel(0x10, iommu0 + FLUSH(0x184)) / readl(iommu0 + STATUS(0x384)) = 0x1
        name = hw.reg_name(reg) if hasattr(hw, "reg_name") else f"{reg:#x}"
        if is_write:
            self._add(cpu, "mmio", f"writel({value:#x}, {hw} + {name})")
        else:
            self._add(cpu, "mmio", f"readl({hw} + {name}) = {value:#x}")

    def iommu(self, cpu, what, info):
        # The core's steps that name a domain or device, so that a report can
        # show what happened to them during boot and teardown too.
        text = _IOMMU_EVENTS.get(what)
        if text is not None:
            self._add(cpu, "iommu", text.format(**{k: _name(v) for k, v in info.items()}))

    def dma(self, master, access):
        self._add(master, "dma", str(access))

    def gfp(self, gfp):
        return gfp_name(gfp)
