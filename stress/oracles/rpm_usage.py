"""leak (runtime PM): a ``pm_runtime_get`` whose reference is never dropped.

Every change of a device's ``power.usage_count`` reaches this observer
through the ``rpm_usage`` hook (:mod:`model.kernel.pm`), with the API that
made it and, for the references a device link holds on its supplier, the
link.  The oracle keeps, per device, the references outstanding and where
each was taken (its stack); a drop is paired with the outstanding reference
it most plausibly balances:

* a link's drop with a reference of the same link;
* otherwise the reference whose stack meets the drop's nearest its own
  innermost frame (``vsi_iommu_flush_tlb``'s put balances the get taken in
  ``vsi_iommu_flush_tlb``, ``device_complete``'s put the get of the same
  system sleep), the latest of equals; else the latest.

When a scenario that tears down (``kernel.add_teardown``) has finished,
every reference the workload held is dropped, so each device's count must be
what the kernel holds by itself: one per ``DL_FLAG_PM_RUNTIME`` link
reference (``link->rpm_active - 1``) still in place, none once the devices
are released.  An excess is a leaked reference, reported with the stack of
the get that was never balanced (the usage count never returns to 0: the
device never runtime-suspends again).  The classic case is a caller that
drops its reference only when the get succeeded, although
``pm_runtime_get`` counts it whatever it returns (``-EINPROGRESS`` while a
resume is under way, ``-EACCES`` with runtime PM disabled).
"""

from model.kernel.core import model_stack
from model.kernel.pm import DL_FLAG_PM_RUNTIME

from ..splat import culprit, func, warn_lines


class _Ref:
    """One reference outstanding: who took it, where, on whose behalf."""

    __slots__ = ("api", "link", "stack", "cpu", "funcs")

    def __init__(self, api, link, stack, cpu):
        self.api = api
        self.link = link
        self.stack = stack
        self.cpu = cpu
        self.funcs = [func(fr) for fr in stack]


class RpmUsageOracle:
    name = "rpm-usage"
    # A fast run's (stress.run): references keep no stacks and a drop balances
    # the latest; which one it balances shows only in the report, made by
    # the run in full that a report escalates to.
    lazy_stacks = False

    def __init__(self, kernel):
        self.kernel = kernel
        self.refs = {}  # dev -> [_Ref], oldest first

    def rpm_usage(self, cpu, dev, delta, api, link):
        refs = self.refs.get(dev)
        if refs is None:
            refs = self.refs[dev] = []
        if delta > 0:
            stack = model_stack(2) if not self.lazy_stacks else ()
            if not stack or func(stack[0]) != api:
                stack = (api, *stack)
            refs.append(_Ref(api, link, stack, cpu))
        elif refs:
            refs.pop(self._balanced(refs, link) if link is not None or not self.lazy_stacks else len(refs) - 1)

    @staticmethod
    def _balanced(refs, link):
        """The index in ``refs`` of the reference a drop balances."""
        if link is not None:
            for i in range(len(refs) - 1, -1, -1):
                if refs[i].link is link:
                    return i
            return len(refs) - 1
        here = set(func(fr) for fr in model_stack(3))
        best, best_depth = len(refs) - 1, None
        for i in range(len(refs) - 1, -1, -1):
            r = refs[i]
            if r.link is not None:
                continue
            for depth, f in enumerate(r.funcs[1:]):
                if f in here:
                    if best_depth is None or depth < best_depth:
                        best, best_depth = i, depth
                    break
        return best

    def _expected(self):
        """Per device, the references the kernel holds by itself: the links'."""
        held = {}
        for dev in self.refs:
            for link in getattr(dev.power, "suppliers", ()):
                if link.flags & DL_FLAG_PM_RUNTIME:
                    held[link.supplier] = held.get(link.supplier, 0) + link.rpm_active - 1
        return held

    def run_end(self, kernel):
        if not kernel.teardown:
            return
        expected = self._expected()
        for dev, refs in self.refs.items():
            count, base = dev.power.usage_count, expected.get(dev, 0)
            if count <= base:
                continue
            live = {id(link) for c in self.refs for link in getattr(c.power, "suppliers", ())}
            unmatched = [r for r in refs if r.link is None or id(r.link) not in live]
            excess = count - base
            leaked = unmatched[:excess] or refs[:excess]
            first = leaked[0] if leaked else None
            where = func(culprit(first.stack)) if first else "?"
            api = first.api if first else "a get"
            message = (
                f"{dev.name}: runtime PM usage count {count} after teardown, {base} expected: "
                f"{excess} reference(s) never dropped, the first taken by {api} in {where}"
            )
            lines = [
                f"{dev.name}: runtime PM usage count is {count} with every user gone ({base} held by device links)",
                f"{excess} reference(s) taken and never dropped; the device cannot runtime-suspend again",
            ]
            stacks = {}
            splat = []
            for n, r in enumerate(leaked[:4]):
                stacks[f"get #{n + 1} ({r.api})"] = r.stack
                splat += warn_lines(r.cpu, r.stack, lines if n == 0 else [f"reference #{n + 1}: {r.api}"], culprit(r.stack))
            if len(leaked) > 4:
                splat.append(f"... and {len(leaked) - 4} more")
            kernel.report("leak", message, splat="\n".join(splat), stacks=stacks, cpu=first.cpu if first else None)
