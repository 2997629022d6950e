"""The controlled scheduler: one Trio task per CPU, exactly one running.

Every preemption point of the model (``await cpu.sched.point(cpu)``) comes
here.  The scheduler lists what may happen next (the options), asks the
chooser for one and records the index (the decision):

* option 0 is "the current CPU keeps running" whenever it can, so a run of
  zeros is the schedule with no preemption;
* then every other runnable CPU or agent, in id order;
* then every pending interrupt line, once per CPU that could take it now
  (interrupts enabled, not already in hard-IRQ context).

A point with a single option records nothing.  Keeping the current CPU is a
plain function return; only a real switch pays for a Trio park/reschedule.
The CPUs' Trio tasks are borrowed for the run from those its Trio run
keeps (:mod:`stress.cputasks`): which task runs which CPU is no part of a
schedule.

A CPU waiting for a lock is parked with ``cpu.blocked_on`` set: it is not
runnable until the lock is handed to it (locks serve their waiters in FIFO
order, ``model.kernel.locks``), but it still takes interrupts if it has them
enabled (a CPU spinning in ``spin_lock`` does).

Fair spinning (CHESS's fair scheduler, Musuvathi & Qadeer, PLDI 2008).  A
CPU that spins says so at a *yield point* (:meth:`Scheduler.relax`: a failed
``spin_trylock``, ``cpu_relax()``).  When CPU t yields, every other CPU that
is runnable now and has not run since t's previous yield (since the start,
for the first) gets priority over t: t is left out of the options while any
of them is runnable, until each has been chosen once.  This is a function of
the run so far, so it replays exactly from the decisions, and no decision is
recorded for it (a point left with one option records nothing).  A switch at
a yield point is not a preemption for the bounded exhaustive search (CHESS
does not count it either).  A yielding CPU therefore cannot starve the CPU
it waits for, under any chooser: a correct back-off loop ends.

No option while some CPU has work left is a ``deadlock``.  A CPU past
``max_steps`` points is a ``livelock``: with fair spinning that means no
fair continuation let it finish (it keeps spinning while every other CPU is
blocked, done, or given its turn after each of its yields), or it spins
without ever yielding (a busy loop without ``cpu_relax()``: the message says
so).  A violation reported by any checker stops the run.

Failure points (fail_nth).  With failure injection on
(``kernel.inject_failures``), an allocation or ``dma_map_single`` made by a
scheduled CPU asks :meth:`Scheduler.fail_point` whether the call fails:
the chooser's ``fail(sched, cpu, call)`` answers 0 (succeed) or 1 (fail),
and the answer is recorded in the decision list like any other decision,
so a replay fails the same calls and shrinking (which pushes decisions
toward 0) drops failures the violation does not need.  A chooser without
``fail`` never fails a call.  With injection off there is no failure point
and nothing is recorded: the decisions are those of a search without it.

A broken scenario is not a finding: a CPU body that is not ``async``, or an
``await`` of a plain call (``await spin_unlock(lock)``), stops every CPU and
:meth:`Scheduler.run` raises :class:`~stress.errors.ScenarioError`.
"""

from __future__ import annotations

import inspect
import linecache
import re

import outcome
import trio

from model.kernel.core import NULL_SCHED, Cpu, ModelBug, model_stack, set_current
from model.kernel.stacks import coro_stack, traceback_stack
from model.kernel.core import _current as _current_var

from .cputasks import borrow
from .errors import EngineError, ScenarioError
from .splat import (
    complete_splat,
    culprit,
    default_splat,
    func,
    held_lock_lines,
    hung_splat,
    oops_splat,
    soft_lockup_splat,
    trace,
)


def fault_injection_lines(injected):
    """What the kernel's fault injection prints (``fail_dump``, lib/fault-inject.c)
    before the bug it led to: one block per injected failure, then a blank line."""
    lines = []
    for f in injected:
        lines += [
            "FAULT_INJECTION: forcing a failure.",
            f"{f['call']} -> {f['result']} in {f['where']} (fail_nth)",
            f"CPU: {f['cpu_id']} PID: 0 Comm: {f['cpu']}",
            "Call trace:",
            *trace(f["stack"]),
            "",
        ]
    return lines


