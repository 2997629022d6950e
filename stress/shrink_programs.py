"""Delta debugging of a workload's programs together with its schedule.

A random or PCT find of a driver workload is a config with ``programs``
(one operation list per CPU) and the decisions of the failing run.
:func:`shrink_programs` removes what the violation does not need, keeping
the same violation kind:

1. the decisions alone (:func:`stress.shrink.shrink_decisions`);
2. whole CPUs, last first;
3. single operations, last first;
4. the decisions again; then 2 to 4 again until a round changes nothing.

Removing a CPU or an operation moves every later decision point, so each
candidate program is tried with several schedules, cheapest first: the
same decisions; no preemption at all; the same switches *translated* (a
switch "CPU a, k points into its operation i: run b" stays at that place
of that operation, with operation and CPU numbers moved down past the one
removed; operations are told apart by the ``op_begin`` events driver
workloads emit; an injected failure is kept the same way: "CPU a, k
points into its operation i, fails its n-th call there"); and a short
:func:`~stress.shrink.shrink_decisions` search from the same decisions.  A candidate whose scenario cannot be
built (:class:`~stress.errors.ScenarioError`) does not reproduce.

A candidate is taken only if it reproduces the kind and is no larger than
the best so far in every measure (CPUs, operations, preemptions, length of
the decision list) and smaller in one, so the result is never longer than
the input.  Every replay counts against ``max_replays``; the result always
replays to ``kind`` (it is the input when the input does not).  Same
inputs, same result: nothing here depends on time or randomness.
"""

from __future__ import annotations

from . import bootimage
from .choosers import FAIL_EVERY, Replay
from .errors import ScenarioError
from .run import run_schedule
from .shrink import preemptions, shrink_decisions

__all__ = ["shrink_programs", "workload_size", "MAX_REPLAYS"]

#: replays a whole shrink may use
MAX_REPLAYS = 600
#: replays of the short schedule search tried for one candidate program
LOCAL_REPLAYS = 12
#: replays of the schedule-only passes (1 and 4)
DECISION_REPLAYS = 150


def workload_size(programs, decisions):
    """``(cpus, operations, preemptions, decisions)``: what shrinking makes smaller."""
    return (len(programs), sum(len(p) for p in programs), preemptions(decisions), len(decisions))


def _trim(decisions):
    out = list(decisions)
    while out and out[-1] == 0:
        out.pop()
    return out


def _no_larger(a, b):
    return all(x <= y for x, y in zip(a, b))


class _Budget:
    def __init__(self, n):
        self.left = n

    def counted(self, scenario):
        """``scenario`` that charges one replay each time the engine builds it."""
        return bootimage.wrap(scenario, self._charge)

    def _charge(self, kernel):
        self.left -= 1


def _steps(cpu):
    ctl = cpu.ctl  # the scheduler's per-CPU state: points this CPU has passed
    return ctl.steps if ctl is not None else 0


class _OpIndex:
    """Observer: which operation of its program each CPU is in, since which point.

    Driver workloads emit ``op_begin`` around every operation
    (:mod:`model.workloads`); without those events a whole program counts
    as operation -1 and the translation below is by points alone.
    """

    def __init__(self):
        self.index = {}  # cpu id -> (operation index, steps when it began)

    def op_begin(self, cpu, name):
        idx, _ = self.index.get(cpu.id, (-1, 0))
        self.index[cpu.id] = (idx + 1, _steps(cpu))

    def at(self, cur):
        """``(cpu id, operation index, points into it)`` of a decision while ``cur`` runs."""
        if cur is None:
            return (None, -1, 0)
        idx, start = self.index.get(cur.id, (-1, 0))
        return (cur.id, idx, _steps(cur) - start)


