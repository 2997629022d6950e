"""The Hypothesis strategy: Hypothesis draws PCT plans, steers them by coverage, shrinks finds.

An example is one schedule: a :class:`~stress.choosers.Plan` run by
:class:`~stress.choosers.PlannedPCT` (and, for a scenario family, the
concrete scenario it runs), all decoded from **one** fixed-size byte string
(:func:`plan_bytes`, :func:`decode`).  The layout, most significant first:

* 6 bytes (scenario family only): the family seed (4) and the program
  number (2): ``for_schedule(family seed, program)``, so a saved example
  names its concrete scenario by itself;
* :data:`RANK_BYTES` bytes: the ranks (priorities) of the threads in order
  of appearance (CPUs, agents, the deliveries of an interrupt line to a
  CPU), one byte each;
* 2 bytes per change point (``pct_depth - 1`` of them): 0 is none, else a
  point uniform in ``1..k``;
* with failure injection, 2 bytes: the lower half of the values fail no
  call, the upper half the n-th failure point, n uniform in ``1..F``.

Why one byte string: Hypothesis draws a fresh byte string uniformly, so a
generated example has PCT's distribution exactly (distinct-ish random
priorities, change points uniform over the run, ``fail_nth`` in half the
schedules) and every example runs another program.  Drawn as many integers
instead, Hypothesis' bias toward small and boundary values, its first
examples that vary only their first draw (the rest at its simplest) and its
mutations that copy one draw over another of the same kind made it run the
same few programs without preemption over and over (up to 14x PCT's
median schedules to a find on the zoo, B5 and B9 not found in 3000).

All zeros is the simplest schedule: program 0 of family seed 0, equal
priorities (the running CPU keeps running), no change point, no failure;
shrinking moves toward it byte by byte (priorities to 0, change points and
failures dropped), so Hypothesis' shrinking and example database work as
before.  ``k`` and ``F`` are measured once per search by a
probe, the all-zeros schedule (:func:`_scale`): three times its points (at
least 64, PCT's first estimate) and twice its failure points (at least
:data:`stress.choosers.FAIL_POINTS`).  The probe depends on the scenario and
options only, never on the seed, so a saved example means the same plan
under any seed; and it is Hypothesis' first example, run once.

Steering: every example calls ``hypothesis.target`` with the size of its
interleaving coverage (:mod:`stress.search.coverage`), so Hypothesis'
targeted phase (``Phase.target``, up to half the budget, interleaved with
generation) hill-climbs from the schedules that exercised the most: it
changes the trailing bytes first (failure, change points, ranks), that is
other interleavings of the same program.

The report's decisions are still the scheduler's recorded decisions of the
failing run (the engine replays and shrinks them as for every strategy).
A failure raises one exception class per violation kind, so shrinking never
trades one kind for another.

Budgets: the examples Hypothesis searches are ``result.schedules``, never
more than ``schedules``; the runs it spends shrinking (and replaying the
smallest) are ``result.shrink_runs``, at most :data:`SHRINK_RUNS_PER_FIND`
per find and at most ``schedules`` in all (a shrink cut short keeps the
smallest failure so far), so a search runs at most twice its budget.

Without an example database a run depends on the seed and options only.
With one (the pytest plugin's ``.hypothesis/iommu-stress``), a failure is
saved under a key naming the scenario and options, not the seed, and the
next search of the same scenario replays it first (``Phase.reuse``),
whatever its seed.
"""

from __future__ import annotations

import json
import time
import types

from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import target as hypothesis_target
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

from .choosers import FAIL_POINTS, Plan, PlannedPCT
from .results import Result
from .run import run_schedule
from .scenarios import concretize

__all__ = ["explore_hypothesis", "decision_lists", "pin_local_constants", "plan_bytes", "decode", "Layout"]