def _failure_stack(call, stack):
    """The stack of a failed call, starting at the call (``dma_map_single`` is
    plumbing to the stack walk, ``alloc_pages`` a primitive it shows)."""
    name = call.split("(", 1)[0]
    if stack and func(stack[0]) == name:
        return list(stack)
    return [name, *stack]


def _reset_current(token):
    _current_var.reset(token)

__all__ = ["Scheduler", "Stop", "task_stack"]


def task_stack(task):
    """The frames of a parked task's coroutine chain, innermost first (as ``model_stack``)."""
    return coro_stack(task.coro) if task is not None else ()


class Stop(BaseException):
    """Unwinds every CPU task once the run is over (a violation or the end)."""


_EXIT = object()  # wake-up command: the run ended normally
_STOP = object()  # wake-up command: the run was stopped by a violation
_RUN = None  # wake-up command: continue the body


def _not_async(what, fn, value):
    """The one-line message for a CPU body (or setup function) that is not async."""
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)
    return f"{what} {name} returned {value!r}, not a coroutine: declare it `async def`"


_AWAIT_TYPE_ERROR = "can't be used in 'await' expression"
_AWAITED_CALL = re.compile(r"await\s+([\w.]+)\s*\(")


def _await_error(exc):
    """A ScenarioError for ``await plain_call()``, or None if ``exc`` is something else.

    The TypeError is raised in the frame that awaits: the last of the traceback
    names the user's file and line.
    """
    if not isinstance(exc, TypeError) or _AWAIT_TYPE_ERROR not in str(exc):
        return None
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return None
    filename, lineno = tb.tb_frame.f_code.co_filename, tb.tb_lineno
    line = linecache.getline(filename, lineno).split(" #", 1)[0].strip()
    m = _AWAITED_CALL.search(line)
    what = m.group(1).rsplit(".", 1)[-1] if m else None
    fix = f"drop the await: {what} is not async" if what else "drop the await: the called function is not async"
    shown = f" `{line}`" if line else ""
    return ScenarioError(f"{filename}:{lineno}:{shown} awaits a plain call ({exc}): {fix}")


class _Ctl:
    """Engine-private state of one CPU task (``cpu.ctl``)."""

    __slots__ = ("task", "parked", "finished", "daemon", "steps", "body", "fresh", "ran", "last_yield", "waitfor", "option")

    def __init__(self, cpu, body, daemon):
        self.option = (cpu, None)  # the option "run this CPU" (made once, not at every point)
        self.task = None
        self.parked = False
        self.finished = False
        self.daemon = daemon
        self.steps = 0
        self.body = body
        self.fresh = True  # started but not yet at its first point
        self.ran = -1  # ``sched.points`` when last chosen to run (-1: never)
        self.last_yield = 0  # ``sched.points`` at its last yield point (0: the start)
        self.waitfor = None  # CPUs that run before this one again (fair spinning), or None


