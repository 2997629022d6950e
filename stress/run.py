"""One schedule: a fresh machine, a scenario's CPUs, a chooser, the checkers.

:func:`run_schedule` is the unit every search, shrink and replay is made of.
It guarantees:

* a fresh :class:`~model.kernel.core.Kernel` per run: the lock, cell and
  checker state of a run lives in that kernel and its observers, so the same
  scenario and decisions give the same outcome whatever ran before.  For a
  scenario with a boot recipe (a driver workload) the kernel may be a copy
  of one booted before (:mod:`stress.bootimage`): the same state a boot
  gives, so the same outcome;
* the one exception is lockdep's dependency graph, which a search may keep
  across its schedules (``lock_graph``: used and extended in place) or
  start from a recorded state (``lockdep_base``: copied, never changed),
  as Linux keeps one graph for a whole boot;
* a scenario author's mistake is a :class:`~stress.errors.ScenarioError`,
  never an outcome: a scenario that does not build, returns no CPU, returns
  something that is not callable, or lets a coroutine go unawaited (a
  forgotten ``await`` on ``cell.store(...)``).

``coverage`` watches the run with a :class:`~stress.search.coverage.Coverage`
observer: ``Outcome.coverage`` is then the set of interleaving features it
exercised (searches turn it on; replays and shrinking do not need it).

``fast`` (:func:`run_schedule_async`) runs a search's schedule without the
checkers' stacks; a run that needs them (it reports, or lockdep would learn
a fact of ``lock_graph``) is run again in full, so the outcome is always a
full run's.

``release`` (a search's schedule: nothing looks at the run's state after
it) frees a copy of a boot image as soon as its run ends without a
violation (:func:`stress.bootimage.release`), rather than leaving its
reference cycles to Python's cycle collector.

``inject_failures`` turns on failure injection for the run
(``kernel.inject_failures``): allocations and ``dma_map_single`` made by
the scheduled CPUs are failure points the chooser decides
(:mod:`stress.scheduler`).
"""

from __future__ import annotations

import random
import re
import warnings
from dataclasses import dataclass, field

import trio

from model.kernel.core import Kernel

from . import bootimage
from .checkers import attach_checkers, default_checkers
from .choosers import Replay
from .lockdep import LockGraph, Lockdep
from .errors import ReplayMismatch, ScenarioError
from .scheduler import Scheduler
from .search.coverage import Coverage
from .trace import Tracer

__all__ = [
    "DEFAULT_MAX_STEPS",
    "Outcome",
    "run_schedule",
    "run_schedule_async",
    "replay_decisions",
]

DEFAULT_MAX_STEPS = 20_000


@dataclass
class Outcome:
    """What one schedule did."""

    violation: dict | None
    decisions: list
    points: int
    timeline: list | None = None
    fail_points: int = 0  # failure points passed (failure injection on)
    injected: list = field(default_factory=list)  # the failures injected: {call, result, cpu, op, where, point, ...}
    coverage: set | None = None  # interleaving coverage features (``coverage=True``), stress.search.coverage
    hazards: set | None = None  # the oracles' near misses it reached (``coverage=True``), ditto
    hints: list | None = None  # where it reached them: (kind, state, cpu, op ordinal, MMU, iova), ditto
    escalated: bool = field(default=False, compare=False)  # a fast run run again in full (not part of what it did)

    @property
    def kind(self):
        return self.violation["kind"] if self.violation else None


async def run_schedule_async(scenario, chooser, *, fast=False, rerun=None, **kw):
    """Run ``scenario`` once under ``chooser`` (see the module doc for ``kw``).

    ``fast`` (a search's schedule; ignored with ``trace``): the checkers keep
    no stacks after boot, and a run that turns out to need them (it reports,
    or lockdep is about to learn a fact of ``lock_graph``, which outlives
    it) is run again in full, ``chooser`` put back as it was before (its
    attributes: a plain object's): the outcome, and the chooser after it,
    are the ones a full run gives (``Outcome.escalated`` says it ran again).
    ``rerun()``, if given, is called before that: it puts back what watched
    the fast attempt from outside the run (a soak's counters).
    """
    if not fast or kw.get("trace") or not hasattr(chooser, "__dict__"):
        return (await _attempt(scenario, chooser, False, **kw))[0]
    before = _snapshot(chooser)
    out, why = await _attempt(scenario, chooser, True, **kw)
    if why:
        _restore(chooser, before)
        if rerun is not None:
            rerun()
        out, _ = await _attempt(scenario, chooser, False, **kw)
        out.escalated = True
        # the same kind (a message may name a function from a stack the fast run did not keep)
        if why is not True and out.kind != why[0]:
            raise ReplayMismatch(
                f"a schedule of {_name(scenario)} found {why[0]}: {why[1]}, but its replay ended in "
                f"{describe(out)}: the scenario is not deterministic "
                f"(state kept across runs outside the model, or randomness/time of its own)"
            )
    return out


