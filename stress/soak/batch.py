"""One batch of a soak: a range of schedule indices, run in a worker.

A soak cuts the schedule indices into batches ``[k*B, (k+1)*B)`` (``B`` =
:attr:`BatchSpec.batch`, clipped at :attr:`BatchSpec.schedules`) and runs
each with :func:`run_batch`, a module-level function a worker process (or a
Dask worker) can unpickle and call.  It guarantees:

* a batch is a function of ``(spec, k, start)`` alone: the same spec gives
  the same schedules, the same violations and the same counts, whichever
  worker runs it, in whatever order, however often (so a batch lost with
  its worker is simply run again, and a resumed soak counts what an
  uninterrupted one would);
* under ``pct`` and ``random`` schedule ``i`` runs the concrete scenario
  :func:`stress.scenarios.concretize` gives for ``(seed, i)`` under the
  chooser :func:`stress.engine.explore` builds for index ``i``; the one
  difference from ``explore`` is PCT's ``k`` (its estimate of the points of
  a run), which grows from 64 within the batch instead of over the whole
  search, and so does the estimate of a schedule's failure points with
  ``inject_failures`` (from :data:`stress.choosers.FAIL_POINTS`);
* lockdep keeps one graph per batch (with the ``cross-schedule`` checker):
  an order seen in one schedule of the batch and its inverse in a later one
  are a ``lock-inversion`` whose report names the earlier schedules
  (``prior``), exactly as in ``explore``;
* every violation is counted under its :func:`~stress.soak.signature.signature`;
  the first occurrence of a signature not in ``known`` is replay-checked,
  shrunk and turned into a report here, in the worker (the parent only
  writes); later occurrences, and signatures in ``known``, are counted only.

With ``start`` (a resumed soak whose schedule limit grew past a batch it had
clipped) the schedules of the batch below ``start`` run again - lockdep's
graph must see them - but are not counted and report nothing.

Under ``guided`` (:mod:`stress.search.guided`) the batch's search starts
from the corpus the soak hands it and sends back the entries it added; the
batch is then a function of ``(spec, k, start)`` and that corpus (the soak
logs its size with the batch).

Interleaving coverage (:mod:`stress.search.coverage`: lock-order edges,
alias pairs, overlapping operations, driver functions) comes with every
result of a ``pct``, ``random`` or ``guided`` batch as ``features``, the
set of its counted schedules.  The older per-kind counters too (a
``hypothesis`` batch leaves ``ops``, ``overlaps`` and ``functions`` empty),
counted over the batch's counted schedules only, at the cost of a counter
per workload operation and per driver method call:

* ``ops`` - the operations run, by kind (``{"map": n}``): the ``op_begin``
  hook, seen by an observer the batch attaches itself, so reports and their
  options stay what ``hunt`` writes;
* ``overlaps`` - ``{"kindA|kindB": n}`` (``kindA <= kindB``, the kinds of
  :data:`stress.workload.OP_KINDS`: ``dom_alloc``, ``attach_identity``
  where ``ops`` says ``domain_alloc``, ``attach``): in how many
  schedules an operation of one kind and one of the other were in flight at
  once on two different CPUs.  An operation is in flight from its
  ``op_begin`` to its ``op_end`` (or to the next ``op_begin`` on its CPU, or
  the end of its CPU's body, for one that crashed); two overlap when one
  begins while the other is in flight.  A pair counts at most once per
  schedule (``n`` is schedules, not occurrences); ``map|map`` is two maps on
  two CPUs;
* ``functions`` - ``{"method": n}``: calls of the driver's functions (see
  :func:`driver_functions`: the coroutine methods of the driver class and
  its driver bases) made through the driver object (``self.f(...)``,
  ``ops.f(...)``, a handler bound at probe), so the ops entry points the
  core calls (``map_pages``, ``attach_dev``) and the helpers they call
  (``vsi_iommu_map``, ``vsi_iommu_attach_device``); a ``super().f()`` call
  of a subclass's override is not counted again.  Counted by a plain
  function installed on the driver class for the batch's search and removed
  after it, which counts the call and returns the coroutine the method
  makes: it has returned before the coroutine runs, so no stack a run
  takes (lock, access, splat, crash inside the driver) shows it, and the
  reports are built by a replay after it is removed anyway;
* ``lock_edges`` - the lock-order edges of the batch's lockdep graph.
"""

from __future__ import annotations

import inspect
import json
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from .. import bootimage

