"""Hypothesis strategies for workload operations and per-CPU programs.

Values have the shapes :func:`stress.workload.draw_programs` makes: an
operation is ``[kind, args]`` with ``args`` a dict over the names the kind
takes (``OP_KINDS[kind]``, in that order), and a program set is a list of
operation lists, one per CPU.  Every strategy takes the ``config`` dict of
a workload (:data:`stress.workload.DEFAULT_WORKLOAD`: ``cpus``, ``ops``,
``iommus``, ``domains``, ``iovas``) and shrinks toward the simplest value:

* ``dom``, ``dev``, ``iova``: the index 0;
* ``pages``: 1 (of 1, 2, 4);
* ``gfp``: ``GFP_KERNEL`` (the order of :data:`stress.workload.GFPS`);
* ``write``: ``False``;
* ``ctx`` (a DMA-API caller's context): ``task`` (of ``DMA_CONTEXTS``);
* ``count`` (an unmap batch's length): 2 (of :data:`stress.workload.BATCH_COUNTS`);
* the kind: :data:`KIND_ORDER`, simplest first (a map before an attach,
  power and interrupt operations last);
* programs: fewer CPUs (down to ``config["min_cpus"]``, 2 by default), fewer
  operations per CPU (down to ``config["min_ops"]``, 1 by default), smaller
  sizes.

An IOVA is a slot index (``0 .. iovas-1``), as in ``draw_programs``; the
workload places slots so that any size fits.  With ``natural=True`` a
range is also naturally aligned (slot divisible by its page count), for
tests of large-page paths.

A workload whose operations are not the IOMMU ones (the toy factories of
the tests) passes its own ``table`` (kind -> argument names, simplest kind
first); the argument names are those of :data:`ARG_NAMES`.
"""

from __future__ import annotations

from hypothesis import strategies as st

from model.workloads import DMA_CONTEXTS
from stress.workload import BATCH_COUNTS, CALLER_STORIES, GFPS, OP_KINDS, STORIES

__all__ = [
    "KIND_ORDER",
    "ARG_NAMES",
    "PAGE_COUNTS",
    "kind_order",
    "page_counts",
    "iova_slots",
    "iova_ranges",
    "gfps",
    "op_args",
    "ops",
    "cpu_programs",
    "programs",
    "swarm_kinds",
    "default_stories",
    "stories",
    "workloads",
    "program_size",
]

#: ``OP_KINDS`` from the simplest operation to the most involved: what a
#: shrunk program prefers.  Pure page-table work first, then DMA and
#: translation queries, then attach paths, domain lifetime, ownership, and
#: power and interrupts last; a system sleep (the whole machine) after all.
KIND_ORDER = (
    "map",
    "unmap",
    "unmap_batch",
    "iova_to_phys",
    "dma",
    "dma_map",
    "attach",
    "attach_identity",
    "attach_blocked",
    "attach_dma",
    "detach",
    "dom_alloc",
    "dom_free",
    "claim",
    "release",
    "unbind",
    "bind",
    "suspend",
    "resume",
    "fault",
    "fault_handler",
    "system_sleep",
)

#: sizes of a mapping in pages; the first is the simplest
PAGE_COUNTS = (1, 2, 4)

#: argument names a table may use
ARG_NAMES = ("dom", "dev", "iova", "pages", "gfp", "write", "ctx", "count")


def kind_order(kinds=None, table=None):
    """The kinds to draw from, simplest first.

    ``kinds`` restricts them (any order, unknown names are an error);
    ``table`` is the kind -> argument names mapping (``OP_KINDS`` by
    default).  For ``OP_KINDS`` the order is :data:`KIND_ORDER` (a kind added
    to ``OP_KINDS`` later comes last); for another table, its own order.
    """
    table = OP_KINDS if table is None else table
    if table is OP_KINDS:
        order = [k for k in KIND_ORDER if k in table] + [k for k in table if k not in KIND_ORDER]
    else:
        order = list(table)
    if kinds is None:
        return order
    kinds = list(kinds)
    unknown = [k for k in kinds if k not in table]
    if unknown:
        raise ValueError(f"unknown operation kind(s) {unknown} (known: {', '.join(order)})")
    if not kinds:
        raise ValueError("kinds must name at least one operation kind")
    return [k for k in order if k in kinds]