_ADDRESS = re.compile(r"0x[0-9a-f]{8,}")


def plain_message(message):
    """A message without Python object addresses (``<... at 0x7f...>`` differs per run)."""
    return _ADDRESS.sub("0x...", message)


def describe(out):
    """``kind: message`` of an outcome's violation, or ``no violation``."""
    if out.violation is None:
        return "no violation"
    return f"{out.kind}: {out.violation['message']}"


def _snapshot(obj):
    """``obj``'s attributes as they are now, for :func:`_restore`: a chooser's
    (a ``random.Random`` by its state, a list, dict or set copied, a plain
    object's attributes the same way, anything else kept: a number, a tuple).
    A deep copy costs a hundred times more (the generator's state is 625 ints)."""
    snap = {}
    for name, v in vars(obj).items():
        if isinstance(v, random.Random):
            snap[name] = (v, v.getstate())
        elif type(v) in (list, dict, set):
            snap[name] = (None, v.copy())
        elif hasattr(v, "__dict__") and not isinstance(v, type):
            snap[name] = (v, _snapshot(v))
        else:
            snap[name] = (None, v)
    return snap


def _restore(obj, snap):
    """Put back ``obj``'s attributes as :func:`_snapshot` took them."""
    attrs = vars(obj)
    attrs.clear()
    for name, (kept, state) in snap.items():
        if isinstance(kept, random.Random):
            kept.setstate(state)
        elif kept is not None:
            _restore(kept, state)
        attrs[name] = kept if kept is not None else state


async def _attempt(
    scenario,
    chooser,
    fast,
    *,
    checkers=None,
    max_steps=DEFAULT_MAX_STEPS,
    trace=False,
    lock_graph=None,
    lockdep_base=None,
    inject_failures=False,
    kasan_reported=False,
    coverage=False,
    release=False,
):
    """``(outcome, why)``: one run, or for a fast one that escalated ``(None,
    why)`` (:attr:`Scheduler.escalated`: what it was about to report, or
    True), nothing of it kept but what its boot taught lockdep."""
    checkers = tuple(default_checkers() if checkers is None else checkers)
    graph = lock_graph if lock_graph is not None else (lockdep_base.copy() if lockdep_base is not None else LockGraph())
    # a boot image (stress.bootimage) is kept per graph the boot's lockdep state depends on
    owner = bootimage.owner_of(graph, lock_graph, lockdep_base)
    recipe = key = None
    if not trace and bootimage.ENABLED and getattr(scenario, "boot_recipe", None) is not None:
        recipe = _recipe(scenario)
        if recipe.image:
            key = (recipe.key, checkers, bool(inject_failures), bool(kasan_reported), bool(coverage))
    image = bootimage.find(owner, key) if key is not None else None
    tracer = cov = instances = None
    if image is not None:
        (kernel, state), instances = image(graph)
        cov = next((o for o in kernel.observers if type(o) is Coverage), None)
        sched = Scheduler(kernel, chooser, max_steps=max_steps)
    else:
        kernel = Kernel()
        kernel.inject_failures = bool(inject_failures)
        kernel.kasan_reported = bool(kasan_reported)  # KASAN already spoke this boot (stress.oracles.kasan)
        if trace:
            tracer = Tracer(kernel)
            kernel.attach(tracer)
        attach_checkers(kernel, checkers, lock_graph=graph)
        if coverage:  # watches only: never reports, so the run is the same without it
            cov = Coverage(kernel)
            kernel.attach(cov)
        sched = Scheduler(kernel, chooser, max_steps=max_steps, trace=tracer)
        if recipe is not None and bootimage.refused(owner, key):
            recipe = None  # this boot does not image: boot as the scenario says
        state = _call(scenario, recipe.boot, kernel) if recipe is not None else None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        if recipe is None:
            bodies = _build(scenario, scenario, kernel)
        else:
            if image is None:  # boot, and image it (on a graph it taught nothing)
                mark = bootimage.graph_mark(graph)
                if await sched.boot() and key is not None and (owner is bootimage.FRESH or bootimage.graph_mark(graph) == mark):
                    bootimage.take(owner, key, kernel, graph, state)
            for fn in recipe.after_boot:
                _call(scenario, fn, kernel)
            bodies = _build(scenario, recipe.bodies, state)
        if fast and await sched.boot():  # boot in full: what it keeps (a reference, an image) has its stacks
            _go_fast(kernel, sched, lock_graph is not None)
        await sched.run(bodies)
    _check_unawaited(scenario, caught)
    out = None
    if not sched.escalated:
        out = Outcome(
            sched.violation,
            sched.decisions,
            sched.points,
            tracer.entries if tracer else None,
            sched.fail_points,
            sched.injected,
            cov.features if cov is not None else None,
            cov.hazards if cov is not None else None,
            cov.hints if cov is not None else None,
        )
    escalated = sched.escalated
    if release and sched.violation is None:  # the run is over and reported nothing: no one looks at it
        _unlink(kernel, sched)
        if instances is not None:
            bootimage.release(instances)
    return out, escalated