__all__ = ["BatchSpec", "BatchResult", "Find", "run_batch", "batch_range", "driver_functions", "STRATEGIES"]

#: the strategies a soak runs
STRATEGIES = ("pct", "random", "hypothesis", "guided")


@dataclass(frozen=True)
class BatchSpec:
    """What every batch of one soak shares (small and picklable).

    ``target`` is a report's target (``{"driver": name, "workload": cfg}`` or
    ``{"scenario": "pkg.mod:fn"}``), resolved in the worker.  ``schedules``
    (None: no limit) clips the last batch.  ``database`` (hypothesis only) is
    a picklable factory of the shared Hypothesis example database, called
    in the worker; None runs without one.
    """

    target: dict
    strategy: str = "pct"
    seed: int = 0
    checkers: tuple = ()
    max_steps: int = 20_000
    pct_depth: int = 3
    batch: int = 300
    schedules: int | None = None
    database: Callable[[], Any] | None = None
    inject_failures: bool = False


@dataclass
class Find:
    """A signature's occurrences in one batch."""

    signature: str
    kind: str
    message: str
    schedule: int  # the first occurrence
    count: int
    report: dict | None = None  # the shrunk report, for a signature new to the worker


@dataclass
class BatchResult:
    k: int
    start: int
    stop: int
    schedules: int
    points: int
    seconds: float
    finds: list = field(default_factory=list)
    ops: dict = field(default_factory=dict)
    lock_edges: list = field(default_factory=list)  # [[a, b], ...] sorted
    pid: int = 0
    host: str = ""
    overlaps: dict = field(default_factory=dict)  # {"kindA|kindB": schedules}, sorted keys
    functions: dict = field(default_factory=dict)  # {"method": calls}, sorted keys
    features: list = field(default_factory=list)  # interleaving coverage of the batch (stress.search.coverage), sorted
    corpus: list = field(default_factory=list)  # guided: the corpus entries the batch added (Entry.to_json)


def batch_range(spec, k):
    """``(start, stop)`` of batch ``k``: ``[k*B, (k+1)*B)`` clipped at ``spec.schedules``."""
    start = k * spec.batch
    stop = start + spec.batch
    if spec.schedules is not None:
        stop = min(stop, spec.schedules)
    return start, max(start, stop)


_SCENARIOS = {}


def _scenario(target):
    """The target's scenario, resolved once per worker process."""
    key = json.dumps(target, sort_keys=True)
    s = _SCENARIOS.get(key)
    if s is None:
        from stress.targets import scenario_for_target

        s = _SCENARIOS[key] = scenario_for_target(target)
    return s


#: an ``op_begin`` name's head -> its kind in ``stress.workload.OP_KINDS`` (where they differ)
_OP_KIND = {"domain_alloc": "dom_alloc", "domain_free": "dom_free"}
#: "attach(vpu0, identity)": the attach kinds by the name's last argument (else ``attach``)
_ATTACH_KIND = {"identity)": "attach_identity", "blocked)": "attach_blocked", "dma)": "attach_dma"}


class _Coverage:
    """The observer counting workload operations (``op_begin``) and their overlaps (``op_end``).

    ``ops`` counts by the head of the ``op_begin`` name (``domain_alloc``;
    every attach is ``attach``), as it always has; ``overlaps`` by the
    workload's kind (:data:`stress.workload.OP_KINDS`: ``dom_alloc``,
    ``attach_identity``).

    :meth:`new_run` starts a schedule: the operations in flight (CPU ->
    kind) and the pairs already counted in it are per schedule.
    """

    def __init__(self):
        self.ops = {}
        self.overlaps = {}  # (kindA, kindB), kindA <= kindB -> schedules
        self.active = {}
        self.seen = set()

    def new_run(self):
        self.active = {}
        self.seen = set()

    def op_begin(self, cpu, name):
        kind = name.split("(", 1)[0]  # "map(d0, 0x10000000, 1p)" -> "map"
        self.ops[kind] = self.ops.get(kind, 0) + 1
        # overlaps name the workload's kinds (stress.workload.OP_KINDS)
        if kind in _OP_KIND:
            kind = _OP_KIND[kind]
        elif kind == "attach":
            kind = _ATTACH_KIND.get(name.rsplit(", ", 1)[-1], kind)
        active = self.active
        if active:
            seen = self.seen
            for other, k in active.items():
                if other is cpu:
                    continue
                pair = (kind, k) if kind <= k else (k, kind)
                if pair not in seen:
                    seen.add(pair)
                    self.overlaps[pair] = self.overlaps.get(pair, 0) + 1
        active[cpu] = kind

    def op_end(self, cpu, name):
        self.active.pop(cpu, None)

    def overlap_counts(self):
        return dict(sorted((f"{a}|{b}", n) for (a, b), n in self.overlaps.items()))


