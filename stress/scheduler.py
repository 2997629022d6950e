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

A CPU waiting for a lock is parked with ``cpu.blocked_on`` set: it is not
runnable until the lock is free, but it still takes interrupts if it has them
enabled (a CPU spinning in ``spin_lock`` does).  No option while some CPU has
work left is a ``deadlock``; a CPU past ``max_steps`` points is a
``livelock``.  A violation reported by any checker stops the run.
"""

from __future__ import annotations

import traceback

import outcome
import trio

from model.kernel.core import NULL_SCHED, Cpu, ModelBug, model_stack, set_current
from model.kernel.core import _current as _current_var


def _reset_current(token):
    _current_var.reset(token)

__all__ = ["Scheduler", "Stop", "task_stack"]


def task_stack(task):
    """Model function names of a parked task's coroutine chain, innermost first."""
    out = []
    coro = task.coro if task is not None else None
    while coro is not None:
        frame = getattr(coro, "cr_frame", None)
        if frame is not None:
            mod = frame.f_globals.get("__name__", "")
            if mod.startswith("model"):
                out.append(f"{frame.f_code.co_name}+{frame.f_lineno}")
        coro = getattr(coro, "cr_await", None)
    return tuple(reversed(out))


class Stop(BaseException):
    """Unwinds every CPU task once the run is over (a violation or the end)."""


_EXIT = object()  # wake-up command: the run ended normally
_STOP = object()  # wake-up command: the run was stopped by a violation
_RUN = None  # wake-up command: continue the body


class _Ctl:
    """Engine-private state of one CPU task (``cpu.ctl``)."""

    __slots__ = ("task", "parked", "finished", "daemon", "steps", "body", "fresh")

    def __init__(self, body, daemon):
        self.task = None
        self.parked = False
        self.finished = False
        self.daemon = daemon
        self.steps = 0
        self.body = body
        self.fresh = True  # started but not yet at its first point


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
        kernel.report = self.report

    # -- running one schedule -------------------------------------------------

    async def run(self, bodies):
        """Run CPU ``bodies`` (and the kernel's agents) to the end.

        ``kernel.setup`` runs first and ``kernel.teardown`` last, each on a
        boot CPU alone (no decisions: nothing else can run then).
        """
        k = self.kernel
        if not await self._alone(k.setup, "boot"):
            return
        for body in bodies:
            cpu = k.add_cpu()
            cpu.ctl = _Ctl(body, False)
        for name, kind, body, daemon in k.agents:
            cpu = k.add_cpu(kind, name)
            cpu.ctl = _Ctl(body, daemon)
        for cpu in k.cpus:
            cpu.sched = self
        async with trio.open_nursery() as nursery:
            for cpu in k.cpus:
                nursery.start_soon(self._cpu_main, cpu)
            while not all(c.ctl.parked for c in k.cpus):
                await trio.sleep(0)
            try:
                self._first()
            except Stop:
                pass
        if self.violation is None and await self._alone(k.teardown, "teardown"):
            try:
                for fn in k.hooks.run_end:
                    fn(k)
            except Stop:
                pass

    async def _alone(self, fns, name):
        """Run ``fns`` in order on a CPU of their own; False if that reported a violation."""
        if not fns:
            return True
        cpu = Cpu(self.kernel, -1, "cpu", name)
        cpu.sched = NULL_SCHED
        token = set_current(cpu)
        try:
            for fn in fns:
                await fn()
            for f in self.kernel.hooks.op_end:
                f(cpu, name)
        except Stop:
            return False
        except Exception as exc:
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

    async def _cpu_main(self, cpu):
        set_current(cpu)
        ctl = cpu.ctl
        ctl.task = trio.lowlevel.current_task()
        try:
            cmd = await self._park(cpu)
            await self._obey(cpu, cmd)
            if self.trace is not None:
                self.trace.begin(cpu)
            await ctl.body()
            ctl.fresh = False
            for fn in self.kernel.hooks.op_end:
                fn(cpu, None)
            ctl.finished = True
            if self.trace is not None:
                self.trace.event(cpu, "done", "")
            await self._decide(cpu)  # idle: take interrupts until the end
        except Stop:
            pass
        except Exception as exc:  # the model or driver crashed: a violation
            self._crash(cpu, exc)
        finally:
            ctl.finished = True
            if self.stopping:
                self._wake_all(_STOP)

    def _crash(self, cpu, exc):
        tb = traceback.extract_tb(exc.__traceback__)
        stack = tuple(
            f"{fr.name}+{fr.lineno}"
            for fr in reversed(tb)
            if not fr.filename.endswith(("scheduler.py",)) and "/trio/" not in fr.filename
        )
        kind = "assertion"
        msg = f"{type(exc).__name__}: {exc}" if not isinstance(exc, ModelBug) else str(exc)
        try:
            self.report(kind, f"{cpu!r}: {msg}", stacks={repr(cpu): stack}, cpu=cpu)
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
            if not cpu.hardirq and cpu.blocked_on is None:
                return
        if ctl.steps > self.max_steps:
            self.report(
                "livelock",
                f"{cpu!r} did not finish within {self.max_steps} steps",
                stacks={repr(cpu): model_stack(2)},
                cpu=cpu,
            )
        await self._decide(cpu)

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
        if cur is not None and self._runnable(cur):
            opts.append((cur, None))
        for c in cpus:
            if c is not cur and c.ctl.parked and self._runnable(c):
                opts.append((c, None))
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
        return opts

    @staticmethod
    def _runnable(c):
        # An idle CPU (body done) is runnable only while it runs an IRQ handler.
        if c.ctl.finished and not c.hardirq:
            return False
        b = c.blocked_on
        return b is None or b.ready()

    def _choose(self, cur, opts):
        i = self.chooser.choose(self, cur, opts)
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
        stuck = [c for c in self.kernel.cpus if (not c.ctl.finished or c.hardirq) and not c.ctl.daemon]
        if not stuck:
            for c in self.kernel.cpus:
                c.ctl.finished = True
            self._wake_all(_EXIT)
            raise Stop  # the deciding CPU ends too (a daemon must not see its wait return)
        lines = [f"{c!r} waits for {c.blocked_on!r}" for c in stuck]
        stacks = {repr(c): task_stack(c.ctl.task) for c in stuck if c is not cpu}
        if cpu in stuck:
            stacks[repr(cpu)] = model_stack(2)
        self.report(
            "deadlock",
            "every CPU with work left is blocked: " + "; ".join(lines),
            stacks=stacks,
            cpu=cpu,
        )

    # -- Trio handoff -----------------------------------------------------------

    def _wake(self, c, value):
        c.ctl.parked = False
        self.current = c
        if self.trace is not None and value is None:
            self.trace.switch(c)
        trio.lowlevel.reschedule(c.ctl.task, outcome.Value(value))

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
        """Record the first violation of this run and stop the run."""
        if self.violation is None:
            self.violation = {
                "kind": kind,
                "message": message,
                "splat": splat or message,
                "stacks": {k: list(v) for k, v in (stacks or {}).items()},
                "cpu": repr(cpu) if cpu is not None else None,
                "point": self.points,
                **detail,
            }
            if self.trace is not None:
                self.trace.event(cpu, "violation", f"{kind}: {message}")
        self.stopping = True
        raise Stop
