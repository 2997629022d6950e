"""The timeline of one run: every event, in order, by CPU.

Attached only when a report is built (a replay of the found schedule), so
the search itself pays nothing for it.  Entries are ``[step, actor, what,
detail]`` lists, JSON-ready.
"""

from __future__ import annotations

from model.kernel.gfp import gfp_name

__all__ = ["Tracer"]


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
    def lock_acquire(self, cpu, lock, trylock, subclass):
        self._add(cpu, "trylock" if trylock else ("mutex_lock" if lock.sleeps else "spin_lock"), repr(lock))

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

    def access(self, cpu, cell, is_write):
        self._add(cpu, "store" if is_write else "load", f"{cell.name} = {cell.value!r}" if not is_write else cell.name)

    def op_begin(self, cpu, name):
        self._add(cpu, "op", f"begin {name}")

    def op_end(self, cpu, name):
        if name is not None:
            self._add(cpu, "op", f"end {name}")

    def mmio(self, cpu, hw, reg, value, is_write):
        self._add(cpu, "mmio", f"{'write' if is_write else 'read'} {hw}:{reg} {value:#x}")

    def dma(self, master, access):
        self._add(master, "dma", str(access))

    def gfp(self, gfp):
        return gfp_name(gfp)
