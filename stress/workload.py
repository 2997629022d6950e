"""Driver workloads: programs of IOMMU operations per CPU, drawn per schedule.

A hunt with ``--driver`` runs, for every schedule, a fresh machine booted
with that driver (:mod:`model.workloads`) and one program per CPU: a short
list of operations (map, unmap, attach, claim/release DMA ownership, domain
alloc/free, suspend, resume, DMA, fault, iova_to_phys, system sleep).  Programs are drawn
from the seed and the schedule number with swarm testing (Groce et al.):
each schedule enables a random subset of the operation kinds, which finds
more distinct bugs than always-everything.  The programs are part of the
report's target, so a replay runs exactly the same operations.
"""

from __future__ import annotations

from functools import partial

from model.workloads import DMA_CONTEXTS, iova_index, masters_behind

from .bootimage import BootRecipe
from .choosers import make_rng
from .errors import UsageError
from .loader import import_object

__all__ = [
    "OP_KINDS",
    "SYSTEM_KINDS",
    "CALLER_KINDS",
    "CALLER_STORIES",
    "driver_label",
    "DEFAULT_WORKLOAD",
    "workload_config",
    "draw_programs",
    "driver_scenario",
    "DriverWorkload",
    "mutate_programs",
    "complete_programs",
]

#: operation kinds, with the argument names each takes
OP_KINDS = {
    "map": ("dom", "iova", "pages", "gfp"),
    "unmap": ("dom", "iova", "pages"),
    "attach": ("dev", "dom"),
    "attach_identity": ("dev",),
    "attach_blocked": ("dev",),
    "attach_dma": ("dev",),
    "detach": ("dev",),
    "claim": ("dev",),
    "release": ("dev",),
    "unbind": ("dev",),
    "bind": ("dev",),
    "dom_alloc": ("dom",),
    "dom_free": ("dom",),
    "suspend": ("dev",),
    "resume": ("dev",),
    "dma": ("dev", "iova", "write"),
    "fault": ("dev",),
    "iova_to_phys": ("dom", "iova"),
    "system_sleep": (),
    "fault_handler": ("dom",),
    "unmap_batch": ("dom", "iova", "count"),
    "dma_map": ("dev", "ctx", "write"),
}

#: kinds that act on the whole machine (a system sleep freezes every other
#: CPU): at most one per schedule, drawn from a stream of their own so that
#: the programs of the other kinds are those earlier versions drew
SYSTEM_KINDS = ("system_sleep",)

#: how often a schedule whose swarm pool holds a system kind gets one
SYSTEM_KIND_RATE = 0.25

#: the callers real drivers meet beyond the core's own paths: a domain's
#: fault handler that re-enters the IOMMU API, VFIO's batched unmaps, the
#: DMA API from every context a driver may call it in; drawn from a stream
#: of their own (like SYSTEM_KINDS), so the programs of the other kinds are
#: those earlier versions drew
CALLER_KINDS = ("fault_handler", "unmap_batch", "dma_map")

#: how often a schedule gets callers (swarm: the others have none)
CALLER_RATE = 0.5

#: how often a drawn schedule boots two masters behind each IOMMU (in one
#: group per IOMMU, as Rockchip's ``device_group``), unless the workload sets
#: ``masters`` itself
MASTERS_RATE = 0.2

#: how often a drawn schedule boots with ``iommu.strict=0`` (the DMA API's
#: flush queue, for drivers with ``flush_iotlb_all``), unless the workload
#: sets ``dma_strict`` itself
LAZY_RATE = 0.3

#: a caller's story replaces one CPU's program: a network driver's buffers,
#: a VFIO user unmapping a batch, a domain user whose fault handler re-enters
CALLER_STORIES = {
    "nic": ["dma_map", "dma_map", "dma_map"],
    "vfio-batch": ["attach", "map", "dma", "unmap_batch", "dma"],
    "fault-user": ["attach", "fault_handler", "map", "dma", "fault"],
}

GFPS = ("GFP_KERNEL", "GFP_KERNEL_ACCOUNT", "GFP_ATOMIC")

