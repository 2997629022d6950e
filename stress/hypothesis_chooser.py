"""The Hypothesis strategy: schedules drawn as lists of decisions, shrunk by Hypothesis.

The whole list is drawn up front (a draw per decision is ten times slower
and shrinks worse): decision ``d`` picks option ``d % len(options)`` and the
list's end means "keep running the current CPU", so Hypothesis' preference
for short lists of small integers is a preference for schedules with few
preemptions.  A failure raises one exception class per violation kind, so
shrinking never trades one kind for another.  The example database is off:
a run depends on the seed and options only.
"""

from __future__ import annotations

import time

from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

from .choosers import Replay

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


def explore_hypothesis(scenario, *, schedules, seed, deadline, keep_going, opts, database=None, database_key=None):
    """Search with Hypothesis; returns ``(Result, [(index, Outcome, scenario, target)])``.

    For a scenario family (a driver workload) Hypothesis also draws which
    program runs (shrinking toward program 0).

    ``database`` (a Hypothesis example database) and ``database_key`` make a
    failure found once replay first next time (the pytest plugin uses them);
    the default is no database, so a run depends on the seed alone.
    """
    from .engine import Result, concretize, run_schedule

    pin_local_constants()
    family = getattr(scenario, "for_schedule", None)
    result = Result()
    found, kinds = [], set()
    last = {}

    @settings(
        max_examples=schedules or 1_000_000,
        database=database,
        deadline=None,
        derandomize=False,
        suppress_health_check=list(HealthCheck),
        phases=(Phase.generate, Phase.shrink),
        report_multiple_bugs=False,
        verbosity=Verbosity.quiet,
        print_blob=False,
    )
    @hypothesis_seed(seed)
    @given(st.integers(0, 0 if family is None else 65535), decision_lists())
    def search(program, decisions):
        if deadline is not None and time.monotonic() >= deadline:
            return
        concrete, target = concretize(scenario, seed, program)
        out = run_schedule(concrete, Replay(decisions), **opts)
        result.schedules += 1
        result.points += out.points
        if out.violation is not None and out.kind not in kinds:
            last[out.kind] = (program, out, concrete, target)  # the last failing call is the shrunk one
            raise _exc_for(out.kind)(out.kind)

    if database is not None and database_key is not None:
        search._hypothesis_internal_database_key = database_key

    while True:
        try:
            search()
        except _Found as e:
            kind = e.args[0]
            kinds.add(kind)
            found.append(last[kind])
            if keep_going and (deadline is None or time.monotonic() < deadline):
                continue
        break
    return result, found
