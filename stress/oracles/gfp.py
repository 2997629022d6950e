"""gfp-accounting-dropped: an allocation made on a caller's behalf lost ``__GFP_ACCOUNT``.

The core brackets ``iommu_map`` with ``map_begin``/``map_end`` events that
carry the caller's gfp; every allocation the same CPU makes in between is
made on the caller's behalf, and must be charged (``__GFP_ACCOUNT``) if the
caller asked for it (``GFP_KERNEL_ACCOUNT``, as VFIO does).
"""

from model.kernel.core import model_stack
from model.kernel.gfp import ___GFP_ACCOUNT as GFP_ACCOUNT_BIT  # no __ names in classes: mangling
from model.kernel.gfp import gfp_name

from ..splat import culprit, warn_lines


class GfpAccountingOracle:
    name = "gfp"

    def __init__(self, kernel):
        self.kernel = kernel
        self.caller = {}  # cpu id -> [caller gfp, ...] (map calls in progress)

    def iommu(self, cpu, what, info):
        if what == "map_begin":
            self.caller.setdefault(cpu.id, []).append(info["gfp"])
        elif what == "map_end":
            stack = self.caller.get(cpu.id)
            if stack:
                stack.pop()

    def alloc(self, cpu, obj):
        stack = self.caller.get(cpu.id)
        if not stack or cpu.hardirq:
            return
        asked = stack[-1]
        if asked & GFP_ACCOUNT_BIT and not obj.gfp & GFP_ACCOUNT_BIT:
            frames = model_stack(2)
            msg = (
                f"iommu_map(gfp={gfp_name(asked)}) allocated {obj!r} with {gfp_name(obj.gfp)}: "
                "the memory is not charged to the caller's memcg"
            )
            self.kernel.report(
                "gfp-accounting-dropped",
                msg,
                splat="\n".join(warn_lines(cpu, frames, [msg], culprit(frames))),
                stacks={repr(cpu): frames},
                cpu=cpu,
            )