#: lengths of an unmap batch (``unmap_batch``'s ``count``), simplest first
BATCH_COUNTS = (2, 3, 4)

DEFAULT_WORKLOAD = {
    "cpus": 3,
    "ops": 4,
    "iommus": 2,
    "domains": 3,
    "iovas": 4,
}


def workload_config(cpus=None, ops=None, **extra):
    cfg = dict(DEFAULT_WORKLOAD)
    if cpus is not None:
        cfg["cpus"] = cpus
    if ops is not None:
        cfg["ops"] = ops
    cfg.update({k: v for k, v in extra.items() if v is not None})
    return cfg


def _draw_op(rng, kind, arena):
    args = {}
    for name in OP_KINDS[kind]:
        if name in ("dom", "dev", "iova"):
            args[name] = rng.randrange(arena[name])
        elif name == "pages":
            args[name] = rng.choice((1, 1, 2, 4))
        elif name == "gfp":
            args[name] = rng.choice(GFPS)
        elif name == "write":
            args[name] = rng.random() < 0.5
        elif name == "ctx":
            args[name] = rng.choice(DMA_CONTEXTS)
        elif name == "count":
            args[name] = rng.choice(BATCH_COUNTS)
    return [kind, args]


#: what real users do, one CPU each: a VFIO user (its device unbound from its
#: kernel driver first, as vfio-pci's users do), a DMA-API user, runtime PM,
#: a video decoder that goes idle between buffers, a domain switcher, a
#: domain owner (arguments filled from the arena)
STORIES = {
    "vfio": ["unbind", "claim", "attach", "map", "dma", "unmap", "dma", "release", "bind"],
    "dma-user": ["attach", "map", "dma", "unmap", "dma"],
    "power": ["suspend", "resume", "dma"],
    "idle-decoder": ["attach", "map", "dma", "suspend", "unmap", "resume", "dma"],
    "switch": ["attach", "dma", "detach", "unbind", "attach_identity", "bind", "attach", "dma"],
    "domains": ["dom_alloc", "map", "unmap", "dom_free"],
}


def draw_programs(cfg, seed, index, kinds=None):
    """One program per CPU for schedule ``index``.

    Swarm testing on three axes: each schedule enables a random subset of
    the operation kinds; it picks a random arena (one device or all, one
    domain or all, one IOVA, two or all), so that operations on one target
    are common while wide arenas still mix everything; and half the
    schedules give each CPU a *story* (:data:`STORIES`: what a VFIO user, a
    DMA-API user or runtime PM does, in order) instead of independent draws,
    so that a sequence such as attach, map, DMA, unmap, DMA meets another
    CPU's suspend and resume.  A machine-wide kind (:data:`SYSTEM_KINDS`:
    a system sleep) comes at most once per schedule, in
    :data:`SYSTEM_KIND_RATE` of them, at a random place of one program,
    drawn from a stream of its own: without it the programs are exactly
    those of the other kinds.
    """
    rng = make_rng(f"programs:{seed}", index)
    every = list(kinds or OP_KINDS)
    pool = [k for k in every if k not in SYSTEM_KINDS and k not in CALLER_KINDS]
    system = [k for k in every if k in SYSTEM_KINDS]
    callers = [k for k in every if k in CALLER_KINDS]
    if not pool and not callers:  # only machine-wide kinds: one of them per CPU
        return [[[rng.choice(system), {}] for _ in range(cfg["ops"])] for _ in range(cfg["cpus"])]
    if pool:
        programs = _draw_task_programs(cfg, rng, pool)
    else:  # only callers: each CPU draws from them alone
        arena = _arena(cfg, rng)
        programs = [[_draw_op(rng, rng.choice(callers), arena) for _ in range(cfg["ops"])] for _ in range(cfg["cpus"])]
    if callers and pool:
        _add_callers(cfg, make_rng(f"callers:{seed}", index), programs, callers, every)
    if system:
        # System sleep and the like, at most one per schedule, from their own stream.
        srng = make_rng(f"system-ops:{seed}", index)
        if srng.random() < SYSTEM_KIND_RATE:
            prog = programs[srng.randrange(len(programs))]
            prog.insert(srng.randrange(len(prog) + 1), [srng.choice(system), {}])
    return programs


