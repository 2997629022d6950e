"""Register maps of the simulated MMU: the Rockchip offsets and the merged VSI ones.

Both front-ends program one state (:class:`model.hw.mmu.IommuHw`): the
Rockchip map after drivers/iommu/rockchip-iommu.c, the VSI map after
drivers/iommu/vsi-iommu.c (notes section 1.2).  Where the VSI hardware is
undocumented the model picks the obvious meaning and says so.
"""


def BIT(n):
    return 1 << n


# -- Rockchip (rk) layout -------------------------------------------------------
RK_MMU_DTE_ADDR = 0x00  # Directory table address
RK_MMU_STATUS = 0x04
RK_MMU_COMMAND = 0x08
RK_MMU_PAGE_FAULT_ADDR = 0x0C  # IOVA of last page fault
RK_MMU_ZAP_ONE_LINE = 0x10  # Shootdown one IOTLB entry
RK_MMU_INT_RAWSTAT = 0x14  # IRQ status ignoring mask
RK_MMU_INT_CLEAR = 0x18  # Acknowledge and re-arm irq
RK_MMU_INT_MASK = 0x1C  # IRQ enable
RK_MMU_INT_STATUS = 0x20  # IRQ status after masking
RK_MMU_AUTO_GATING = 0x24

DTE_ADDR_DUMMY = 0xCAFEBABE

# RK_MMU_STATUS fields
RK_MMU_STATUS_PAGING_ENABLED = BIT(0)
RK_MMU_STATUS_PAGE_FAULT_ACTIVE = BIT(1)
RK_MMU_STATUS_STALL_ACTIVE = BIT(2)
RK_MMU_STATUS_IDLE = BIT(3)
RK_MMU_STATUS_REPLAY_BUFFER_EMPTY = BIT(4)
RK_MMU_STATUS_PAGE_FAULT_IS_WRITE = BIT(5)
RK_MMU_STATUS_STALL_NOT_ACTIVE = BIT(31)

# RK_MMU_COMMAND command values
RK_MMU_CMD_ENABLE_PAGING = 0  # Enable memory translation
RK_MMU_CMD_DISABLE_PAGING = 1  # Disable memory translation
RK_MMU_CMD_ENABLE_STALL = 2  # Stall paging to allow other cmds
RK_MMU_CMD_DISABLE_STALL = 3  # Stop stall re-enables paging
RK_MMU_CMD_ZAP_CACHE = 4  # Shoot down entire IOTLB
RK_MMU_CMD_PAGE_FAULT_DONE = 5  # Clear page fault
RK_MMU_CMD_FORCE_RESET = 6  # Reset all registers

# RK_MMU_INT_* register fields
RK_MMU_IRQ_PAGE_FAULT = 0x01
RK_MMU_IRQ_BUS_ERROR = 0x02
RK_MMU_IRQ_MASK = RK_MMU_IRQ_PAGE_FAULT | RK_MMU_IRQ_BUS_ERROR

# v1 DTE/PTE format
RK_DTE_PT_ADDRESS_MASK = 0xFFFFF000
RK_DTE_PT_VALID = BIT(0)
RK_PTE_PAGE_ADDRESS_MASK = 0xFFFFF000
RK_PTE_PAGE_FLAGS_MASK = 0x000001FE
RK_PTE_PAGE_WRITABLE = BIT(2)
RK_PTE_PAGE_READABLE = BIT(1)
RK_PTE_PAGE_VALID = BIT(0)