def pin_local_constants():
    """Make Hypothesis' draws independent of what else is imported.

    Hypothesis (6.1xx) mixes constants found in every *local* module in
    ``sys.modules`` into its draws, so the same seed gave a different search
    after, say, ``import stress.cli``.  Our searches promise the same result
    for the same seed and options: the pool is pinned, once per process, to
    the constants of this tool's own packages (model, stress, strategies),
    whatever else is loaded.  (Private API; if it moves, nothing breaks but
    this guarantee.)
    """
    try:
        from hypothesis.internal.conjecture import providers
    except ImportError:  # pragma: no cover - a future Hypothesis
        return
    needed = ("_get_local_constants", "_local_constants", "constants_from_module", "CONSTANTS_CACHE")
    if getattr(providers, "_iommu_stress_pinned", False) or not all(hasattr(providers, n) for n in needed):
        return
    pool = type(providers._local_constants)()
    for top, path in _source_files(("model", "stress", "strategies")):
        if top.endswith(("__main__", "pytest_plugin")):  # same pool with or without pytest
            continue
        # the constants come from the source file: a module object naming it
        # is enough, so nothing is imported (importing every module, plots
        # and all, took seconds before the first schedule)
        module = types.ModuleType(top)
        module.__file__ = path
        pool |= providers.constants_from_module(module)
    providers._get_local_constants = lambda: pool
    providers.CONSTANTS_CACHE.cache.clear()
    providers._iommu_stress_pinned = True


def _source_files(packages):
    """``(module name, source file)`` of every module of ``packages``, each
    package's own first and then its modules by name, found without importing."""
    import importlib.util
    import os
    import pkgutil

    for top in packages:
        spec = importlib.util.find_spec(top)
        files = {}

        def walk(paths, prefix):
            for info in pkgutil.iter_modules(paths):
                base = os.path.join(info.module_finder.path, info.name)
                files[prefix + info.name] = os.path.join(base, "__init__.py") if info.ispkg else base + ".py"
                if info.ispkg:
                    walk([base], f"{prefix}{info.name}.")

        walk(list(spec.submodule_search_locations), f"{top}.")
        yield top, spec.origin
        for name in sorted(files):
            yield name, files[name]


def decision_lists(max_size=400):
    """Schedules: lists of decisions, shrinking toward fewer and smaller ones."""
    return st.lists(st.integers(min_value=0, max_value=255), max_size=max_size)


#: threads given a rank of their own (a driver workload has 5 to 12: CPUs,
#: agents, interrupt deliveries); the rest rank 0
RANK_BYTES = 16
#: the most runs Hypothesis may spend shrinking one find (and at most the
#: search's schedule budget over all finds)
SHRINK_RUNS_PER_FIND = 1000
#: PCT's first estimate of a schedule's points, and the probe's multiple
MIN_K = 64
K_PER_PROBE_POINT = 3


class Layout:
    """Where each part of a plan sits in an example's bytes (see the module docstring)."""

    def __init__(self, family, depth, k, fail_points=None):
        self.family = family
        self.changes = max(depth - 1, 0)
        self.k = max(k, 1)
        self.fail_points = fail_points
        self.ranks_at = 6 if family else 0
        self.change_at = self.ranks_at + RANK_BYTES
        self.fail_at = self.change_at + 2 * self.changes
        self.size = self.fail_at + (2 if fail_points is not None else 0)


def plan_bytes(layout):
    """The strategy: one byte string of the layout's size (all zeros: the simplest schedule)."""
    return st.binary(min_size=layout.size, max_size=layout.size)


def decode(layout, data):
    """``(family seed, program, Plan)`` of an example's bytes."""
    u16 = lambda i: (data[i] << 8) | data[i + 1]  # noqa: E731
    family_seed = program = 0
    if layout.family:
        family_seed = int.from_bytes(data[0:4], "big")
        program = u16(4)
    ranks = tuple(data[layout.ranks_at : layout.ranks_at + RANK_BYTES])
    change = []
    for j in range(layout.changes):
        v = u16(layout.change_at + 2 * j)
        if v:  # 0: no change point; else uniform over 1..k
            change.append(1 + ((v - 1) * layout.k >> 16))
    fail = 0
    if layout.fail_points is not None:
        v = u16(layout.fail_at)
        if v >= 0x8000:  # FailNth: half the schedules fail the n-th point, n uniform in 1..F
            fail = 1 + ((v - 0x8000) * layout.fail_points >> 15)
    while ranks and ranks[-1] == 0:  # past the end of ranks is rank 0: the same plan, shorter
        ranks = ranks[:-1]
    return family_seed, program, Plan(ranks, tuple(sorted(change)), fail)


