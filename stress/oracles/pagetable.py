"""pagetable-use-after-free: the walker read a freed table page, or a page the
hardware still points at (its table base, or a TLB line filled from it) was freed.
"""

from model.hw.walker import reachable_pages
from model.kernel.core import model_stack
from model.kernel.mm import Page

from ..splat import kasan_lines


class PageTableOracle:
    name = "pagetable"

    def __init__(self, kernel):
        self.kernel = kernel

    def walk(self, hw, page):
        if page is not None and page.freed:
            self._report(None, f"{hw.name} walked table page {page!r} after it was freed", (), f"{hw.name} table walker")

    def free(self, cpu, obj):
        if not isinstance(obj, Page):
            return
        for hw in self.kernel.devices:
            # Only a translating MMU walks its tables (paging on, clocks on).
            if getattr(hw, "paging", False) and hw.powered and obj in reachable_pages(hw):
                stack = model_stack(2)
                self._report(cpu, f"{obj!r} freed while {hw.name} still translates through it", stack)

    def _report(self, cpu, msg, stack, where=None):
        """``where``: what the title names when there is no stack (the walker)."""
        self.kernel.report(
            "pagetable-use-after-free",
            msg,
            splat="\n".join(kasan_lines(cpu, "use-after-free", stack, [msg], where)),
            stacks={repr(cpu): stack} if cpu is not None else {},
            cpu=cpu,
        )
