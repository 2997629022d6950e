"""pagetable-use-after-free: the walker read a freed table page, or a page the
hardware still points at (its table base, or a TLB line filled from it) was freed.
"""

from model.hw.walker import reachable_pages
from model.kernel.core import model_stack
from model.kernel.mm import Page


class PageTableOracle:
    name = "pagetable"

    def __init__(self, kernel):
        self.kernel = kernel

    def walk(self, hw, page):
        if page is not None and page.freed:
            self._report(None, f"{hw.name} walked table page {page!r} after it was freed", ())

    def free(self, cpu, obj):
        if not isinstance(obj, Page):
            return
        for hw in self.kernel.devices:
            # Only a translating MMU walks its tables (paging on, clocks on).
            if getattr(hw, "paging", False) and hw.powered and obj in reachable_pages(hw):
                stack = model_stack(2)
                self._report(cpu, f"{obj!r} freed while {hw.name} still translates through it", stack)

    def _report(self, cpu, msg, stack):
        self.kernel.report(
            "pagetable-use-after-free",
            msg,
            splat="\n".join(["BUG: KASAN: use-after-free in the IOMMU table walker", msg, "Call trace:", *(f"  {f}" for f in stack)]),
            stacks={repr(cpu): stack} if cpu is not None else {},
            cpu=cpu,
        )