def page_counts():
    """Size of a mapping in pages: 1, 2 or 4, shrinking toward 1."""
    return st.sampled_from(PAGE_COUNTS)


def iova_slots(config, pages=1):
    """An IOVA slot ``0 .. iovas-1`` divisible by ``pages``, shrinking toward 0."""
    n = config["iovas"]
    if pages not in PAGE_COUNTS:
        raise ValueError(f"pages must be one of {PAGE_COUNTS}, not {pages!r}")
    count = max(1, (n + pages - 1) // pages)
    return st.integers(0, count - 1).map(lambda i: i * pages)


def iova_ranges(config, natural=False):
    """``(iova, pages)``: a slot and a size; ``natural`` aligns the slot to the size."""
    n = _count(config, "iovas")

    def build(pair):
        pages, slot = pair
        return (slot - slot % pages if natural else slot, pages)

    return st.tuples(page_counts(), st.integers(0, n - 1)).map(build)


def gfps():
    """The caller's gfp of a map: a name from ``GFPS``, shrinking toward ``GFP_KERNEL``."""
    return st.sampled_from(GFPS)


def _arg_values(config, natural, used=ARG_NAMES):
    """Every argument a kind may take, as one integer read in mixed radix.

    One choice per operation, whatever its kind: when the shrinker moves an
    operation to a simpler kind, nothing after it shifts (a map takes four
    values, an attach two), and Hypothesis deletes list elements of two
    choices far more reliably than elements of seven.  The integer shrinks
    toward 0, which is every argument at its simplest value; the digits
    are, most significant first, dom, dev, iova, pages, gfp, write, ctx
    (the DMA-API caller's context, task first), count (a batch's length),
    each only if some kind of the table takes it (``used``): a table of
    toy operations draws the same integers whatever names the IOMMU kinds
    add.
    """
    radix = (
        ("dom", _count(config, "domains")),
        ("dev", _count(config, "iommus") * config.get("masters", 1)),
        ("iova", _count(config, "iovas")),
        ("pages", len(PAGE_COUNTS)),
        ("gfp", len(GFPS)),
        ("write", 2),
        ("ctx", len(DMA_CONTEXTS)),
        ("count", len(BATCH_COUNTS)),
    )
    radix = tuple((name, n) for name, n in radix if name in used)
    total = 1
    for _, n in radix:
        total *= n

    def decode(code):
        digits = dict.fromkeys(ARG_NAMES, 0)
        for name, n in reversed(radix):
            code, digits[name] = divmod(code, n)
        pages = PAGE_COUNTS[digits["pages"]]
        iova = digits["iova"]
        if natural:
            iova -= iova % pages
        return {
            "dom": digits["dom"],
            "dev": digits["dev"],
            "iova": iova,
            "pages": pages,
            "gfp": GFPS[digits["gfp"]],
            "write": bool(digits["write"]),
            "ctx": DMA_CONTEXTS[digits["ctx"]],
            "count": BATCH_COUNTS[digits["count"]],
        }

    return st.integers(0, total - 1).map(decode)


def _used(table):
    """The argument names some kind of ``table`` takes."""
    return {n for names in table.values() for n in names}


def _count(config, what):
    n = config[what]
    if n < 1:
        raise ValueError(f"config[{what!r}] must be at least 1, not {n!r}")
    return n


def _check_names(kind, names):
    unknown = [n for n in names if n not in ARG_NAMES]
    if unknown:
        raise ValueError(f"operation {kind!r}: no strategy for argument(s) {unknown} (known: {', '.join(ARG_NAMES)})")


def op_args(kind, config, table=None, natural=False):
    """The argument dict of one ``kind`` operation, keys in the table's order."""
    table = OP_KINDS if table is None else table
    names = tuple(table[kind])
    _check_names(kind, names)
    return _arg_values(config, natural, _used(table)).map(lambda values: {n: values[n] for n in names})


def ops(config, kinds=None, table=None, natural=False):
    """One operation ``[kind, args]``; the kind shrinks toward the simplest allowed."""
    table = OP_KINDS if table is None else table
    order = kind_order(kinds, table)
    names = {}
    for kind in order:
        _check_names(kind, table[kind])
        names[kind] = tuple(table[kind])

    def build(pair):
        kind, values = pair
        return [kind, {n: values[n] for n in names[kind]}]

    return st.tuples(st.sampled_from(order), _arg_values(config, natural, _used(table))).map(build)


def cpu_programs(config, kinds=None, table=None, natural=False):
    """One CPU's program: ``min_ops .. ops`` operations, shrinking toward fewer."""
    lo, hi = _op_bounds(config)
    return st.lists(ops(config, kinds, table, natural), min_size=lo, max_size=hi)


def programs(config, kinds=None, table=None, natural=False):
    """A program per CPU: ``min_cpus .. cpus`` of them, shrinking toward fewer.

    ``kinds`` restricts the operation kinds (default: ``config["kinds"]``
    when set, else every kind of the table).
    """
    if kinds is None:
        kinds = config.get("kinds")
    lo, hi = _cpu_bounds(config)
    return st.lists(cpu_programs(config, kinds, table, natural), min_size=lo, max_size=hi)


def default_stories(kinds=None, table=None):
    """The stories (:data:`stress.workload.STORIES` and ``CALLER_STORIES``)
    whose kinds are all allowed.

    A story is what one user does, in order (a VFIO user, a DMA-API user,
    runtime PM, a network driver, a fault handler's user...); only the IOMMU
    table has them.
    """
    if table is not None and table is not OP_KINDS:
        return {}
    allowed = set(kind_order(kinds, table))
    every = {**STORIES, **CALLER_STORIES}
    return {name: list(ks) for name, ks in sorted(every.items()) if set(ks) <= allowed}


def stories(config, story_table, table=None, natural=False):
    """A story as a list of operations, every one on the same targets.

    ``story_table`` maps a name to its kinds in order; one argument draw
    serves the whole story (one device, domain and IOVA: the arena of
    ``draw_programs`` at its narrowest), so that attach, map, DMA, unmap
    and DMA of a story meet.  Shrinks toward the first story (by name)
    and the simplest arguments.
    """
    table = OP_KINDS if table is None else table
    names = sorted(story_table)
    if not names:
        raise ValueError("no story fits the allowed kinds")
    for name in names:
        for kind in story_table[name]:
            _check_names(kind, table[kind])

    def build(pair):
        name, values = pair
        return [[kind, {n: values[n] for n in table[kind]}] for kind in story_table[name]]

    return st.tuples(st.sampled_from(names), _arg_values(config, natural, _used(table))).map(build)


def swarm_kinds(kinds=None, table=None):
    """A swarm: a non-empty subset of the kinds, shrinking toward the simplest one alone."""
    order = kind_order(kinds, table)
    return st.lists(st.sampled_from(order), min_size=1, max_size=len(order), unique=True).map(
        lambda got: [k for k in order if k in got]
    )


@st.composite
def workloads(draw, config, kinds=None, table=None, swarm=False, natural=False):
    """A workload config with drawn ``programs`` (and ``cpus`` set to their count).

    With ``swarm`` the kinds of this workload are a drawn subset first
    (swarm testing); the result is what ``driver_scenario(name, cfg)`` and
    :func:`stress.shrink_programs.shrink_programs` take.
    """
    if kinds is None:
        kinds = config.get("kinds")
    if swarm:
        kinds = draw(swarm_kinds(kinds, table))
    progs = draw(programs(config, kinds, table, natural))
    return dict(config, programs=progs, cpus=len(progs))


def program_size(progs):
    """``(cpus, operations)`` of a program set: what shrinking makes smaller."""
    return len(progs), sum(len(p) for p in progs)


def _cpu_bounds(config):
    hi = config["cpus"]
    lo = config.get("min_cpus", min(2, hi))
    if not 0 <= lo <= hi:
        raise ValueError(f"need 0 <= min_cpus <= cpus, got min_cpus={lo!r} cpus={hi!r}")
    return lo, hi


def _op_bounds(config):
    hi = config["ops"]
    lo = config.get("min_ops", min(1, hi))
    if not 0 <= lo <= hi:
        raise ValueError(f"need 0 <= min_ops <= ops, got min_ops={lo!r} ops={hi!r}")
    return lo, hi
