"""dma32-violation: the hardware is handed a table address above its DMA mask.

``dma_map_single`` of a table page for a device with a 32-bit mask: Linux
would bounce it through swiotlb, which is no use for a page table the CPU
keeps writing; the walker can never reach the real page.
"""

from model.kernel.core import model_stack

from ..splat import culprit, warn_lines


class Dma32Oracle:
    name = "dma32"

    def __init__(self, kernel):
        self.kernel = kernel

    def iommu(self, cpu, what, info):
        if what != "dma_map":
            return
        end = info["addr"] + info["size"] - 1
        if end <= info["mask"]:
            return
        stack = model_stack(2)
        dev = info.get("dev")
        name = getattr(dev, "name", dev)
        msg = (
            f"{name}: table page {info['page']!r} at {info['addr']:#x} "
            f"is above the device's DMA mask {info['mask']:#x}"
        )
        # dma_direct_map_page()'s dev_WARN_ONCE, then what the page is
        overflow = f"{name}: DMA addr {info['addr']:#018x}+{info['size']} overflow (mask {info['mask']:x}, bus limit 0)."
        self.kernel.report(
            "dma32-violation",
            msg,
            splat="\n".join(warn_lines(cpu, stack, [overflow, msg], culprit(stack))),
            stacks={repr(cpu): stack},
            cpu=cpu,
        )