def _observed(concrete, coverage, functions, counted):
    """``concrete`` as a batch runs it: for a ``counted`` run, ``coverage``
    attached to the kernel once it has booted (it counts workload
    operations, and boot has none), and the driver's ``functions`` counted,
    the boot's calls included.

    A scenario that says how it boots starts from a boot image as in every
    search (:mod:`stress.bootimage`): a copy makes no calls, so it is
    counted the calls a real boot of it made (:meth:`_Functions.booted`,
    remembered per process from the first clean run that booted it for real;
    until then its runs boot for real).
    """

    def attach(kernel):
        if counted:
            coverage.new_run()
            kernel.attach(coverage)

    def scenario(kernel):  # without an image (a plain scenario, images off): boot counted as it runs
        functions.active = counted
        attach(kernel)
        return concrete(kernel)

    scenario.__qualname__ = getattr(concrete, "__qualname__", "scenario")
    scenario.__module__ = getattr(concrete, "__module__", None)
    recipe_of = getattr(concrete, "boot_recipe", None)
    if recipe_of is not None:
        scenario.boot_recipe = lambda: _counted_boot(recipe_of(), functions, counted, attach)
    return scenario


def _counted_boot(recipe, functions, counted, attach):
    key = recipe.key

    def boot(kernel):  # a real boot (a copy of its image skips this)
        functions.booting()
        return recipe.boot(kernel)

    def after_boot(kernel):
        attach(kernel)
        functions.booted(key, counted)

    # while what a boot of it calls is not known, it boots for real (and is counted)
    image = recipe.image and functions.knows(key)
    return bootimage.BootRecipe(key, boot, recipe.bodies, recipe.after_boot + (after_boot,), image)


# -- the driver's functions --------------------------------------------------------


def _driver_class(target, scenario=None):
    """The driver class of a ``{"driver": ...}`` target (the scenario's own), else None."""
    if not isinstance(target, dict) or not target.get("driver"):
        return None
    if scenario is None:
        scenario = _scenario(target)
    cls = getattr(scenario, "driver", None)  # a DriverWorkload
    if isinstance(cls, type):
        return cls
    cls = (inspect.getclosurevars(scenario).nonlocals.get("driver") if inspect.isfunction(scenario) else None)
    if isinstance(cls, type):
        return cls  # a fixed-programs scenario (stress.workload._fixed_scenario)
    from stress.workload import _resolve_driver

    return _resolve_driver(target["driver"])


def _function_names(cls):
    """The names :func:`driver_functions` lists for driver class ``cls``."""
    from model.iommu.driver import IommuDriver

    names = set()
    for c in cls.__mro__:
        if c is IommuDriver or not (isinstance(c, type) and issubclass(c, IommuDriver)):
            continue
        for name, value in vars(c).items():
            if name.startswith("__") or name in names:
                continue
            fn = getattr(value, "_soak_orig", value)
            if inspect.iscoroutinefunction(fn):
                names.add(name)
    # the most derived definition decides (an override by a plain function is not one)
    return sorted(n for n in names if inspect.iscoroutinefunction(_unwrapped(getattr(cls, n, None))))


def _unwrapped(fn):
    return getattr(fn, "_soak_orig", fn)


def driver_functions(target):
    """The driver's functions ``functions`` counts, sorted (``[]`` for a ``--scenario`` target).

    The coroutine methods (``async def``: every driver op and every helper
    that can be interleaved) defined on the driver class and its bases that
    are driver classes (subclasses of :class:`model.iommu.driver.IommuDriver`,
    which itself is not one), dunder names excluded, ``_private`` helpers
    included.  Plain methods (``vsi_iommu_get_from_dev``) are not counted:
    counting one would put a frame on the stack while it runs.
    """
    cls = _driver_class(target)
    return _function_names(cls) if cls is not None else []


_COUNTS = threading.local()  # .counts: this thread's batch's {name: calls}, or None
_AT_BOOT = {}  # (driver class, functions counted, boot recipe key) -> {name: calls} a real boot of it makes
_INSTALL_LOCK = threading.Lock()
_INSTALLED = {}  # driver class -> [users, {name: the class's own attribute or _MISSING}]
_MISSING = object()