def _devices(cfg):
    """How many master devices a program may name: ``masters`` behind each IOMMU."""
    return cfg["iommus"] * cfg.get("masters", 1)


def _arena(cfg, rng):
    return {
        "dev": rng.choice((1, _devices(cfg))),
        "dom": rng.choice((1, cfg["domains"])),
        "iova": rng.choice((1, min(2, cfg["iovas"]), cfg["iovas"])),
    }


def _add_callers(cfg, rng, programs, callers, every):
    """In :data:`CALLER_RATE` of the schedules: a caller story in place of
    one CPU's program (all its operations on one device, domain and IOVA),
    or one or two caller operations at random places."""
    if rng.random() >= CALLER_RATE:
        return
    stories = [n for n, ks in sorted(CALLER_STORIES.items()) if all(k in every for k in ks)]
    if stories and rng.random() < 0.5:
        one = {"dev": 1, "dom": 1, "iova": 1}
        target = {k: rng.randrange(n) for k, n in (("dev", _devices(cfg)), ("dom", cfg["domains"]), ("iova", cfg["iovas"]))}
        story = []
        for kind in CALLER_STORIES[rng.choice(stories)]:
            kind_op = _draw_op(rng, kind, one)
            kind_op[1].update({k: v for k, v in target.items() if k in kind_op[1]})
            story.append(kind_op)
        programs[rng.randrange(len(programs))] = story
        return
    arena = _arena(cfg, rng)
    for _ in range(rng.choice((1, 2))):
        prog = programs[rng.randrange(len(programs))]
        prog.insert(rng.randrange(len(prog) + 1), _draw_op(rng, rng.choice(callers), arena))


def _draw_task_programs(cfg, rng, pool):
    enabled = [k for k in pool if rng.random() < 0.6] or [rng.choice(pool)]
    arena = _arena(cfg, rng)
    stories = [name for name, ops in sorted(STORIES.items()) if all(k in pool for k in ops)]
    if stories and rng.random() < 0.5:
        return [[_draw_op(rng, k, arena) for k in STORIES[rng.choice(stories)]] for _ in range(cfg["cpus"])]
    return [[_draw_op(rng, rng.choice(enabled), arena) for _ in range(cfg["ops"])] for _ in range(cfg["cpus"])]


def _resolve_driver(name):
    from model.drivers import get_driver, validate_driver

    if isinstance(name, str) and ":" in name:  # a plugin: pkg.module:Class or path/file.py:Class
        cls = import_object(name, "driver")
        reason = validate_driver(cls)
        if reason:
            raise UsageError(f"driver {name!r}: {reason}")
        return cls
    try:
        return get_driver(name)
    except LookupError as e:
        raise UsageError(str(e)) from None


def driver_label(name):
    """What reports call a driver: a plugin's ``name`` attribute (``my-iommu``
    for ``mymodule:MyIommu``), a built-in's own name."""
    if not (isinstance(name, str) and ":" in name):
        return name
    cls = _resolve_driver(name)
    label = getattr(cls, "name", None)
    return label if isinstance(label, str) and label else name.rsplit(":", 1)[-1]


def driver_scenario(name, config):
    """The scenario a report's ``{"driver", "workload"}`` target names.

    With explicit ``programs`` in ``config`` it is one fixed scenario; without,
    a :class:`DriverWorkload` that draws programs per schedule.
    """
    driver = _resolve_driver(name)
    if config.get("programs") is not None:
        return _fixed_scenario(name, driver, config)
    return DriverWorkload(name, driver, config)


