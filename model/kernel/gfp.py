"""GFP flags with the bit layout of include/linux/gfp_types.h (6.4 and later)."""

___GFP_DMA = 0x01
___GFP_HIGHMEM = 0x02
___GFP_DMA32 = 0x04
___GFP_MOVABLE = 0x08
___GFP_RECLAIMABLE = 0x10
___GFP_HIGH = 0x20
___GFP_IO = 0x40
___GFP_FS = 0x80
___GFP_ZERO = 0x100
# 0x200 was ___GFP_ATOMIC until 6.3
___GFP_DIRECT_RECLAIM = 0x400
___GFP_KSWAPD_RECLAIM = 0x800
___GFP_WRITE = 0x1000
___GFP_NOWARN = 0x2000
___GFP_RETRY_MAYFAIL = 0x4000
___GFP_NOFAIL = 0x8000
___GFP_NORETRY = 0x10000
___GFP_MEMALLOC = 0x20000
___GFP_COMP = 0x40000
___GFP_NOMEMALLOC = 0x80000
___GFP_HARDWALL = 0x100000
___GFP_THISNODE = 0x200000
___GFP_ACCOUNT = 0x400000
___GFP_ZEROTAGS = 0x800000

__GFP_DMA = ___GFP_DMA
__GFP_HIGHMEM = ___GFP_HIGHMEM
__GFP_DMA32 = ___GFP_DMA32
__GFP_MOVABLE = ___GFP_MOVABLE
__GFP_HIGH = ___GFP_HIGH
__GFP_IO = ___GFP_IO
__GFP_FS = ___GFP_FS
__GFP_ZERO = ___GFP_ZERO
__GFP_DIRECT_RECLAIM = ___GFP_DIRECT_RECLAIM
__GFP_KSWAPD_RECLAIM = ___GFP_KSWAPD_RECLAIM
__GFP_RECLAIM = ___GFP_DIRECT_RECLAIM | ___GFP_KSWAPD_RECLAIM
__GFP_NOWARN = ___GFP_NOWARN
__GFP_NOFAIL = ___GFP_NOFAIL
__GFP_NORETRY = ___GFP_NORETRY
__GFP_COMP = ___GFP_COMP
__GFP_ACCOUNT = ___GFP_ACCOUNT

GFP_ATOMIC = __GFP_HIGH | __GFP_KSWAPD_RECLAIM
GFP_KERNEL = __GFP_RECLAIM | __GFP_IO | __GFP_FS
GFP_KERNEL_ACCOUNT = GFP_KERNEL | __GFP_ACCOUNT
GFP_NOWAIT = __GFP_KSWAPD_RECLAIM | __GFP_NOWARN
GFP_NOIO = __GFP_RECLAIM
GFP_NOFS = __GFP_RECLAIM | __GFP_IO
GFP_DMA = __GFP_DMA
GFP_DMA32 = __GFP_DMA32

_NAMES = [
    ("GFP_KERNEL_ACCOUNT", GFP_KERNEL_ACCOUNT),
    ("GFP_KERNEL", GFP_KERNEL),
    ("GFP_ATOMIC", GFP_ATOMIC),
    ("GFP_NOWAIT", GFP_NOWAIT),
    ("GFP_NOFS", GFP_NOFS),
    ("GFP_NOIO", GFP_NOIO),
]
_BITS = [
    (name[1:], value)
    for name, value in sorted(globals().items())
    if name.startswith("___GFP_") and isinstance(value, int)
]


def gfpflags_allow_blocking(gfp):
    """The only test for "may this allocation sleep": direct reclaim allowed."""
    return bool(gfp & __GFP_DIRECT_RECLAIM)


_BITS.sort(key=lambda nv: nv[1])
_GFP_NAMES = {}  # gfp -> its name (a run names the same few masks at every allocation)


def gfp_name(gfp):
    """``%pGg``-style: ``GFP_KERNEL|__GFP_DMA32`` (composite names first)."""
    name = _GFP_NAMES.get(gfp)
    if name is None:
        name = _GFP_NAMES[gfp] = _gfp_name(gfp)
    return name


def _gfp_name(gfp):
    parts, rest = [], gfp
    for name, value in _NAMES:
        if rest & value == value and value:
            parts.append(name)
            rest &= ~value
    for name, value in _BITS:
        if rest & value:
            parts.append(name)
            rest &= ~value
    if rest:
        parts.append(hex(rest))
    return "|".join(parts) or "0"


__all__ = [n for n in list(globals()) if n.startswith(("__GFP_", "___GFP_", "GFP_"))] + [
    "gfpflags_allow_blocking",
    "gfp_name",
]