def _counter(fn, name):
    local = _COUNTS

    def counted(*args, **kwargs):
        counts = getattr(local, "counts", None)
        if counts is not None:
            counts[name] = counts.get(name, 0) + 1
        return fn(*args, **kwargs)  # the coroutine: this frame is gone before it runs

    counted.__name__ = fn.__name__
    counted.__qualname__ = fn.__qualname__
    counted.__module__ = fn.__module__
    counted.__doc__ = fn.__doc__
    counted._soak_orig = fn
    return counted


class _Functions:
    """Counts calls of the driver's functions while installed (a context manager).

    Installs a :func:`_counter` per function on the driver class (once per
    process however many threads run batches of it; removed when the last
    leaves); each thread counts into its own ``counts``, and only while
    :attr:`active` (a resumed batch's schedules below ``start`` are not counted).
    """

    def __init__(self, cls):
        self.cls = cls
        self.counts = {}
        self.boot = None  # what the real boot under way calls, or None
        self.clean_boot = None  # (recipe key, its calls) of the run's real boot, until remember()
        self.names = ()  # the functions counted (installed by __enter__)

    @property
    def active(self):
        return getattr(_COUNTS, "counts", None) is not None

    @active.setter
    def active(self, on):
        _COUNTS.counts = self.counts if on else None

    def knows(self, key):
        """Whether the calls a boot of recipe ``key`` makes are known."""
        return (self.cls, self.names, key) in _AT_BOOT

    def booting(self):
        """A real boot starts: its calls are counted apart (:meth:`booted`)."""
        self.boot = _COUNTS.counts = {}

    def booted(self, key, counted):
        """The run has booted, for real or as a copy of an image of ``key``
        (which makes no calls): for a ``counted`` run, count what the boot
        calls, then the run's own calls."""
        if self.boot is not None:
            calls, self.boot = self.boot, None
            self.clean_boot = (key, calls)  # known once the run ends clean (remember)
        else:
            calls = _AT_BOOT[self.cls, self.names, key]
        self.active = counted
        if counted:
            counts = self.counts
            for name, n in calls.items():
                counts[name] = counts.get(name, 0) + n

    def remember(self, clean):
        """The run is over: if ``clean`` (no violation: its boot ran to the
        end) what its real boot called is what every boot of its recipe
        calls (a boot makes no decision), for the copies of its image."""
        if clean and self.clean_boot is not None:
            key, calls = self.clean_boot
            _AT_BOOT.setdefault((self.cls, self.names, key), calls)
        self.clean_boot = None

    def __enter__(self):
        cls = self.cls
        if cls is None:
            return self
        with _INSTALL_LOCK:
            entry = _INSTALLED.get(cls)
            if entry is None:
                saved = {}
                for name in _function_names(cls):
                    saved[name] = vars(cls).get(name, _MISSING)
                    setattr(cls, name, _counter(_unwrapped(getattr(cls, name)), name))
                entry = _INSTALLED[cls] = [0, saved]
            entry[0] += 1
            self.names = tuple(entry[1])
        self.active = True
        return self

    def __exit__(self, *exc):
        self.active = False
        cls = self.cls
        if cls is None:
            return
        with _INSTALL_LOCK:
            entry = _INSTALLED[cls]
            entry[0] -= 1
            if entry[0] == 0:
                del _INSTALLED[cls]
                for name, old in entry[1].items():
                    if old is _MISSING:
                        delattr(cls, name)
                    else:
                        setattr(cls, name, old)

    def result(self):
        return {name: n for name, n in sorted(self.counts.items()) if n}