class _Switches:
    """Base of the two choosers: names each decision by where its CPU is.

    A decision is keyed ``(cpu, operation, points into it, n-th decision at
    that point)``; unlike its position in the decision list, that key does
    not move when another CPU or another operation goes away.
    """

    def __init__(self):
        self.ops = _OpIndex()
        self.count = {}

    def observe(self, scenario):
        return bootimage.wrap(scenario, self._attach)

    def _attach(self, kernel):
        kernel.attach(self.ops)  # op_begin only: nothing a boot emits

    def key(self, cur):
        where = self.ops.at(cur)
        n = self.count.get(where, 0)
        self.count[where] = n + 1
        return where + (n,)

    def fail_key(self, cur):
        """The key of a failure point: where ``cur`` is, and which call there (``("fail", n)``)."""
        where = self.ops.at(cur) + (FAIL,)
        n = self.count.get(where, 0)
        self.count[where] = n + 1
        return where[:3] + ((FAIL, n),)


#: the target of an injected failure in a list of switches: ``(key, (FAIL, None))``
FAIL = "fail"


class _Recorder(_Switches):
    """Replays decisions, noting every switch in order: ``[(key, (cpu id, irq))]``.

    A switch is a decision that runs another actor than the current CPU (an
    interrupt counts, and so does option 0 when the current CPU cannot go on).
    An injected failure is noted as ``(key, (FAIL, None))``.
    """

    def __init__(self, decisions):
        super().__init__()
        self.decisions = decisions
        self.pos = 0
        self.switches = []

    def choose(self, sched, cur, opts):
        key = self.key(cur)
        pos, self.pos = self.pos, self.pos + 1
        i = self.decisions[pos] % len(opts) if pos < len(self.decisions) else 0
        cpu, irq = opts[i]
        if cpu is not cur or irq is not None:
            self.switches.append((key, (cpu.id, irq)))
        return i

    def fail(self, sched, cur, call):
        key = self.fail_key(cur)
        pos, self.pos = self.pos, self.pos + 1
        d = 1 if pos < len(self.decisions) and self.decisions[pos] % FAIL_EVERY == 1 else 0  # as Replay reads it
        if d:
            self.switches.append((key, (FAIL, None)))
        return d


class _Follow(_Switches):
    """Makes the recorded switches again where the same CPU reaches the same decision."""

    def __init__(self, switches):
        super().__init__()
        self.switches = dict(switches)

    def choose(self, sched, cur, opts):
        want = self.switches.get(self.key(cur))
        if want is not None:
            for i, (cpu, irq) in enumerate(opts):
                if (cpu.id, irq) == want:
                    return i
        return 0

    def fail(self, sched, cur, call):
        return 1 if self.switches.get(self.fail_key(cur)) == (FAIL, None) else 0


def _renumber(switches, cpu, op=None):
    """The switches once CPU ``cpu`` (``op`` None) or its operation ``op`` is gone.

    A switch to the removed CPU becomes a switch to whoever that CPU handed
    over to next; higher CPU (and agent) ids move down by one.
    """
    out = []
    if op is not None:
        for (cur, idx, step, n), target in switches:
            if cur == cpu:
                if idx == op:
                    continue
                if idx > op:
                    idx -= 1
            out.append(((cur, idx, step, n), target))
        return out

    def new(c):
        return c - 1 if c is not None and c > cpu else c

    waiting = []  # keys of switches to the removed CPU, not yet redirected
    for (cur, idx, step, n), (target, irq) in switches:
        if target == FAIL:  # a failed call: gone with its CPU, else renumbered
            if cur != cpu:
                out.append(((new(cur), idx, step, n), (target, irq)))
            continue
        if cur == cpu:
            if waiting and target != cpu:
                out += [(key, (new(target), irq)) for key in waiting]
                waiting = []
            continue
        key = (new(cur), idx, step, n)
        if target == cpu and irq is None:
            waiting.append(key)
        elif target != cpu:
            out.append((key, (new(target), irq)))
    return out