class _Found(Exception):
    pass


_KIND_EXC = {}


def _exc_for(kind):
    exc = _KIND_EXC.get(kind)
    if exc is None:
        exc = _KIND_EXC[kind] = type(f"Found_{kind.replace('-', '_')}", (_Found,), {})
    return exc


def _scenario_identity(scenario):
    """What names the scenario beyond the engine's key (its target).

    A driver workload family and a scenario defined in a function have no
    importable target (``{"scenario": None}``), so without this every such
    scenario would share one database entry and each search would replay,
    then delete, the others' failures.
    """
    if getattr(scenario, "for_schedule", None) is not None:
        what = {
            "family": f"{type(scenario).__module__}:{type(scenario).__qualname__}",
            "name": getattr(scenario, "name", None),
            "config": getattr(scenario, "config", None),
        }
    else:
        what = {"scenario": f"{getattr(scenario, '__module__', None)}:{getattr(scenario, '__qualname__', repr(type(scenario)))}"}
    return json.dumps(what, sort_keys=True, default=repr).encode()


def _scale(probe, inject_failures):
    """``(k, F)`` from the probe run (the all-zeros schedule): see the module docstring."""
    k = max(MIN_K, K_PER_PROBE_POINT * probe.points)
    fail_points = max(FAIL_POINTS, 2 * probe.fail_points) if inject_failures else None
    return k, fail_points


def _interleaving(features):
    """The coverage features an interleaving decides (two CPUs' accesses or operations meeting)."""
    return sum(1 for f in features if f[0] in ("alias", "overlap"))


class _Stopped(KeyboardInterrupt):
    """``stop()``, the deadline, the schedule budget or the shrink budget ends the search: the one exception Hypothesis lets through at once."""


