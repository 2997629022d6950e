"""Runtime PM as drivers/base/power/runtime.c does it: when it may sleep, the
IRQ state of its callbacks, and pm_wq's several workers."""

import stress
from model.kernel import SpinLock, spin_lock_irqsave, spin_unlock_irqrestore
from model.kernel.locks import irqs_disabled
from model.kernel.pm import (
    RPM_ACTIVE,
    DevPmInfo,
    pm_runtime_enable,
    pm_runtime_get_sync,
    pm_runtime_put,
    pm_runtime_put_noidle,
    pm_runtime_resume_and_get,
)


class Dev:
    """A device with runtime-PM callbacks that log what they saw."""

    def __init__(self, kernel, name, log, active=False, irq_safe=False):
        self.name = name
        self.power = DevPmInfo(kernel, self)
        self.power.irq_safe = irq_safe
        self.pm_ops = self
        self.log = log
        if active:
            self.power.runtime_status = RPM_ACTIVE  # pm_runtime_set_active() in probe
        pm_runtime_enable(self)

    async def runtime_suspend(self, dev):
        self.log.append((self.name, "suspend begin", irqs_disabled()))
        await stress_point()
        self.log.append((self.name, "suspend end", irqs_disabled()))
        return 0

    async def runtime_resume(self, dev):
        self.log.append((self.name, "resume", irqs_disabled()))
        return 0


async def stress_point():
    """One preemption point inside a callback (a register access would be one)."""
    from model.kernel.cpu import current

    cpu = current()
    await cpu.sched.point(cpu)


def _get_under_irqsave(active):
    def scenario(kernel):
        lock, log = SpinLock("drv->lock"), []
        dev = Dev(kernel, "iommu0", log, active=active)

        async def cpu0():
            flags = await spin_lock_irqsave(lock)
            await pm_runtime_get_sync(dev)
            pm_runtime_put_noidle(dev)
            await spin_unlock_irqrestore(lock, flags)

        return [cpu0]

    return scenario


def test_resume_of_an_active_device_does_not_sleep():
    """``might_sleep_if(... && runtime_status != RPM_ACTIVE)``: clean when active."""
    r = stress.explore(_get_under_irqsave(active=True), strategy="pct", schedules=50, seed=0)
    assert not r.found, [v.message for v in r.violations]


def test_resume_of_a_suspended_device_under_a_spinlock_sleeps():
    r = stress.explore(_get_under_irqsave(active=False), strategy="pct", schedules=50, seed=0)
    assert [v.kind for v in r.violations] == ["sleep-in-atomic"]
    assert "pm_runtime_get_sync" in r.violations[0].message


def _callback_irq_state(irq_safe):
    seen = []

    def scenario(kernel):
        log = []
        seen.append(log)
        dev = Dev(kernel, "iommu0", log, irq_safe=irq_safe)

        async def cpu0():
            await pm_runtime_resume_and_get(dev)
            log.append(("caller", "after", irqs_disabled()))

        return [cpu0]

    return scenario, seen


def test_callbacks_run_with_interrupts_on_unless_irq_safe():
    """``__rpm_callback``: ``spin_unlock_irq(&dev->power.lock)`` around the callback."""
    scenario, seen = _callback_irq_state(irq_safe=False)
    assert not stress.explore(scenario, strategy="pct", schedules=1, seed=0, checkers=[]).found
    assert ("iommu0", "resume", False) in seen[-1] and seen[-1][-1] == ("caller", "after", False)
    scenario, seen = _callback_irq_state(irq_safe=True)
    stress.explore(scenario, strategy="pct", schedules=1, seed=0, checkers=[])
    assert ("iommu0", "resume", False) in seen[-1]  # the caller's state: irqs were on


def test_a_callback_under_an_irq_safe_lock_turns_interrupts_on():
    """A resume from under ``spin_lock_irqsave`` runs the callback with
    interrupts ON: with lockdep, the lock held across it is HARDIRQ-ON."""
    logs = []

    def scenario(kernel):
        lock, log = SpinLock("drv->lock"), []
        logs.append(log)
        dev = Dev(kernel, "iommu0", log)

        async def cpu0():
            flags = await spin_lock_irqsave(lock)
            await pm_runtime_resume_and_get(dev)
            log.append(("caller", "after", irqs_disabled()))
            await spin_unlock_irqrestore(lock, flags)

        return [cpu0]

    stress.explore(scenario, strategy="pct", schedules=1, seed=0, checkers=[])
    assert ("iommu0", "resume", False) in logs[-1]  # interrupts on inside the callback
    assert logs[-1][-1] == ("caller", "after", True)  # and off again for the caller


def _two_devices(kernel, log):
    a, b = Dev(kernel, "a", log, active=True), Dev(kernel, "b", log, active=True)

    async def cpu0():
        for dev in (a, b):
            await pm_runtime_resume_and_get(dev)
            await pm_runtime_put(dev)  # usage 0: an async idle -> suspend on pm_wq

    return [cpu0]


def test_pm_wq_runs_two_devices_work_at_once():
    """pm_wq is unbound: two devices' suspends can overlap (not with one worker)."""
    logs = []

    def scenario(kernel):
        logs.append([])
        return _two_devices(kernel, logs[-1])

    stress.explore(scenario, strategy="random", schedules=200, seed=0, checkers=[])
    overlapped = 0
    for log in logs:
        events = [(name, what) for name, what, _ in log if "suspend" in what]
        if ("a", "suspend begin") in events and ("b", "suspend begin") in events:
            a0, a1 = events.index(("a", "suspend begin")), events.index(("a", "suspend end"))
            b0 = events.index(("b", "suspend begin"))
            overlapped += a0 < b0 < a1
    assert overlapped >= 5, overlapped


def test_one_devices_work_never_runs_on_two_workers():
    """Workqueues are non-reentrant: a device's work queued again while it
    runs waits for the running one."""
    logs = []

    def scenario(kernel):
        log = []
        logs.append(log)
        dev = Dev(kernel, "a", log, active=True)

        async def cpu(n):
            for _ in range(n):
                await pm_runtime_resume_and_get(dev)
                await pm_runtime_put(dev)

        return [lambda: cpu(2), lambda: cpu(2)]

    stress.explore(scenario, strategy="random", schedules=300, seed=0, checkers=[])
    suspends = 0
    for log in logs:
        depth = 0
        for _, what, _ in log:
            if what == "suspend begin":
                depth += 1
                suspends += 1
                assert depth == 1, log
            elif what == "suspend end":
                depth -= 1
    assert suspends > 0