def run_batch(spec, k, known=frozenset(), start=None, corpus=None):
    """Run batch ``k`` of ``spec``; ``known`` signatures are counted, never shrunk.

    ``corpus`` (guided): ``(entries, features)``, the soak's corpus so far
    (:meth:`stress.search.corpus.Entry.to_json` dicts) and every feature its
    batches reached; the batch starts its search from it and returns the
    entries it added in ``corpus`` of its result.

    Returns a :class:`BatchResult`.  A broken scenario raises its
    :class:`~stress.errors.ScenarioError` (a find that does not replay:
    :class:`~stress.engine.ReplayMismatch`), never a result.
    """
    from stress.checkers import cross_schedule, default_checkers

    t0 = time.monotonic()
    lo, stop = batch_range(spec, k)
    count_from = lo if start is None else max(lo, start)
    names = list(spec.checkers) or list(default_checkers())
    opts = dict(checkers=names, max_steps=spec.max_steps)
    meta = dict(
        target=spec.target,
        strategy=spec.strategy,
        seed=spec.seed,
        options={"checkers": names, "max_steps": spec.max_steps, "pct_depth": spec.pct_depth, "bound": 2},
    )
    if spec.inject_failures:  # as explore: the run option, and the report's
        opts["inject_failures"] = True
        meta["options"]["inject_failures"] = True
    scenario = _scenario(spec.target)
    coverage = _Coverage()
    if spec.strategy == "hypothesis":
        res = _hypothesis(spec, k, scenario, lo, stop, count_from, opts, meta, known)
    elif spec.strategy in ("pct", "random", "guided"):
        import trio

        functions = _Functions(_driver_class(spec.target, scenario))
        run = _Range(scenario, spec, opts, cross_schedule(names), coverage, functions, corpus)
        with functions:  # removed before the finds are replayed and reported
            trio.run(run.run, lo, stop, count_from)
        res = run.result(k, lo, stop, count_from, meta, known)
        res.overlaps = coverage.overlap_counts()
        res.functions = functions.result()
    else:
        raise ValueError(f"unknown soak strategy {spec.strategy!r} (choose from {', '.join(STRATEGIES)})")
    res.ops = dict(sorted(coverage.ops.items())) if spec.strategy != "hypothesis" else res.ops
    res.seconds = time.monotonic() - t0
    res.pid, res.host = os.getpid(), socket.gethostname()
    return res


class _Range:
    """The schedules ``[lo, stop)`` of a PCT or random search, in index order (as ``explore``)."""

    def __init__(self, scenario, spec, opts, keep_graph, coverage, functions=None, corpus=None):
        from stress.lockdep import LockGraph
        from stress.search.corpus import Corpus, Entry
        from stress.search.guided import Guided

        self.guided = None
        if spec.strategy == "guided":
            entries, features = corpus or ((), ())
            start = Corpus([Entry.from_json(e) for e in entries], features)
            self.guided = Guided(scenario, spec.seed, spec.pct_depth, start)
        self.features = set()  # interleaving coverage of the counted schedules

        self.scenario = scenario
        self.spec = spec
        self.opts = opts
        self.coverage = coverage
        self.functions = functions if functions is not None else _Functions(None)
        # with cross-schedule one graph for the batch, else a fresh one per
        # schedule (passed explicitly only to read its edges)
        self.graph = LockGraph() if keep_graph else None
        self.keep_graph = keep_graph
        self.edges = set()
        self.teachers = {}  # index -> (scenario, target, decisions) of runs that taught lockdep
        self.schedules = self.points = 0
        self.hits = {}  # signature -> [kind, message, first index, count, outcome, concrete, opts, teachers]
        self.escalating = 0.0  # the share of recent fast runs that ran again in full (stress.engine)

    async def run(self, lo, stop, count_from):
        from stress.choosers import FAIL_POINTS
        from stress.engine import escalating_after, make_chooser, runs_fast, teachers_before
        from stress.lockdep import LockGraph
        from stress.run import run_schedule_async
        from stress.scenarios import concretize, target_of

        from .signature import signature

        k = 64
        fails = FAIL_POINTS if self.spec.inject_failures else None
        lockdep = "lockdep" in self.opts["checkers"]
        for index in range(lo, stop):
            counted = index >= count_from
            guided = self.guided
            if guided is not None:
                concrete, target, chooser = guided.next(index, k, fails)
            else:
                chooser = make_chooser(self.spec.strategy, self.spec.seed, index, pct_depth=self.spec.pct_depth, k=k, fail_points=fails)
                concrete, _ = concretize(self.scenario, self.spec.seed, index)
            graph = self.graph if self.keep_graph else (LockGraph() if lockdep else None)
            before = 0
            if graph is not None:
                graph.origin = index
                before = graph.size()
            run_on = _observed(concrete, self.coverage, self.functions, counted)
            self.functions.active = False  # until it has booted (_observed)
            opts = self.opts
            # fast runs on the batch's own graph (a fresh one per run would escalate each)
            fast = self.keep_graph and runs_fast(chooser, self.escalating)
            rerun = self._put_back() if fast and counted else None
            out = await run_schedule_async(run_on, chooser, lock_graph=graph, coverage=True, fast=fast, rerun=rerun, release=True, **opts)
            self.escalating = escalating_after(self.escalating, fast, out)
            self.functions.remember(out.violation is None)
            if guided is not None:
                guided.learn(index, target, chooser, out)
            if out.violation is not None and out.violation.get("kasan"):
                self.opts = dict(opts, kasan_reported=True)  # the batch is one boot (stress.oracles.kasan)
            if self.keep_graph and graph.size() != before:
                self.teachers[index] = (concrete, target_of(concrete), list(out.decisions))
            if graph is not None and counted and not self.keep_graph:
                self.edges.update((a, b) for a, nxt in graph.fwd.items() for b in nxt)
            k = max(k, out.points)
            if fails is not None:
                fails = max(fails, out.fail_points)
            if not counted:
                continue
            self.schedules += 1
            self.points += out.points
            self.features |= out.coverage
            if out.violation is None:
                continue
            sig = signature(out.violation)
            hit = self.hits.get(sig)
            if hit is None:
                teachers = teachers_before(self.teachers, index)
                self.hits[sig] = [out.kind, out.violation["message"], index, 1, out, concrete, opts, teachers]
            else:
                hit[3] += 1
        if self.keep_graph:
            self.edges.update((a, b) for a, nxt in self.graph.fwd.items() for b in nxt)

    def _put_back(self):
        """A function putting back the counts a counted run's observers keep
        (operations, overlaps, driver functions) as they are now: a fast
        attempt that escalates must not count twice."""
        counts = [self.coverage.ops, self.coverage.overlaps, self.functions.counts]
        saved = [dict(c) for c in counts]

        def put_back():
            for now, before in zip(counts, saved):
                now.clear()  # in place: the counters hold these dicts
                now.update(before)

        return put_back

    def result(self, k, lo, stop, count_from, meta, known):
        from stress.engine import after_kasan, plain_message, to_violation

        finds = []
        for sig, (kind, message, index, count, out, concrete, opts, teachers) in self.hits.items():
            report = None
            if sig not in known:
                m = after_kasan(meta) if opts.get("kasan_reported") else meta
                report = to_violation(concrete, out, index, m, opts, True, teachers).report
            finds.append(Find(sig, kind, plain_message(message), index, count, report))
        finds.sort(key=lambda f: f.schedule)
        edges = sorted([str(a), str(b)] for a, b in self.edges)
        res = BatchResult(k, count_from, stop, self.schedules, self.points, 0.0, finds, {}, edges)
        res.features = sorted(list(f) for f in self.features)
        if self.guided is not None:
            res.corpus = [e.to_json() for e in self.guided.added]
        return res