def shrink_programs(make_scenario, config, decisions, kind, opts=None, *, max_replays=MAX_REPLAYS):
    """Smaller ``(config, decisions)`` that still end in a ``kind`` violation.

    ``make_scenario(cfg)`` builds the scenario of a config with ``programs``
    (for a driver: ``lambda cfg: driver_scenario(name, cfg)``); ``opts`` are
    the run options (``checkers``, ``max_steps``).  CPUs go down to
    ``config.get("min_cpus", 1)``.  When ``config["cpus"]`` counted the
    programs it is kept equal to their number.
    """
    opts = dict(opts or {})
    budget = _Budget(max_replays)
    programs0 = [list(p) for p in config["programs"]]
    min_cpus = config.get("min_cpus", 1)
    track_cpus = config.get("cpus") == len(programs0)

    def cfg_of(progs):
        cfg = dict(config, programs=[list(p) for p in progs])
        if track_cpus:
            cfg["cpus"] = len(progs)
        return cfg

    def scenario_of(progs):
        return budget.counted(make_scenario(cfg_of(progs)))

    def run(scenario, chooser):
        """The decisions of a run that ends in ``kind``, else None."""
        if budget.left <= 0:
            return None
        try:
            out = run_schedule(scenario, chooser, **opts)
        except ScenarioError:
            return None
        return _trim(out.decisions) if out.kind == kind else None

    def replay(progs, decs):
        return run(scenario_of(progs), Replay(decs))

    got = replay(programs0, decisions)
    if got is None:
        return config, list(decisions)
    best = [programs0, got]

    def offer(progs, decs):
        """Take ``(progs, decs)`` if it reproduced and is no larger anywhere, smaller somewhere."""
        if decs is None:
            return False
        new, old = workload_size(progs, decs), workload_size(*best)
        if new != old and _no_larger(new, old):
            best[:] = [[list(p) for p in progs], decs]
            return True
        return False

    def shrink_schedule(limit):
        if budget.left <= 0:
            return
        # best[1] fails, and shrink_decisions only ever truncates it or zeroes
        # decisions that failed on replay (the counted scenario charges each
        # one); one more replay records the result normalised (a zeroed
        # decision can change how many options later points have)
        decs = shrink_decisions(scenario_of(best[0]), best[1], kind, opts, max_replays=min(limit, budget.left - 1))
        if decs != best[1]:
            offer(best[0], replay(best[0], decs))

    recorded = {}

    def switches_of_best():
        """The switches of the best so far (one replay per best, remembered)."""
        key = repr(best)
        if key not in recorded:
            if budget.left <= 0:
                return []
            rec = _Recorder(best[1])
            run(rec.observe(scenario_of(best[0])), rec)
            recorded.clear()
            recorded[key] = rec.switches
        return recorded[key]

    def attempt(progs, removed):
        """Try ``progs`` under the candidate schedules; True if one was taken."""
        tried = []

        def one(decs):
            decs = _trim(decs)
            if decs in tried or budget.left <= 0:
                return False
            tried.append(decs)
            return offer(progs, replay(progs, decs))

        if one(best[1]) or one([]):
            return True
        switches = _renumber(switches_of_best(), *removed)
        if switches:
            follow = _Follow(switches)
            if offer(progs, run(follow.observe(scenario_of(progs)), follow)):
                return True
        if best[1] and budget.left > 0:
            try:
                decs = shrink_decisions(scenario_of(progs), best[1], kind, opts, max_replays=min(LOCAL_REPLAYS, budget.left))
            except ScenarioError:
                return False
            if one(decs):
                return True
        return False

    shrink_schedule(DECISION_REPLAYS)
    while budget.left > 0:
        before = workload_size(*best)
        i = len(best[0]) - 1
        while i >= 0 and budget.left > 0 and len(best[0]) > min_cpus:
            if i < len(best[0]):
                attempt(best[0][:i] + best[0][i + 1 :], (i, None))
            i -= 1
        for c in range(len(best[0]) - 1, -1, -1):
            for j in range(len(best[0][c]) - 1, -1, -1):
                if budget.left <= 0:
                    break
                if c < len(best[0]) and j < len(best[0][c]):
                    progs = [list(p) for p in best[0]]
                    del progs[c][j]
                    attempt(progs, (c, j))
        # fewer preemptions make the next round's translations likelier to hold
        shrink_schedule(DECISION_REPLAYS)
        if workload_size(*best) == before:
            break
    return cfg_of(best[0]), best[1]