class Scheduler:
    """Runs one schedule of one kernel; ``cpu.sched`` of every CPU."""

    def __init__(self, kernel, chooser, *, max_steps=20_000, trace=None):
        self.kernel = kernel
        self.chooser = chooser
        self.max_steps = max_steps
        self.trace = trace  # a Tracer, or None
        self.current = None
        self.decisions = []
        self.points = 0
        self.violation = None  # (kind, message, detail) of the first report
        self.stopping = False
        self.error = None  # a ScenarioError that stopped the run: raised by run()
        self.yielders = []  # ctl of each CPU with a non-empty ``waitfor`` (fair spinning)
        self.yield_point = -1  # ``points`` of the yield point being decided, if one is
        self.fail_points = 0  # failure points passed (failure injection)
        self.injected = []  # each failure injected: {call, result, cpu, op, where, point, stack}
        self.fast = False  # a fast run (stress.run): the checkers keep no stacks; a report escalates
        self.escalated = False  # a fast run that needs its stacks (run again in full): why (escalate)
        self.fatal = None  # a BaseException a CPU raised (not a finding, not a scenario's error): raised by run()
        self._left = 0  # CPUs of the run not ended yet
        self._joining = None  # the task waiting in _join() for the last of them
        kernel.report = self.report

    # -- running one schedule -------------------------------------------------

    async def run(self, bodies):
        """Run CPU ``bodies`` (and the kernel's agents) to the end.

        ``kernel.setup`` runs first and ``kernel.teardown`` last, each on a
        boot CPU alone (no decisions: nothing else can run then).  Raises
        :class:`~stress.errors.ScenarioError` (after every CPU has stopped)
        if a body is not async or awaits a plain call.
        """
        k = self.kernel
        if not await self.boot():
            return
        for body in bodies:
            cpu = k.add_cpu()
            cpu.ctl = _Ctl(cpu, body, False)
        for name, kind, body, daemon in k.agents:
            cpu = k.add_cpu(kind, name)
            cpu.ctl = _Ctl(cpu, body, daemon)
        for cpu in k.cpus:
            cpu.sched = self
        for cpu, t in zip(k.cpus, await borrow([(cpu, self._cpu_main) for cpu in k.cpus])):
            cpu.ctl.task = t.task
            cpu.ctl.parked = True  # in its first park: runs when chosen
        self._left = len(k.cpus)
        try:
            self._first()
        except Stop:
            pass
        except EngineError as exc:
            self._scenario_error(exc)
            self._wake_all(_STOP)
        except BaseException:  # the tool is broken: its CPUs end before it says so
            self._wake_all(_STOP)
            await self._join()
            raise
        await self._join()
        for cpu in k.cpus:
            cpu.ctl.task = None  # done: the borrowed task is another schedule's next
        if self.fatal is not None:
            raise self.fatal
        if self.error is not None:
            raise self.error
        if self.violation is None and not self.escalated and await self._alone(k.teardown, "teardown"):
            try:
                for fn in k.hooks.run_end:
                    fn(k)
            except Stop:
                pass

    async def boot(self):
        """Run ``kernel.setup`` (once: it is consumed) on the boot CPU; False
        if it reported a violation.  :meth:`run` boots unless this did."""
        k = self.kernel
        fns, k.setup = k.setup, []
        if not fns:
            return self.violation is None
        return await self._alone(fns, "boot")

    async def _alone(self, fns, name):
        """Run ``fns`` in order on a CPU of their own; False if that reported a violation."""
        if not fns:
            return True
        cpu = Cpu(self.kernel, -1, "cpu", name)
        cpu.sched = NULL_SCHED
        token = set_current(cpu)
        try:
            for fn in fns:
                coro = fn()
                if not inspect.isawaitable(coro):
                    raise ScenarioError(_not_async(f"{name} function", fn, coro))
                await coro
            for f in self.kernel.hooks.op_end:
                f(cpu, name)
        except Stop:
            return False
        except (ScenarioError, EngineError):
            raise
        except Exception as exc:
            err = _await_error(exc)
            if err is not None:
                raise err from exc
            self._crash(cpu, exc)
            return False
        finally:
            _reset_current(token)
        return True

    def _first(self):
        opts = self._options(None)
        if not opts:
            self._wake_all(_EXIT)
            return
        nxt, irq = opts[self._choose(None, opts) if len(opts) > 1 else self._only(opts)]
        self._wake(nxt, irq)

    async def _join(self):
        """Wait until every CPU of the run has ended (the last one wakes us).

        Ctrl-C, or a cancellation of the task that runs the schedule, comes
        here: the CPU tasks are Trio system tasks, shielded from
        ``KeyboardInterrupt``, which Trio then raises in the main task.  The
        run stops (each CPU ends at its next point, as after a violation)
        and the exception is raised at once.
        """
        if self._left:
            self._joining = trio.lowlevel.current_task()
            await trio.lowlevel.wait_task_rescheduled(self._interrupted)

    def _interrupted(self, raise_cancel):
        self._joining = None  # the CPUs end on their own, nobody waits for them
        self.stopping = True
        self._wake_all(_STOP)
        return trio.lowlevel.Abort.SUCCEEDED

    async def _cpu_main(self, cpu, cmd):
        """A CPU's job (:mod:`stress.cputasks`): ``cmd`` is what its first
        wake-up said (run its body, take an interrupt first, or stop)."""
        ctl = cpu.ctl
        try:
            await self._obey(cpu, cmd)
            if self.trace is not None:
                self.trace.begin(cpu)
            coro = ctl.body()
            if not inspect.isawaitable(coro):
                raise ScenarioError(_not_async(f"{cpu!r} body", ctl.body, coro))
            await coro
            ctl.fresh = False
            for fn in self.kernel.hooks.op_end:
                fn(cpu, None)
            ctl.finished = True
            if self.trace is not None:
                self.trace.event(cpu, "done", "")
            await self._decide(cpu)  # idle: take interrupts until the end
        except Stop:
            pass
        except (ScenarioError, EngineError) as exc:  # the scenario or the tool is broken: not a finding
            self._scenario_error(exc)
        except Exception as exc:  # the model or driver crashed: a violation
            err = _await_error(exc)
            if err is not None:
                err.__cause__ = exc
                self._scenario_error(err)
            else:
                self._crash(cpu, exc)
        except trio.Cancelled:  # the Trio run is over (stress.cputasks)
            raise
        except BaseException as exc:  # SystemExit and the like: stop the run, raised by run()
            if self.fatal is None:
                self.fatal = exc
            self.stopping = True
        finally:
            ctl.finished = True
            if self.stopping:
                self._wake_all(_STOP)
            self._left -= 1
            if not self._left and self._joining is not None:
                trio.lowlevel.reschedule(self._joining)
                self._joining = None

    def _scenario_error(self, err):
        """Stop every CPU, as a violation does; :meth:`run` raises ``err`` at the end."""
        if self.error is None and self.violation is None:
            self.error = err
        self.stopping = True

    def _crash(self, cpu, exc):
        stack = traceback_stack(exc.__traceback__)
        kind = "assertion"
        msg = f"{type(exc).__name__}: {exc}" if not isinstance(exc, ModelBug) else str(exc)
        try:
            self.report(kind, f"{cpu!r}: {msg}", splat=oops_splat(cpu, exc, msg, stack), stacks={repr(cpu): stack}, cpu=cpu)
        except Stop:
            pass

    # -- the preemption point ---------------------------------------------------

    async def point(self, cpu):
        if self.stopping:
            raise Stop
        self.points += 1
        ctl = cpu.ctl
        ctl.steps += 1
        if ctl.fresh:
            # Being chosen to start already decided that this CPU runs now:
            # parking at the start stands for parking at the first point.
            ctl.fresh = False
            if not cpu.in_handler() and cpu.blocked_on is None:
                return
        if ctl.steps > self.max_steps:
            hint = "" if ctl.last_yield else " (it never yielded: a busy-wait loop needs cpu_relax())"
            stack = model_stack(2)
            message = f"{cpu!r} did not finish within {self.max_steps} steps{hint}"
            self.report(
                "livelock",
                message,
                splat=self._soft_lockup(cpu, message, stack),
                stacks={repr(cpu): stack},
                cpu=cpu,
            )
        await self._decide(cpu)

    def fail_point(self, cpu, call, result):
        """A failure point (``model.kernel.mm.should_fail``): True to fail ``call``.

        The chooser decides (0 succeed, 1 fail); the decision is recorded.
        A failure is remembered with the caller's stack for the report (the
        timeline row ``fail``, ``FAULT_INJECTION`` in the splat).
        """
        self.fail_points += 1
        fail = getattr(self.chooser, "fail", None)
        d = fail(self, cpu, call) if fail is not None else 0
        if d not in (0, 1):
            raise EngineError(f"chooser {self.chooser.name!r} chose {d!r} at failure point {call} (0 or 1)")
        self.decisions.append(d)
        if not d:
            return False
        stack = _failure_stack(call, model_stack(1))
        self.injected.append(
            {
                "call": call,
                "result": result,
                "cpu": repr(cpu),
                "cpu_id": max(cpu.id, 0),
                "op": cpu.op,
                "where": func(culprit(stack)),
                "point": self.points,
                "stack": stack,
            }
        )
        if self.trace is not None:
            self.trace.event(cpu, "fail", f"{call} -> {result} (injected)")
        return True

    async def relax(self, cpu):
        """A yield point: ``cpu`` spins (``cpu_relax()``, a failed ``spin_trylock``).

        Every other CPU that is runnable now and has not run since ``cpu``'s
        previous yield (since the start, for the first) must be chosen before
        ``cpu`` may run again (``_fair``).  Then this is a preemption point
        like any other, except that switching here costs the exhaustive
        search no preemption (``yield_point``).
        """
        ctl = cpu.ctl
        prev = ctl.last_yield
        ctl.last_yield = self.yield_point = self.points + 1  # the point below
        wait = None
        for c in self.kernel.cpus:
            if c is not cpu and c.ctl.ran < prev and c.ctl.parked and self._runnable(c):
                if wait is None:
                    wait = set()
                wait.add(c)
        if wait:
            if ctl.waitfor is None:
                ctl.waitfor = wait
                self.yielders.append(ctl)
            else:
                ctl.waitfor |= wait
        await self.point(cpu)

    async def wait(self, cpu, obj):
        """Park ``cpu`` until ``obj.ready()`` (it is not runnable until then)."""
        cpu.blocked_on = obj
        try:
            await self.point(cpu)
        finally:
            cpu.blocked_on = None

    async def _decide(self, cpu):
        """Decide until ``cpu`` is chosen to continue (or the run ends)."""
        while True:
            opts = self._options(cpu)
            if not opts:
                self._end_or_deadlock(cpu)  # raises Stop
            nxt, irq = opts[self._choose(cpu, opts) if len(opts) > 1 else self._only(opts)]
            if nxt is not cpu:
                self._wake(nxt, irq)
                irq = await self._park(cpu)
                if irq is _EXIT or irq is _STOP:
                    raise Stop
            if irq is None:
                return
            await self._irq(cpu, irq)

    async def _obey(self, cpu, cmd):
        if cmd is _STOP or cmd is _EXIT:
            raise Stop
        if cmd is not None:
            await self._irq(cpu, cmd)
            await self._decide(cpu)

    async def _irq(self, cpu, irq):
        if self.trace is not None:
            self.trace.event(cpu, "irq", f"hard IRQ {irq}")
        await self.kernel.irq.handle(cpu, irq)

    def _options(self, cur):
        opts = []
        cpus = self.kernel.cpus
        for c in cpus:
            # _runnable(c), inlined: this runs for every CPU at every point
            ctl = c.ctl
            if (c is cur or ctl.parked) and (not ctl.finished or c.hardirq > 0 or c.softirq > 0):
                b = c.blocked_on
                if b is None or b.ready():
                    if c is cur:
                        opts.insert(0, ctl.option)  # the running CPU is option 0
                    else:
                        opts.append(ctl.option)
        pending = self.kernel.irq.pending
        if pending:
            for irq in pending:
                for c in cpus:
                    if (
                        c.kind == "cpu"
                        and c.irqs_enabled
                        and not c.hardirq
                        and (c is cur or c.ctl.parked)
                    ):
                        opts.append((c, irq))
        if self.yielders:
            return self._fair(opts)
        return opts

    @staticmethod
    def _fair(opts):
        """Leave out each CPU that must first let a runnable CPU run (fair spinning).

        The "runs before" relation only ever points at a CPU that has not run
        since, so it has no cycle and some CPU is always left.  Interrupt
        deliveries are never left out.
        """
        runnable = {c for c, irq in opts if irq is None}
        out = []
        for o in opts:
            w = o[0].ctl.waitfor
            if o[1] is None and w is not None and not w.isdisjoint(runnable):
                continue
            out.append(o)
        return out if len(out) < len(opts) and any(o[1] is None for o in out) else opts

    @staticmethod
    def _runnable(c):
        # An idle CPU (body done) is runnable only while it runs an IRQ handler.
        if c.ctl.finished and not c.in_handler():
            return False
        b = c.blocked_on
        return b is None or b.ready()

    def _choose(self, cur, opts):
        i = self.chooser.choose(self, cur, opts)
        if not 0 <= i < len(opts):
            raise EngineError(f"chooser {self.chooser.name!r} chose option {i} of {len(opts)} at point {self.points}")
        self.decisions.append(i)
        irq = opts[i][1]
        if irq is not None:
            self.kernel.irq.pending.remove(irq)  # delivered: no longer pending
        return i

    def _only(self, opts):
        if opts[0][1] is not None:
            self.kernel.irq.pending.remove(opts[0][1])
        return 0

    def _end_or_deadlock(self, cpu):
        """No option left: the normal end, or every CPU with work is blocked.

        Never returns: both end the run (``Stop``)."""
        stuck = [c for c in self.kernel.cpus if (not c.ctl.finished or c.in_handler()) and not c.ctl.daemon]
        if not stuck:
            for c in self.kernel.cpus:
                c.ctl.finished = True
            self._wake_all(_EXIT)
            raise Stop  # the deciding CPU ends too (a daemon must not see its wait return)
        lines = [f"{c!r} waits for {c.blocked_on!r}" for c in stuck]
        stacks = {repr(c): task_stack(c.ctl.task) for c in stuck if c is not cpu}
        if cpu in stuck:
            stacks[repr(cpu)] = model_stack(1)  # skips the scheduler's frames: the CPU's own
        self.report(
            "deadlock",
            "every CPU with work left is blocked: " + "; ".join(lines),
            splat=hung_splat(stuck, {c: stacks[repr(c)] for c in stuck}),
            stacks=stacks,
            cpu=cpu,
        )

    # -- Trio handoff -----------------------------------------------------------

    def _wake(self, c, value):
        ctl = c.ctl
        ctl.parked = False
        ctl.ran = self.points
        if self.yielders:
            self._served(c)
        self.current = c
        if self.trace is not None and value is None:
            self.trace.switch(c)
        trio.lowlevel.reschedule(ctl.task, outcome.Value(value))

    def _served(self, c):
        """``c`` runs: no yielding CPU has to wait for it any more."""
        left = []
        for y in self.yielders:
            y.waitfor.discard(c)
            if y.waitfor:
                left.append(y)
            else:
                y.waitfor = None
        self.yielders = left

    def _wake_all(self, value):
        for c in self.kernel.cpus:
            if c.ctl.parked:
                c.ctl.parked = False
                trio.lowlevel.reschedule(c.ctl.task, outcome.Value(value))

    async def _park(self, cpu):
        cpu.ctl.parked = True

        def abort(_):
            cpu.ctl.parked = False
            return trio.lowlevel.Abort.SUCCEEDED

        return await trio.lowlevel.wait_task_rescheduled(abort)

    # -- violations -------------------------------------------------------------

    def report(self, kind, message, *, splat=None, stacks=None, cpu=None, **detail):
        """Record the first violation of this run and stop the run.

        The splat is the checker's own text (a kernel-style one is built here
        for a producer that gives none: :func:`default_splat`), any stack of
        ``stacks`` it lacks, then every CPU's held locks
        (``debug_show_all_locks``).  Text is built only here, once per run.
        """
        if self.fast:
            self.escalate((kind, message))
        if self.violation is None:
            stacks = {k: list(v) for k, v in (stacks or {}).items()}
            shown = cpu if cpu is not None else _current_var.get(None)
            body = splat or default_splat(kind, message, stacks, shown)
            injected = fault_injection_lines(self.injected) if self.injected else []
            self.violation = {
                "kind": kind,
                "message": message,
                "splat": "\n".join(injected + [complete_splat(body, stacks)] + self._all_locks(shown)),
                "stacks": stacks,
                "cpu": repr(cpu) if cpu is not None else None,
                "point": self.points,
                **detail,
            }
            if self.trace is not None:
                self.trace.event(cpu, "violation", f"{kind}: {message}")
        self.stopping = True
        raise Stop

    def escalate(self, why=True):
        """End a fast run that needs the stacks it did not keep: it is about to
        report (``why``: the violation's kind and message; the run in full
        must report that kind too), or lockdep to learn a fact of a graph that
        outlives the run.  :func:`stress.run.run_schedule_async` runs the
        schedule again in full."""
        self.escalated = why
        self.stopping = True
        raise Stop

    def _soft_lockup(self, cpu, message, stack):
        """``watchdog: BUG: soft lockup``, with the other CPUs' stacks (``NMI backtrace``)."""
        others = [
            (c, task_stack(c.ctl.task))
            for c in self.kernel.cpus
            if c is not cpu and c.ctl is not None and c.ctl.task is not None and not c.ctl.finished
        ]
        return soft_lockup_splat(cpu, self.max_steps, message, stack, others)

    def _all_locks(self, cpu):
        """``debug_show_all_locks()``: the locks each CPU holds now, in CPU order.

        From lockdep's held lists when it is attached (they name where each
        lock was taken), else from the CPUs' own lists of held locks.
        """
        k = self.kernel
        show = None
        for obs in k.observers:
            show = getattr(obs, "show_held_locks", None)
            if show is not None:
                break
        cpus = list(k.cpus)
        if cpu is not None and cpu not in cpus:
            cpus.insert(0, cpu)  # boot or teardown
        lines = ["", "Showing all locks held in the system:"]
        n = len(lines)
        for c in cpus:
            lines += show(c) if show is not None else held_lock_lines(c)
        if len(lines) == n:
            lines.append("no locks held by any CPU.")
        return lines + ["", "=" * 45]
