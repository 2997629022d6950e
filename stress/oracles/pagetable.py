"""pagetable-use-after-free: the hardware used a freed table page, or a table
page it may still use was freed.

What "may still use" means (model.hw.walker.hw_references): every page a walk
from the base register reaches through table memory (the base page, the DT,
the PTs of valid DTEs), and every page a live walk-cache entry names (the PT of
a cached DTE of the DT the walk reaches; on VSI the DT of the cached PTA entry).
A TLB line is a final translation and reads no table, so it keeps a table
page in use only through the walk cache its walk filled.  Two checks:

* ``free`` of such a page while the MMU translates (paging on, powered).  A
  page freed while translation is off is not a finding by itself: a driver
  may free tables while the MMU is off and zap before it turns it back on;
* ``walk``: the walker read a freed page, or used one from its cache (its
  contents cached before the free, or a cached entry naming it when its
  address now holds another page: freeing then reusing a page the hardware
  still uses).

A finding that holds only because of the walk cache (a stale cached entry led
the hardware there), or because a cached entry lived through a loss of
translation or clock, says so: ``assumptions`` in the report, as stale-tlb
does for TLB retention.
"""

from model.kernel.core import model_stack
from model.kernel.mm import Page

from ..splat import kasan_lines
from .isolation import rests_on, rests_params


class PageTableOracle:
    name = "pagetable"

    def __init__(self, kernel):
        self.kernel = kernel

    def walk(self, hw, page, rests=()):
        if page is not None and page.freed:
            how = " through its walk cache" if any(x in ("pta", "dte") for x in rests) else ""
            self._report(None, f"{hw.name} walked table page {page!r}{how} after it was freed", (), rests, f"{hw.name} table walker")

    def free(self, cpu, obj):
        if not isinstance(obj, Page):
            return
        for hw in self.kernel.devices:
            # Only a translating MMU walks its tables (paging on, clocks on).
            if not (getattr(hw, "paging", False) and hw.powered):
                continue
            refs = hw.page_references()
            rests = refs.get(obj)
            if rests is not None:
                stack = model_stack(2)
                how = " (its walk cache names it)" if rests else ""
                self._report(cpu, f"{obj!r} freed while {hw.name} still translates through it{how}", stack, rests)

    def _report(self, cpu, msg, stack, rests, where=None):
        """``where``: what the title names when there is no stack (the walker);
        ``rests``: walk-cache levels and retention events the find rests on."""
        assumptions = rests_on(rests)
        said, extra = [msg], {}
        if assumptions:
            said += [f"this rests on a hardware fact the model assumes ({rests_params(rests)}):", *(f"  {a}" for a in assumptions)]
            extra["assumptions"] = assumptions
        lines = kasan_lines(cpu, "use-after-free", stack, said, where)
        self.kernel.report(
            "pagetable-use-after-free",
            msg,
            splat="\n".join(lines),
            stacks={repr(cpu): stack} if cpu is not None else {},
            cpu=cpu,
            **extra,
        )
