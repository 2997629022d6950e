"""mmio-while-suspended: a register access while the IOMMU's clocks are off."""

from model.kernel.core import model_stack

from ..splat import culprit, warn_lines


class PowerOracle:
    name = "power"

    def __init__(self, kernel):
        self.kernel = kernel

    def mmio(self, cpu, hw, reg, value, is_write):
        if hw.powered:
            return
        stack = model_stack(2)
        what = f"{'writel' if is_write else 'readl'}({value:#x}, {hw.name} + {reg:#x})" if is_write else f"readl({hw.name} + {reg:#x})"
        splat = "\n".join(
            warn_lines(
                cpu,
                stack,
                [f"{hw.name}: register access while the IOMMU is runtime-suspended (clocks off): {what}"],
                culprit(stack),
            )
        )
        self.kernel.report(
            "mmio-while-suspended",
            f"{what} on {cpu!r} while {hw.name} is powered down",
            splat=splat,
            stacks={repr(cpu): stack},
            cpu=cpu,
        )