def _fixed_scenario(name, driver, config):
    from model.workloads import build_scenario

    def scenario(kernel):
        return build_scenario(kernel, driver, config)

    def shrink(decisions, kind, opts):
        """Drop CPUs and operations the bug does not need, then preemptions."""
        from .shrink import shrink_decisions
        from .shrink_programs import shrink_programs

        def make(cfg):
            return _fixed_scenario(name, driver, cfg)

        cfg, decisions = shrink_programs(make, config, decisions, kind, opts)
        smaller = make(cfg)
        return smaller, shrink_decisions(smaller, decisions, kind, opts)

    scenario.__qualname__ = f"workload[{name}]"
    scenario.target = {"driver": name, "workload": config}  # what a report names
    scenario.shrink = shrink
    scenario.boot_recipe = partial(_boot_recipe, driver, config)
    return scenario


def _boot_recipe(driver, config):
    """How a workload boots (:mod:`stress.bootimage`): its System, then its programs."""
    from model.workloads import System, check_programs, program_bodies

    cfg = check_programs(config)
    return BootRecipe(
        key=(driver, tuple(sorted(vars(cfg).items()))),
        boot=partial(System.boot, driver_cls=driver, config=cfg),
        bodies=partial(program_bodies, programs=config.get("programs") or []),
    )


class DriverWorkload:
    """A scenario family: ``for_schedule(seed, index)`` gives the concrete one."""

    def __init__(self, name, driver, config):
        self.name = name
        self.driver = driver
        self.config = dict(config)

    def for_schedule(self, seed, index):
        cfg = dict(self.config)
        if "masters" not in self.config and make_rng(f"masters:{seed}", index).random() < MASTERS_RATE:
            cfg.update(masters=2, group="shared")  # two masters behind each IOMMU, one group per IOMMU
        cfg["programs"] = draw_programs(cfg, seed, index, self.config.get("kinds"))
        if "dma_strict" not in self.config and make_rng(f"lazy:{seed}", index).random() < LAZY_RATE:
            cfg["dma_strict"] = False  # iommu.strict=0: DMA domains get a flush queue
        scenario = _fixed_scenario(self.name, self.driver, cfg)
        return scenario, scenario.target

    def concrete(self, target):
        """The scenario of a concrete ``target`` this family made (or a mutation of one)."""
        return _fixed_scenario(self.name, self.driver, target["workload"])

    def mutate(self, target, rng, donor=None):
        """A target whose programs differ from ``target``'s by one step (the
        guided strategy, :mod:`stress.search.guided`); boot options unchanged."""
        cfg = dict(target["workload"])
        cfg["programs"] = mutate_programs(cfg, cfg["programs"], rng, donor["workload"]["programs"] if donor else None)
        return {"driver": target["driver"], "workload": cfg}

    def complete(self, target, hint, rng):
        """A target whose programs carry ``hint``'s near miss one step on (the
        guided strategy): :func:`complete_programs`; boot options unchanged."""
        cfg = dict(target["workload"])
        cfg["programs"] = complete_programs(cfg, cfg["programs"], hint, rng)
        return {"driver": target["driver"], "workload": cfg}

    def __call__(self, kernel):
        scenario, _ = self.for_schedule(0, 0)
        return scenario(kernel)


#: the longest program a mutation makes
MAX_PROGRAM = 10


def mutate_programs(cfg, programs, rng, donor=None):
    """One step away from ``programs``: an operation dropped, one added (drawn
    as :func:`draw_programs` draws it, on the workload's whole arena), or
    one CPU's program spliced with a ``donor`` program (its head, the
    donor's tail).  Device numbers the donor has beyond this machine's wrap."""
    programs = [[list(op) for op in prog] for prog in programs]
    i = rng.randrange(len(programs))
    prog = programs[i]
    how = rng.choice(("drop", "add", "splice") if donor else ("drop", "add"))
    if how == "drop" and len(prog) > 1:
        prog.pop(rng.randrange(len(prog)))
    elif how == "splice":
        other = donor[rng.randrange(len(donor))]
        cut = rng.randrange(len(prog) + 1)
        tail = [[kind, _wrap(cfg, dict(args))] for kind, args in other[rng.randrange(len(other) + 1):]]
        programs[i] = (prog[:cut] + tail)[:MAX_PROGRAM] or prog
    elif len(prog) < MAX_PROGRAM:
        whole = {"dev": _devices(cfg), "dom": cfg["domains"], "iova": cfg["iovas"]}
        kinds = [k for k in (cfg.get("kinds") or OP_KINDS) if k not in SYSTEM_KINDS]
        prog.insert(rng.randrange(len(prog) + 1), _draw_op(rng, rng.choice(kinds), whole))
    return programs


