"""kasan: an access outside any object (``invalid-access``), reported at the dereference.

``container_of()`` of an object that is not embedded the way the caller
assumes (``to_vsi_domain(&vsi_identity_domain)``: a bare static
``struct iommu_domain``) is pointer arithmetic; KASAN sees the first field
read through it, a ``global-out-of-bounds`` for static memory.  The model's
view (:class:`model.iommu.domain.OutOfBounds`) fires the ``oob`` hook there,
for every driver alike.

KASAN reports the first bug of a boot only (mm/kasan/report.c
``report_enabled()``: ``test_and_set_bit(KASAN_BIT_REPORTED)`` unless
``kasan_multi_shot``), and the kernel goes on.  A search is one boot (as
lockdep's graph is): after the first out-of-bounds report of a search the
checker is silent (run option ``kasan_reported``, recorded in later
reports so that they replay the same), and the runs go on through the
view, so teardown's leak checks and every later step stay live.
"""

from model.kernel.core import model_stack

from ..splat import kasan_lines


class KasanChecker:
    name = "kasan"

    def __init__(self, kernel):
        self.kernel = kernel

    def oob(self, cpu, view, field, what):
        if getattr(self.kernel, "kasan_reported", False):
            return  # only the first bug of a boot is reported
        stack = model_stack(3)
        message = f"{what}: {view.ptr!r} is not embedded in a {view.cls.__name__}"
        lines = [
            f"Read of {field} at {what} by task {cpu!r}",
            f"The buggy address lies in front of the variable {view.ptr!r} (a bare {type(view.ptr).__name__})",
        ]
        splat = "\n".join(kasan_lines(cpu, "global-out-of-bounds", stack, lines))
        self.kernel.report("invalid-access", message, splat=splat, stacks={repr(cpu): stack}, cpu=cpu, kasan=True)
