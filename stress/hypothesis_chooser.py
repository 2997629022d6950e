"""The Hypothesis strategy: schedules drawn as lists of decisions, shrunk by Hypothesis.

The whole list is drawn up front (a draw per decision is ten times slower
and shrinks worse): decision ``d`` picks option ``d % len(options)`` and the
list's end means "keep running the current CPU", so Hypothesis' preference
for short lists of small integers is a preference for schedules with few
preemptions.  A failure raises one exception class per violation kind, so
shrinking never trades one kind for another.  With failure injection a
decision at a failure point fails the call when it is 1 modulo 64
(:data:`stress.choosers.FAIL_EVERY`): about one failure point in 64 of a
random list, none once shrunk to 0.

Without an example database a run depends on the seed and options only.
With one (the pytest plugin's ``.hypothesis/iommu-stress``), a failure is
saved under a key naming the scenario and options, not the seed, and the
next search of the same scenario replays it first (``Phase.reuse``),
whatever its seed.  A saved example is self-contained: for a scenario
family the draws name the concrete scenario completely (the program number
*and* the seed it is drawn under), so a replay runs the very programs that
failed, not what the new seed would make of the same program number.
"""

from __future__ import annotations

import json
import time

from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

from .choosers import Replay
from .results import Result
from .run import run_schedule
from .scenarios import concretize

__all__ = ["explore_hypothesis", "decision_lists", "pin_local_constants"]


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
    import importlib
    import pkgutil

    pool = type(providers._local_constants)()
    for top in ("model", "stress", "strategies"):
        pkg = importlib.import_module(top)
        names = sorted(m.name for m in pkgutil.walk_packages(pkg.__path__, f"{top}."))
        for name in [top, *names]:
            if name.endswith(("__main__", "pytest_plugin")):  # same pool with or without pytest
                continue
            try:
                module = importlib.import_module(name)
            except ImportError:  # e.g. the pytest plugin where pytest is not installed
                continue
            pool |= providers.constants_from_module(module)
    providers._get_local_constants = lambda: pool
    providers.CONSTANTS_CACHE.cache.clear()
    providers._iommu_stress_pinned = True


def decision_lists(max_size=400):
    """Schedules: lists of decisions, shrinking toward fewer and smaller ones."""
    return st.lists(st.integers(min_value=0, max_value=255), max_size=max_size)


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


#: a scenario family's concrete scenario is ``for_schedule(family seed, program)``,
#: both drawn (see the module docstring)
FAMILY_SEEDS = st.integers(0, 2**32 - 1)
PROGRAMS = st.integers(0, 65535)


class _Stopped(KeyboardInterrupt):
    """``stop()``, the deadline or the schedule budget ends the search: the one exception Hypothesis lets through at once."""


def explore_hypothesis(scenario, *, schedules, seed, deadline, keep_going, opts, database=None, database_key=None, stop=None):
    """Search with Hypothesis; returns ``(Result, [(index, Outcome, scenario, target)])``.

    For a scenario family (a driver workload) Hypothesis also draws which
    program runs (shrinking toward program 0): the program number and the
    seed the family draws it under, so an example names its concrete
    scenario by itself.

    ``result.schedules`` counts the search's schedules and never exceeds
    ``schedules`` (over every round of ``keep_going``);
    ``result.shrink_runs`` counts the runs Hypothesis spent shrinking finds
    (and replaying the smallest).  ``deadline`` and ``stop()`` end the
    search at once; one that ends a shrink keeps the smallest failure so far.

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
    shrinking = []  # the kind this round shrinks (Hypothesis searches no more once one failed)
    if database is not None:
        database_key = (database_key or b"") + b"\x00" + _scenario_identity(scenario)

    def stopped():
        return stop is not None and stop()

    def out_of_time():
        return deadline is not None and time.monotonic() >= deadline

    def out_of_schedules():
        return schedules is not None and result.schedules >= schedules

    @settings(
        max_examples=schedules or 1_000_000,
        database=database,
        deadline=None,
        derandomize=False,
        suppress_health_check=list(HealthCheck),
        phases=(Phase.generate, Phase.shrink) if database is None else (Phase.reuse, Phase.generate, Phase.shrink),
        report_multiple_bugs=False,
        verbosity=Verbosity.quiet,
        print_blob=False,
    )
    @hypothesis_seed(seed)
    @given(
        st.integers(0, 0) if family is None else PROGRAMS,
        st.just(None) if family is None else FAMILY_SEEDS,  # st.just draws nothing: scenarios search as before
        decision_lists(),
    )
    def search(program, family_seed, decisions):
        if stopped() or out_of_time() or (not shrinking and out_of_schedules()):
            raise _Stopped()
        concrete, target = concretize(scenario, family_seed, program)
        out = run_schedule(concrete, Replay(decisions), **opts)
        if shrinking:
            result.shrink_runs += 1
        else:
            result.schedules += 1
        result.points += out.points
        if out.violation is not None and result.first_find_schedules is None:
            result.first_find_schedules = result.schedules
            result.first_find_s = time.monotonic() - t0
        if out.violation is not None and out.kind not in kinds:
            last[out.kind] = (program, out, concrete, target)  # the last failing call is the shrunk one
            if not shrinking:
                shrinking.append(out.kind)
            raise _exc_for(out.kind)(out.kind)

    while True:
        shrinking.clear()
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
        except _Found as e:
            kind = e.args[0]
            kinds.add(kind)
            found.append(last[kind])
            if keep_going and not (out_of_time() or out_of_schedules() or stopped()):
                continue
        break
    return result, found