def explore_hypothesis(
    scenario, *, schedules, seed, deadline, keep_going, opts, pct_depth=3, database=None, database_key=None, stop=None
):
    """Search with Hypothesis; returns ``(Result, [(index, Outcome, scenario, target, opts)])``.

    ``index`` is the search schedule (from 0) that first showed the find's
    kind; the Outcome is the smallest failing run Hypothesis shrank it to,
    under ``opts``: the search's, or after a KASAN find (with
    ``keep_going``) the same with ``kasan_reported``, as the other
    strategies run a search's later schedules (KASAN reports the first bug
    of a boot).
    An example is a PCT plan of depth ``pct_depth`` (and, for a scenario
    family, the program it runs), drawn as bytes: see the module docstring.

    ``result.schedules`` counts the search's schedules and never exceeds
    ``schedules`` (over every round of ``keep_going``);
    ``result.shrink_runs`` counts the runs Hypothesis spent shrinking finds
    (and replaying the smallest): at most :data:`SHRINK_RUNS_PER_FIND` per
    find and at most ``schedules`` in all.  ``deadline`` and ``stop()`` end
    the search at once; one that ends a shrink keeps the smallest failure so
    far.  ``result.coverage`` is the interleaving coverage of the search's
    schedules.

    ``database`` (a Hypothesis example database) and ``database_key`` make a
    failure found once replay first next time, under any seed (the pytest
    plugin uses them); the default is no database, so a run depends on the
    seed alone.  The key is ``database_key`` plus the scenario's identity
    (:func:`_scenario_identity`); with ``keep_going`` the n-th kind found is
    saved under its own key, so replaying one kind's example in a later
    round never deletes it.
    """

    pin_local_constants()
    t0 = time.monotonic()
    family = getattr(scenario, "for_schedule", None)
    result = Result()
    found, kinds = [], set()
    last = {}
    first_at = {}  # kind -> the search schedule that first showed it
    shrinking = []  # the kind this round shrinks (Hypothesis searches no more once one failed)
    round_shrinks = [0]
    if database is not None:
        database_key = (database_key or b"") + b"\x00" + _scenario_identity(scenario)

    # The probe: the simplest example (program 0, no preemption), run once; it
    # scales the change points and failures, and is Hypothesis' first example.
    concrete0, target0 = concretize(scenario, 0, 0) if family is not None else (scenario, None)
    probe = run_schedule(concrete0, PlannedPCT(Plan()), coverage=True, **opts)
    k, fail_points = _scale(probe, opts.get("inject_failures"))
    layout = Layout(family is not None, pct_depth, k, fail_points)
    probe_key = (0, 0, Plan())

    def stopped():
        return stop is not None and stop()

    def out_of_time():
        return deadline is not None and time.monotonic() >= deadline

    def out_of_schedules():
        return schedules is not None and result.schedules >= schedules

    def out_of_shrinks():
        return round_shrinks[0] >= SHRINK_RUNS_PER_FIND or (schedules is not None and result.shrink_runs >= schedules)

    @settings(
        max_examples=schedules or 1_000_000,
        database=database,
        deadline=None,
        derandomize=False,
        suppress_health_check=list(HealthCheck),
        phases=((Phase.reuse,) if database is not None else ()) + (Phase.generate, Phase.target, Phase.shrink),
        report_multiple_bugs=False,
        verbosity=Verbosity.quiet,
        print_blob=False,
    )
    @hypothesis_seed(seed)
    @given(plan_bytes(layout))
    def search(data):
        if stopped() or out_of_time() or (out_of_shrinks() if shrinking else out_of_schedules()):
            raise _Stopped()
        family_seed, program, plan = decode(layout, data)
        if (family_seed, program, plan) == probe_key and run_opts is opts:
            concrete, target, out = concrete0, target0, probe
        else:
            concrete, target = concretize(scenario, family_seed, program)
            out = run_schedule(concrete, PlannedPCT(plan), coverage=not shrinking, release=True, **run_opts)
        if shrinking:
            result.shrink_runs += 1
            round_shrinks[0] += 1
        else:
            result.schedules += 1
            result.points += out.points
            result.coverage |= out.coverage
            hypothesis_target(len(out.coverage), label="coverage")
            hypothesis_target(_interleaving(out.coverage), label="interleaving")
        if out.violation is not None and not shrinking:
            if result.first_find_schedules is None:
                result.first_find_schedules = result.schedules
                result.first_find_s = time.monotonic() - t0
            result.first_finds.setdefault(out.kind, (result.schedules, time.monotonic() - t0))
        # while shrinking a find, another kind is no failure: each round's example
        # (and database entry) is of one kind, the others are left to later rounds
        if out.violation is not None and out.kind not in kinds and (not shrinking or out.kind == shrinking[0]):
            if not shrinking:
                first_at.setdefault(out.kind, result.schedules - 1)
                shrinking.append(out.kind)
            last[out.kind] = (first_at.get(out.kind, result.schedules - 1), out, concrete, target, run_opts)  # the last failing call is the shrunk one
            raise _exc_for(out.kind)(out.kind)

    run_opts = opts  # after KASAN's first report, the options of a boot it has spoken in
    while True:
        if found and found[-1][1].violation.get("kasan") and not run_opts.get("kasan_reported"):
            # KASAN reports the first bug of a boot and the search is one boot
            # (stress.oracles.kasan): later rounds run, and their finds replay, with it silent
            run_opts = dict(opts, kasan_reported=True)
        shrinking.clear()
        round_shrinks[0] = 0
        if database is not None:
            # round n (n kinds found so far) keeps its find under its own key
            search._hypothesis_internal_database_key = database_key + (b"" if not kinds else b"\x00%d" % len(kinds))
        try:
            search()
        except _Stopped:
            result.stopped = stopped()
            if shrinking:  # cut short while shrinking: the smallest failure so far
                kinds.add(shrinking[0])
                found.append(last[shrinking[0]])
                if keep_going and not (out_of_time() or out_of_schedules() or stopped()):
                    continue
        except _Found as e:
            kind = e.args[0]
            kinds.add(kind)
            found.append(last[kind])
            if keep_going and not (out_of_time() or out_of_schedules() or stopped()):
                continue
        break
    return result, found