def _unlink(kernel, sched):
    """Break the reference cycles a run made (each CPU and its engine state,
    the scheduler and the kernel), so that reference counting frees them at
    once: left to the cycle collector, they kept its young generation full
    (a collection every few schedules, through the whole of a boot image's
    copy) and fed its older ones (a tenth of a millisecond a schedule)."""
    for cpu in kernel.cpus:
        cpu.ctl = cpu.sched = None
    sched.__dict__.clear()


def _go_fast(kernel, sched, shared_graph):
    """The rest of the run keeps no stacks: the scheduler escalates at a
    report, lockdep (on a ``shared_graph``) before it learns."""
    sched.fast = True
    for o in kernel.observers:
        if hasattr(o, "lazy_stacks"):
            o.lazy_stacks = True
        if shared_graph and type(o) is Lockdep:
            o.escalate = sched.escalate


def _name(scenario):
    return getattr(scenario, "__qualname__", None) or repr(scenario)


def _build(scenario, fn, *args):
    """The CPU bodies ``fn(*args)`` gives: ``scenario(kernel)``, or its recipe's ``bodies(state)``."""
    bodies = _call(scenario, lambda: list(fn(*args)))
    if not bodies:
        raise ScenarioError(f"scenario {_name(scenario)!r} returned no CPU bodies: return one async callable per CPU")
    for body in bodies:
        if not callable(body):
            raise ScenarioError(f"scenario {_name(scenario)!r} returned {body!r}, not an async callable per CPU")
    return bodies


def _recipe(scenario):
    """The scenario's :class:`~stress.bootimage.BootRecipe` (its config checked)."""
    return _call(scenario, scenario.boot_recipe)


def _call(scenario, fn, *args):
    """``fn(*args)``, a step of building ``scenario``: an error is the scenario author's."""
    try:
        return fn(*args)
    except ScenarioError:
        raise
    except Exception as exc:  # noqa: BLE001 - a scenario that cannot build is a usage error
        raise ScenarioError(f"scenario {_name(scenario)!r} failed to build: {type(exc).__name__}: {exc}") from exc


_UNAWAITED = re.compile(r"coroutine '([^']+)' was never awaited")


def _check_unawaited(scenario, caught):
    """A coroutine dropped without ``await``: the call did nothing (CPython warns at once)."""
    for w in caught:
        m = _UNAWAITED.search(str(w.message))
        if m:
            raise ScenarioError(
                f"{w.filename}:{w.lineno}: coroutine {m.group(1)}() was never awaited "
                f"(in scenario {_name(scenario)!r}): write `await {m.group(1).rsplit('.', 1)[-1]}(...)`"
            )
    for w in caught:  # anything else is the user's business: pass it on
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


def run_schedule(scenario, chooser, **kw):
    """Run ``scenario`` once under ``chooser`` (synchronous wrapper)."""
    return trio.run(lambda: run_schedule_async(scenario, chooser, **kw))


def replay_decisions(scenario, decisions, **kw):
    return run_schedule(scenario, Replay(decisions), **kw)