# -- VSI layout (drivers/iommu/vsi-iommu.c) ----------------------------------------
VSI_MMU_CONFIG1_BASE = 0x1AC
VSI_MMU_AHB_EXCEPTION_BASE = 0x380
VSI_MMU_AHB_CONTROL_BASE = 0x388
VSI_MMU_AHB_TLB_ARRAY_BASE_L_BASE = 0x38C
VSI_MMU_FLUSH_BASE = 0x184
VSI_MMU_BIT_FLUSH = BIT(4)
VSI_MMU_PAGE_FAULT_ADDR = 0x380  # read side of AHB_EXCEPTION
VSI_MMU_STATUS_BASE = 0x384  # IRQ status
VSI_MMU_BIT_ENABLE = BIT(0)
VSI_MMU_OUT_OF_BOUND = BIT(28)
VSI_MMU_IRQ_MASK = 0x7
# Model choice (undocumented hardware): STATUS bit 0 = page fault, bit 1 = it
# was a write, bit 2 = bus error; AHB_EXCEPTION bit 0 enables the interrupt.
VSI_MMU_IRQ_PAGE_FAULT = BIT(0)
VSI_MMU_IRQ_FAULT_IS_WRITE = BIT(1)

VSI_DTE_PT_ADDRESS_MASK = 0xFFFFFFC0
VSI_DTE_PT_VALID = BIT(0)
VSI_PAGE_DESC_LO_MASK = 0xFFFFF000
VSI_PAGE_DESC_HI_MASK = 0xFF << 32  # GENMASK_ULL(39, 32)
VSI_PAGE_DESC_HI_SHIFT = 32 - 4
VSI_PTE_PAGE_WRITABLE = BIT(2)
VSI_PTE_PAGE_VALID = BIT(0)
VSI_MASTER_TLB_MASK = 0xFFFFFC00  # GENMASK_ULL(31, 10)
VSI_PTA_4K_MODE = 0

# -- both: the 32-bit IOVA split --------------------------------------------------
IOVA_DTE_MASK = 0xFFC00000
IOVA_DTE_SHIFT = 22
IOVA_PTE_MASK = 0x003FF000
IOVA_PTE_SHIFT = 12
IOVA_PAGE_MASK = 0x00000FFF
NUM_DT_ENTRIES = 1024
NUM_PT_ENTRIES = 1024
SPAGE_SIZE = 1 << 12

LAYOUTS = ("rk", "vsi")

# Register names per layout, as the C spells them without the prefix: what
# traces and splats print (``FLUSH(0x184)``), so an offset reads as the
# driver's source does.  VSI 0x380 is AHB_EXCEPTION when written and the
# page-fault address when read (notes 1.2); it prints as AHB_EXCEPTION.
REGISTER_NAMES = {
    "rk": {
        RK_MMU_DTE_ADDR: "DTE_ADDR",
        RK_MMU_STATUS: "STATUS",
        RK_MMU_COMMAND: "COMMAND",
        RK_MMU_PAGE_FAULT_ADDR: "PAGE_FAULT_ADDR",
        RK_MMU_ZAP_ONE_LINE: "ZAP_ONE_LINE",
        RK_MMU_INT_RAWSTAT: "INT_RAWSTAT",
        RK_MMU_INT_CLEAR: "INT_CLEAR",
        RK_MMU_INT_MASK: "INT_MASK",
        RK_MMU_INT_STATUS: "INT_STATUS",
        RK_MMU_AUTO_GATING: "AUTO_GATING",
    },
    "vsi": {
        VSI_MMU_FLUSH_BASE: "FLUSH",
        VSI_MMU_CONFIG1_BASE: "CONFIG1",
        VSI_MMU_AHB_EXCEPTION_BASE: "AHB_EXCEPTION",
        VSI_MMU_STATUS_BASE: "STATUS",
        VSI_MMU_AHB_CONTROL_BASE: "AHB_CONTROL",
        VSI_MMU_AHB_TLB_ARRAY_BASE_L_BASE: "AHB_TLB_ARRAY_BASE_L",
    },
}


def reg_name(layout, off):
    """``FLUSH(0x184)``: the register at ``off`` by name, with its hex offset;
    ``0x1f0`` for an offset the layout does not name."""
    name = REGISTER_NAMES.get(layout, {}).get(off)
    return f"{name}({off:#x})" if name else f"{off:#x}"