def _hypothesis(spec, k, scenario, lo, stop, count_from, opts, meta, known):
    """A batch of the hypothesis strategy: ``explore_hypothesis`` over ``stop - count_from`` examples.

    Its seed is derived from ``(seed, k)``; with ``spec.database`` the shared
    example database replays earlier failures first (under the key
    ``explore`` uses), so those come back as repeats.  Every kind is hunted
    (``keep_going``), so a batch that finds n kinds runs up to n+1 rounds of
    examples; ``schedules`` says how many ran.
    """
    from stress.engine import after_kasan, plain_message, to_violation
    from stress.hypothesis_chooser import explore_hypothesis
    from stress.choosers import make_rng

    from .signature import signature

    database = spec.database() if spec.database is not None else None
    key = json.dumps([meta["target"], meta["options"]], sort_keys=True).encode() if database is not None else None
    seed = make_rng(f"soak:{spec.seed}", k).randrange(2**32)
    result, found = explore_hypothesis(
        scenario,
        schedules=max(1, stop - count_from),
        seed=seed,
        deadline=None,
        keep_going=True,
        opts=opts,
        pct_depth=spec.pct_depth,
        database=database,
        database_key=key,
    )
    finds = {}
    for program, out, concrete, target, run_opts in found:
        sig = signature(out.violation)
        if sig in finds:
            finds[sig].count += 1
            continue
        report = None
        if sig not in known:
            m = after_kasan(meta) if run_opts.get("kasan_reported") else meta
            m = dict(m, target=target) if target is not None else m
            report = to_violation(concrete, out, program, m, run_opts, True).report
        finds[sig] = Find(sig, out.kind, plain_message(out.violation["message"]), count_from, 1, report)
    return BatchResult(k, count_from, stop, result.schedules, result.points, 0.0, list(finds.values()), {}, [])