#: what gives translation back after the operation that took it away (a
#: system sleep gives it back by itself)
REENABLE = {"suspend": "resume", "attach_identity": "attach", "attach_blocked": "attach", "detach": "attach", "unbind": "bind"}


def complete_programs(cfg, programs, hint, rng):
    """``programs`` with the steps that turn a near miss into a finding on a
    driver that has the bug, right after the operation that reached it on
    its CPU (``hint``, from :class:`stress.search.coverage.Coverage`):

    * a line was filled: unmap its IOVA (from the domain the programs last
      map it in), before that translation off (a runtime suspend) and
      after it back on (a resume), or neither, and one DMA to it;
    * a line outlived translation: unmap its IOVA, translation back on
      (:data:`REENABLE`: the inverse of that operation, or resume or
      attach), one DMA to it;
    * a line outlived an unmap: translation back on if the MMU was off,
      one DMA to it;
    * an unmap missed a translating MMU: one DMA to the IOVA;
    * a map missed a translating MMU: one DMA to the IOVA (a line filled
      through the tables that MMU is not flushed for), its unmap, one
      more DMA.

    The DMA comes from a master behind the MMU (the one the operation named,
    if it is).  A hint this machine cannot express (an IOVA outside the
    programs' arena: the DMA API's) leaves the programs as they are."""
    kind, state, cpu, pos, mmu, iova = hint
    idx, devs = iova_index(iova), masters_behind(cfg, mmu)
    if idx is None or not 0 <= idx < cfg["iovas"] or not devs:
        return programs
    programs = [[list(op) for op in prog] for prog in programs]
    if not 0 <= cpu < len(programs):
        cpu = rng.randrange(len(programs))
    prog = programs[cpu]
    pos = min(pos, len(prog) - 1)
    at = prog[pos] if pos >= 0 else ["", {}]
    dev = at[1]["dev"] if at[1].get("dev") in devs else devs[rng.randrange(len(devs))]
    maps = [op[1]["dom"] for p in programs for op in p if op[0] == "map" and op[1].get("iova") == idx]
    dom = maps[-1] if maps else rng.randrange(cfg["domains"])
    steps = []
    if kind == "tlb-line-filled":
        off = rng.choice((None, "suspend"))
        if off is not None:
            steps.append([off, {"dev": dev}])
        steps.append(["unmap", {"dom": dom, "iova": idx, "pages": 1}])
        back = REENABLE.get(off)
    elif kind == "tlb-line-outlives-translation":
        steps.append(["unmap", {"dom": dom, "iova": idx, "pages": 1}])
        back = REENABLE.get(at[0]) or (None if at[0] == "system_sleep" else rng.choice(("resume", "attach")))
    elif kind == "map-missed-a-translating-iommu":
        if at[0] == "map" and at[1].get("iova") == idx:
            dom = at[1]["dom"]
        steps.append(["dma", {"dev": dev, "iova": idx, "write": False}])
        steps.append(["unmap", {"dom": dom, "iova": idx, "pages": 1}])
        back = None
    else:
        back = rng.choice(("resume", "attach")) if state == "off" else None
    if back == "attach":
        steps.append(["attach", {"dev": dev, "dom": dom}])
    elif back is not None:
        steps.append([back, {"dev": dev}])
    steps.append(["dma", {"dev": dev, "iova": idx, "write": rng.random() < 0.5}])
    prog[pos + 1 : pos + 1] = steps
    return programs


def _wrap(cfg, args):
    if "dev" in args:
        args["dev"] %= _devices(cfg)
    return args
