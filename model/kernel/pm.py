"""Runtime power management (drivers/base/power/runtime.c, include/linux/pm_runtime.h).

Each device has a :class:`DevPmInfo` (``dev->power``): usage count, runtime
status (``"active"``, ``"resuming"``, ``"suspended"``, ``"suspending"``),
the one pending request of its work item, and its device links to
suppliers.  The functions are the kernel's, step by step:

* ``rpm_resume``/``rpm_suspend``/``rpm_idle`` with the ``RPM_ASYNC``,
  ``RPM_NOWAIT``, ``RPM_GET_PUT``, ``RPM_AUTO`` flags; a synchronous caller
  that finds a suspend or resume of the device in progress waits for it
  (``sched.wait`` on ``dev.power``, ready once the status is stable);
* callbacks for one device are serialised by that status, and a suspend
  only starts while ``usage_count == 0`` (re-checked when the queued work
  runs, as ``rpm_check_suspend_allowed`` does);
* device links with ``DL_FLAG_PM_RUNTIME``: resuming a consumer first
  resumes its suppliers (``pm_runtime_get_sync``) and keeps a usage count on
  each until the consumer has suspended, so a supplier cannot suspend while
  its consumer is active;
* asynchronous requests go to ``pm_wq``, an unbound workqueue: several
  kworker agents (two) run queued work in process context, two devices'
  work at once, but one device's work item never on two workers at once
  (workqueues are non-reentrant).  Time is virtual: an autosuspend delay is
  "until a worker gets to it", a point the scheduler chooses;
* ``might_sleep`` as runtime.c checks it: ``__pm_runtime_resume`` only when
  the device is not ``RPM_ACTIVE`` (``might_sleep_if``), idle and suspend on
  every synchronous call; waiting for a suspend or resume in progress is a
  ``schedule()``, checked too;
* callbacks of a device that is not ``irq_safe`` run with interrupts ON,
  whatever the caller's state: ``__rpm_callback`` drops ``dev->power.lock``
  with ``spin_unlock_irq`` around them (the caller's ``irqsave`` state comes
  back after);
* system sleep as the PM core and runtime.c (v6.17+) do it:
  ``pm_runtime_force_suspend``/``pm_runtime_force_resume`` (the
  ``SYSTEM_SLEEP_PM_OPS`` of every IOMMU driver modelled here),
  ``pm_runtime_barrier``, ``__pm_runtime_disable`` with its check for a
  pending resume, ``pm_runtime_get_noresume`` (``device_prepare``'s
  reference), ``__pm_runtime_set_status`` with the suppliers' references,
  and ``pm_wq`` as the freezable workqueue it is (``WQ_FREEZABLE``,
  kernel/power/main.c): frozen, it starts no work; the device phases
  themselves (dpm order, freezer) are the workload's
  (``model.workloads.op_system_sleep``);
* every change of ``usage_count`` is told to the ``rpm_usage`` hook
  (``(cpu, dev, delta, api, link)``), so that an observer can pair each
  get with its put (``stress.oracles.rpm_usage``).

Model simplifications, all in the conservative direction:

* ``dev->power.lock`` is not a lock here: each entry point is one
  preemption point and then changes the state atomically.
* A device without runtime PM callbacks (``dev.pm_ops`` is None) behaves as
  one whose callbacks return 0 (its links to suppliers still count).
* No runtime_idle callbacks, no parents, no irq_safe devices unless
  ``power.irq_safe`` is set by hand.

A device is anything with ``.name`` and ``.power`` (a :class:`DevPmInfo`);
its callbacks are ``dev.pm_ops.runtime_suspend(dev)`` and
``runtime_resume(dev)`` coroutines.
"""

from __future__ import annotations

from errno import EACCES, EAGAIN, EINPROGRESS, EINVAL

from .cpu import current
from .locks import local_irq_disable, local_irq_enable

__all__ = [
    "driver_pm_callback",
    "RPM_ACTIVE",
    "RPM_RESUMING",
    "RPM_SUSPENDED",
    "RPM_SUSPENDING",
    "RPM_ASYNC",
    "RPM_NOWAIT",
    "RPM_GET_PUT",
    "RPM_AUTO",
    "DL_FLAG_STATELESS",
    "DL_FLAG_PM_RUNTIME",
    "DL_FLAG_RPM_ACTIVE",
    "DevPmInfo",
    "DeviceLink",
    "PmWorkqueue",
    "pm_wq",
    "pm_runtime_enable",
    "pm_runtime_disable",
    "pm_runtime_set_active",
    "pm_runtime_set_suspended",
    "pm_runtime_set_autosuspend_delay",
    "pm_runtime_use_autosuspend",
    "pm_runtime_mark_last_busy",
    "pm_runtime_active",
    "pm_runtime_suspended",
    "pm_runtime_get_if_in_use",
    "pm_runtime_get_if_active",
    "pm_runtime_get",
    "pm_runtime_get_sync",
    "pm_runtime_resume_and_get",
    "pm_runtime_resume",
    "pm_runtime_put",
    "pm_runtime_put_sync",
    "pm_runtime_put_autosuspend",
    "pm_runtime_put_sync_autosuspend",
    "pm_runtime_put_noidle",
    "pm_runtime_idle",
    "pm_request_idle",
    "pm_runtime_suspend",
    "pm_runtime_force_suspend",
    "pm_runtime_force_resume",
    "pm_runtime_get_noresume",
    "pm_runtime_barrier",
    "pm_runtime_need_not_resume",
    "pm_runtime_status_suspended",
    "wait_until",
    "pm_sleep_callback",
    "pm_wq_freeze",
    "pm_wq_thaw",
    "pm_runtime_work",
    "device_link_add",
    "device_link_remove",
    "flush_pm_wq",
]

RPM_ACTIVE = "active"
RPM_RESUMING = "resuming"
RPM_SUSPENDED = "suspended"
RPM_SUSPENDING = "suspending"

# rpmflags (include/linux/pm_runtime.h)
RPM_ASYNC = 0x01
RPM_NOWAIT = 0x02
RPM_GET_PUT = 0x04
RPM_AUTO = 0x08

# enum rpm_request, in the kernel's order (rpm_idle compares them)
RPM_REQ_NONE = 0
RPM_REQ_IDLE = 1
RPM_REQ_SUSPEND = 2
RPM_REQ_AUTOSUSPEND = 3
RPM_REQ_RESUME = 4
_REQ_NAMES = ("none", "idle", "suspend", "autosuspend", "resume")

# include/linux/device.h
DL_FLAG_STATELESS = 1 << 0
DL_FLAG_AUTOREMOVE_CONSUMER = 1 << 1
DL_FLAG_PM_RUNTIME = 1 << 2
DL_FLAG_RPM_ACTIVE = 1 << 3


class DevPmInfo:
    """The runtime-PM part of ``struct dev_pm_info`` (``dev->power``).

    ``ready()`` is what a synchronous caller waits for: no suspend or resume
    of this device in progress.
    """

    __slots__ = (
        "dev",
        "kernel",
        "usage_count",
        "runtime_status",
        "disable_depth",
        "runtime_error",
        "request",
        "request_pending",
        "deferred_resume",
        "use_autosuspend",
        "autosuspend_delay",
        "irq_safe",
        "needs_force_resume",
        "suppliers",
    )

    def __init__(self, kernel, dev):
        self.dev = dev
        self.kernel = kernel
        self.usage_count = 0
        self.runtime_status = RPM_SUSPENDED  # pm_runtime_init()
        self.disable_depth = 1  # until pm_runtime_enable()
        self.runtime_error = 0
        self.request = RPM_REQ_NONE
        self.request_pending = False
        self.deferred_resume = False
        self.use_autosuspend = False
        self.autosuspend_delay = 0
        self.irq_safe = False
        self.needs_force_resume = False
        self.suppliers = []  # DeviceLink, this device the consumer

    def ready(self):
        return self.runtime_status not in (RPM_RESUMING, RPM_SUSPENDING)

    def __repr__(self):
        return f"{self.dev.name}->power({self.runtime_status}, usage={self.usage_count})"


class DeviceLink:
    """``struct device_link``; ``rpm_active`` counts 1 + the supplier references it holds."""

    __slots__ = ("consumer", "supplier", "flags", "rpm_active")

    def __init__(self, consumer, supplier, flags):
        self.consumer = consumer
        self.supplier = supplier
        self.flags = flags
        self.rpm_active = 1

    def __repr__(self):
        return f"link({self.consumer.name} -> {self.supplier.name})"


class PmWorkqueue:
    """``pm_wq`` (``WQ_UNBOUND``): the devices whose work item is queued, and
    ``workers`` kworker agents that run them.

    A device's work that is running is not handed to a second worker (the
    workqueue's non-reentrancy): it stays queued until the first is done.
    Workers are interchangeable, so only the first idle one may take work
    (which kworker runs an item changes nothing but its name): two items run
    at once, without a choice of worker doubling the schedules.
    """

    WORKERS = 2

    def __init__(self, kernel, workers=WORKERS):
        self.kernel = kernel
        self.frozen = False  # freeze_workqueues_begin() .. thaw_workqueues()
        self.queue = []
        self.running = {}  # dev -> the worker running its work item
        self.workers = [_Worker(self, i) for i in range(workers)]
        for w in self.workers:
            kernel.add_agent(w.name, w.run, kind="kworker", daemon=True)

    def next_work(self):
        """The first queued device whose work no worker is running, or None."""
        for dev in self.queue:
            if dev not in self.running:
                return dev
        return None

    def ready(self):
        return not self.frozen and self.next_work() is not None

    def idle(self):
        """No work item running (``freeze_workqueues_busy()`` is false)."""
        return not self.running

    def queue_work(self, dev):
        if dev not in self.queue:
            self.queue.append(dev)

    def __repr__(self):
        return f"pm_wq({', '.join(d.name for d in self.queue)})"


class _Worker:
    """One kworker of ``pm_wq``; ``ready()`` when it is the first idle one and work waits."""

    def __init__(self, wq, index):
        self.wq = wq
        self.index = index
        self.name = "pm_wq" if index == 0 else f"pm_wq/{index}"
        self.busy = False

    def ready(self):
        wq = self.wq
        if not wq.queue or not wq.ready():  # no work waits: the scheduler asks at every point
            return False
        for w in wq.workers[: self.index]:
            if not w.busy:
                return False
        return True

    async def run(self):
        """Wait for work, run ``pm_runtime_work`` for it, again."""
        cpu = current()
        wq = self.wq
        while True:
            await cpu.sched.wait(cpu, self)
            dev = wq.next_work()
            if dev is None:
                return  # woken with nothing to do: the run is over
            wq.queue.remove(dev)
            wq.running[dev] = self
            self.busy = True
            try:
                await pm_runtime_work(dev)
            finally:
                del wq.running[dev]
                self.busy = False

    def __repr__(self):
        return self.name


def pm_wq(kernel):
    """The kernel's runtime-PM workqueue (created, with its agent, on first use)."""
    wq = getattr(kernel, "pm_wq", None)
    if wq is None:
        wq = kernel.pm_wq = PmWorkqueue(kernel)
    return wq


class _Until:
    """What ``sched.wait`` parks on: ready when ``fn()`` is true."""

    __slots__ = ("fn", "what")

    def __init__(self, fn, what):
        self.fn = fn
        self.what = what

    def ready(self):
        return self.fn()

    def __repr__(self):
        return self.what


async def wait_until(fn, what):
    """Park the calling CPU until ``fn()`` is true (a ``wait_event``)."""
    cpu = current()
    cond = None
    while not fn():
        if cond is None:
            cond = _Until(fn, what)
        await cpu.sched.wait(cpu, cond)


async def pm_wq_freeze(kernel):
    """``freeze_workqueues_begin()`` for ``pm_wq`` (``WQ_FREEZABLE``), then wait,
    as ``try_to_freeze_tasks`` does, until no work item of it runs: queued
    requests stay queued, no worker starts one until :func:`pm_wq_thaw`."""
    wq = pm_wq(kernel)
    wq.frozen = True
    await wait_until(wq.idle, "pm_wq (freezing)")


def pm_wq_thaw(kernel):
    """``thaw_workqueues()``: the workers take queued work again."""
    pm_wq(kernel).frozen = False


async def flush_pm_wq(kernel):
    """``flush_workqueue(pm_wq)`` on the calling CPU: run every queued work item now.

    For boot, teardown and unit tests, where no worker agent runs.
    """
    wq = pm_wq(kernel)
    while wq.queue:
        await pm_runtime_work(wq.queue.pop(0))


# -- helpers -----------------------------------------------------------------


def _event(dev, what):
    k = dev.power.kernel
    if k.hooks.event:
        cpu = current()
        for fn in k.hooks.event:
            fn(cpu, "rpm", f"{dev.name}: {what}")


def _usage(dev, delta, api, link=None):
    """``usage_count`` of ``dev`` changed by ``delta`` in ``api``: the ``rpm_usage`` hook.
    ``link`` is the device link on whose behalf a supplier's count moved."""
    k = dev.power.kernel
    if k.hooks.rpm_usage:
        cpu = current()
        for fn in k.hooks.rpm_usage:
            fn(cpu, dev, delta, api, link)


def _update_status(dev, status):
    """``__update_runtime_status``."""
    dev.power.runtime_status = status
    _event(dev, status)
    _power_lock(current(), dev)  # the status changes under dev->power.lock


def _queue_request(dev, req):
    power = dev.power
    power.request = req
    if not power.request_pending:
        power.request_pending = True
        pm_wq(power.kernel).queue_work(dev)
    _event(dev, f"queued {_REQ_NAMES[req]}")


def _cancel_pending(dev):
    """``pm_runtime_cancel_pending``: the queued request becomes a no-op."""
    dev.power.request = RPM_REQ_NONE


def driver_pm_callback(dev, name):
    """The member ``name`` of the bound driver's ``dev_pm_ops`` (``dev.pm_ops``), or None."""
    ops = getattr(dev, "pm_ops", None)
    return getattr(ops, name, None) if ops is not None else None


def _callback(dev, name):
    """``RPM_GET_CALLBACK``: the power domain's (``dev->pm_domain``) if it has one, else the driver's."""
    pd = getattr(dev, "pm_domain", None)
    return getattr(pd.ops, name, None) if pd is not None else driver_pm_callback(dev, name)


async def _wait_stable(cpu, dev):
    """``prepare_to_wait(&dev->power.wait_queue) ... schedule()``."""
    _might_sleep(cpu, "schedule")  # rpm_resume/rpm_suspend waiting for the other transition
    await cpu.sched.wait(cpu, dev.power)


def _might_sleep(cpu, what):
    for fn in cpu.kernel.hooks.might_sleep:
        fn(cpu, what)


def rpm_check_suspend_allowed(dev):
    power = dev.power
    if power.runtime_error:
        return -EINVAL
    if power.disable_depth > 0:
        return -EACCES
    if power.usage_count:
        return -EAGAIN
    # Pending resume requests take precedence over suspends.
    if (power.deferred_resume and power.runtime_status == RPM_SUSPENDING) or (
        power.request_pending and power.request == RPM_REQ_RESUME
    ):
        return -EAGAIN
    if power.runtime_status == RPM_SUSPENDED:
        return 1
    return 0


# -- device links -------------------------------------------------------------


async def rpm_get_suppliers(dev):
    for link in dev.power.suppliers:
        if not link.flags & DL_FLAG_PM_RUNTIME:
            continue
        retval = await __pm_runtime_resume(link.supplier, RPM_GET_PUT, "pm_runtime_get_sync", link)
        # Ignore suppliers with disabled runtime PM.
        if retval < 0 and retval != -EACCES:
            _put_noidle(link.supplier, "pm_runtime_put_noidle", link)
            return retval
        link.rpm_active += 1
    return 0


def pm_runtime_release_supplier(link):
    """Drop the supplier references this link holds (no idle check)."""
    supplier = link.supplier
    while link.rpm_active > 1 and supplier.power.usage_count > 0:
        link.rpm_active -= 1
        supplier.power.usage_count -= 1
        _usage(supplier, -1, "pm_runtime_release_supplier", link)


async def _rpm_put_suppliers(dev, try_to_suspend):
    for link in dev.power.suppliers:
        if link.flags & DL_FLAG_PM_RUNTIME:
            pm_runtime_release_supplier(link)
            if try_to_suspend:
                await rpm_idle(link.supplier, RPM_ASYNC)


async def rpm_suspend_suppliers(dev):
    for link in dev.power.suppliers:
        if link.flags & DL_FLAG_PM_RUNTIME:
            await rpm_idle(link.supplier, RPM_ASYNC)


async def rpm_callback(cb, dev):
    """``__rpm_callback``: suppliers first on resume, dropped after a suspend;
    the callback runs with interrupts on unless the device is ``irq_safe``."""
    power = dev.power
    use_links = bool(power.suppliers)
    if use_links and power.runtime_status == RPM_RESUMING:
        retval = await rpm_get_suppliers(dev)
        if retval:
            await _rpm_put_suppliers(dev, True)
            return retval
    # spin_unlock_irq(&dev->power.lock) around the callback; the caller's
    # spin_unlock_irqrestore() then restores its state (brought forward here).
    toggle = not power.irq_safe and not current().irqs_enabled
    if toggle:
        await local_irq_enable()
    retval = await cb(dev) if cb is not None else 0
    if toggle:
        local_irq_disable()
    if use_links and (
        (power.runtime_status == RPM_SUSPENDING and not retval)
        or (power.runtime_status == RPM_RESUMING and retval)
    ):
        await _rpm_put_suppliers(dev, False)
    return retval


# -- the state machine ----------------------------------------------------------


async def rpm_idle(dev, rpmflags):
    power = dev.power
    retval = rpm_check_suspend_allowed(dev)
    if retval < 0:
        pass  # Conditions are wrong.
    elif power.runtime_status != RPM_ACTIVE:
        retval = -EAGAIN  # Idle notifications are allowed only in the RPM_ACTIVE state.
    elif power.request_pending and power.request > RPM_REQ_IDLE:
        retval = -EAGAIN  # Any pending request other than an idle notification takes precedence.
    if retval:
        return retval
    power.request = RPM_REQ_NONE
    # No runtime_idle callbacks are modelled: "If no callback assume success."
    return await rpm_suspend(dev, rpmflags | RPM_AUTO)


async def rpm_suspend(dev, rpmflags):
    cpu = current()
    power = dev.power
    while True:  # repeat:
        retval = rpm_check_suspend_allowed(dev)
        if retval < 0:
            return retval
        # Synchronous suspends are not allowed in the RPM_RESUMING state.
        if power.runtime_status == RPM_RESUMING and not rpmflags & RPM_ASYNC:
            retval = -EAGAIN
        if retval:
            return retval
        # The autosuspend delay has not expired yet: in virtual time that is
        # "the worker will do it later" (the timer queues an async request).
        if (
            rpmflags & RPM_AUTO
            and power.use_autosuspend
            and not rpmflags & RPM_NOWAIT
            and power.runtime_status != RPM_SUSPENDING
        ):
            _queue_request(dev, RPM_REQ_AUTOSUSPEND)
            return 0
        # Other scheduled or pending requests need to be canceled.
        _cancel_pending(dev)
        if power.runtime_status == RPM_SUSPENDING:
            if rpmflags & (RPM_ASYNC | RPM_NOWAIT):
                return -EINPROGRESS
            await _wait_stable(cpu, dev)  # the other suspend, running in parallel with us
            continue
        break
    if rpmflags & RPM_ASYNC:
        _queue_request(dev, RPM_REQ_AUTOSUSPEND if rpmflags & RPM_AUTO else RPM_REQ_SUSPEND)
        return 0
    _update_status(dev, RPM_SUSPENDING)
    retval = await rpm_callback(_callback(dev, "runtime_suspend"), dev)
    if retval:
        # fail:
        _update_status(dev, RPM_ACTIVE)
        power.deferred_resume = False
        return retval
    _update_status(dev, RPM_SUSPENDED)
    if power.deferred_resume:
        power.deferred_resume = False
        await rpm_resume(dev, 0)
        return -EAGAIN
    if power.suppliers:
        await rpm_suspend_suppliers(dev)
    return 0


async def rpm_resume(dev, rpmflags):
    cpu = current()
    power = dev.power
    while True:  # repeat:
        retval = 0
        if power.runtime_error:
            retval = -EINVAL
        elif power.disable_depth > 0:
            retval = 1 if power.runtime_status == RPM_ACTIVE else -EACCES
        if retval:
            return retval
        # Other scheduled or pending requests need to be canceled.
        power.request = RPM_REQ_NONE
        if power.runtime_status == RPM_ACTIVE:
            return 1
        if power.runtime_status in (RPM_RESUMING, RPM_SUSPENDING):
            if rpmflags & (RPM_ASYNC | RPM_NOWAIT):
                if power.runtime_status == RPM_SUSPENDING:
                    power.deferred_resume = True
                    return -EINPROGRESS if rpmflags & RPM_NOWAIT else 0
                return -EINPROGRESS
            await _wait_stable(cpu, dev)  # the operation carried out in parallel with us
            continue
        break
    if rpmflags & RPM_ASYNC:
        _queue_request(dev, RPM_REQ_RESUME)
        return 0
    _update_status(dev, RPM_RESUMING)
    retval = await rpm_callback(_callback(dev, "runtime_resume"), dev)
    if retval:
        _update_status(dev, RPM_SUSPENDED)
        _cancel_pending(dev)
    else:
        _update_status(dev, RPM_ACTIVE)
    if retval >= 0:
        await rpm_idle(dev, RPM_ASYNC)
    return retval


async def pm_runtime_work(dev):
    """The device's work item, run by the ``pm_wq`` worker."""
    cpu = current()
    await cpu.sched.point(cpu)  # spin_lock_irq(&dev->power.lock)
    _power_lock(cpu, dev)
    power = dev.power
    if not power.request_pending:
        return
    req = power.request
    power.request = RPM_REQ_NONE
    power.request_pending = False
    if req == RPM_REQ_IDLE:
        await rpm_idle(dev, RPM_NOWAIT)
    elif req == RPM_REQ_SUSPEND:
        await rpm_suspend(dev, RPM_NOWAIT)
    elif req == RPM_REQ_AUTOSUSPEND:
        await rpm_suspend(dev, RPM_NOWAIT | RPM_AUTO)
    elif req == RPM_REQ_RESUME:
        await rpm_resume(dev, RPM_NOWAIT)


# -- entry points -------------------------------------------------------------


def _power_lock(cpu, dev):
    """The ordering ``dev->power.lock`` (and the fully ordered usage-count
    atomics) give: everything before on any CPU happens before what follows."""
    for fn in cpu.kernel.hooks.sync:
        fn(cpu, dev.power)


def _drop_usage_count(dev, what):
    """``rpm_drop_usage_count``: the new count, or -EINVAL on underflow."""
    power = dev.power
    if power.usage_count <= 0:
        power.kernel.warn(f"{dev.name}: Runtime PM usage count underflow!")
        return -EINVAL
    power.usage_count -= 1
    _usage(dev, -1, what)
    return power.usage_count


async def __pm_runtime_resume(dev, rpmflags, what, link=None):
    cpu = current()
    # might_sleep_if(): a resume of an active device returns at once
    if not rpmflags & RPM_ASYNC and not dev.power.irq_safe and dev.power.runtime_status != RPM_ACTIVE:
        _might_sleep(cpu, what)
    if rpmflags & RPM_GET_PUT:
        dev.power.usage_count += 1
        _usage(dev, 1, what, link)
    await cpu.sched.point(cpu)  # spin_lock_irqsave(&dev->power.lock)
    _power_lock(cpu, dev)
    return await rpm_resume(dev, rpmflags)


async def __pm_runtime_idle(dev, rpmflags, what):
    cpu = current()
    if rpmflags & RPM_GET_PUT:
        retval = _drop_usage_count(dev, what)
        if retval < 0:
            return retval
        if retval > 0:
            await cpu.sched.point(cpu)
            _power_lock(cpu, dev)
            return 0
    if not rpmflags & RPM_ASYNC and not dev.power.irq_safe:
        _might_sleep(cpu, what)
    await cpu.sched.point(cpu)
    _power_lock(cpu, dev)
    return await rpm_idle(dev, rpmflags)


async def __pm_runtime_suspend(dev, rpmflags, what):
    cpu = current()
    if rpmflags & RPM_GET_PUT:
        retval = _drop_usage_count(dev, what)
        if retval < 0:
            return retval
        if retval > 0:
            await cpu.sched.point(cpu)
            _power_lock(cpu, dev)
            return 0
    if not rpmflags & RPM_ASYNC and not dev.power.irq_safe:
        _might_sleep(cpu, what)
    await cpu.sched.point(cpu)
    _power_lock(cpu, dev)
    return await rpm_suspend(dev, rpmflags)


async def _get_conditional(dev, ign_usage_count, what):
    """``pm_runtime_get_conditional``: never sleeps."""
    cpu = current()
    await cpu.sched.point(cpu)
    _power_lock(cpu, dev)
    power = dev.power
    if power.disable_depth > 0:
        return -EINVAL
    if power.runtime_status != RPM_ACTIVE:
        return 0
    if ign_usage_count or power.usage_count > 0:
        power.usage_count += 1
        _usage(dev, 1, what)
        return 1
    return 0


async def pm_runtime_get_if_in_use(dev):
    """1 (and a reference) if active and in use; 0 otherwise; -EINVAL if disabled."""
    return await _get_conditional(dev, False, "pm_runtime_get_if_in_use")


async def pm_runtime_get_if_active(dev):
    """1 (and a reference) if active, whatever the usage count; else 0."""
    return await _get_conditional(dev, True, "pm_runtime_get_if_active")


async def pm_runtime_get(dev):
    """Async: usage++ and queue a resume; 1 if already active.  Keeps the ref on error."""
    return await __pm_runtime_resume(dev, RPM_GET_PUT | RPM_ASYNC, "pm_runtime_get")


async def pm_runtime_get_sync(dev):
    """Sync resume with a reference (kept even on error).  May sleep."""
    return await __pm_runtime_resume(dev, RPM_GET_PUT, "pm_runtime_get_sync")


async def pm_runtime_resume_and_get(dev):
    """Sync resume and a reference; 0 or a negative errno (then no reference).  May sleep."""
    ret = await __pm_runtime_resume(dev, RPM_GET_PUT, "pm_runtime_resume_and_get")
    if ret < 0:
        _put_noidle(dev, "pm_runtime_resume_and_get")
        return ret
    return 0


async def pm_runtime_resume(dev):
    return await __pm_runtime_resume(dev, 0, "pm_runtime_resume")


async def pm_runtime_put(dev):
    """usage--; at 0 an idle check is queued (then an (auto)suspend)."""
    return await __pm_runtime_idle(dev, RPM_GET_PUT | RPM_ASYNC, "pm_runtime_put")


async def pm_runtime_put_sync(dev):
    return await __pm_runtime_idle(dev, RPM_GET_PUT, "pm_runtime_put_sync")


async def pm_runtime_put_autosuspend(dev):
    """usage--; at 0 an autosuspend is queued for the worker."""
    return await __pm_runtime_suspend(dev, RPM_GET_PUT | RPM_ASYNC | RPM_AUTO, "pm_runtime_put_autosuspend")


async def pm_runtime_put_sync_autosuspend(dev):
    return await __pm_runtime_suspend(dev, RPM_GET_PUT | RPM_AUTO, "pm_runtime_put_sync_autosuspend")


def pm_runtime_put_noidle(dev):
    """``atomic_add_unless(&usage_count, -1, 0)``: no idle check."""
    _put_noidle(dev, "pm_runtime_put_noidle")


def _put_noidle(dev, what, link=None):
    if dev.power.usage_count > 0:
        dev.power.usage_count -= 1
        _usage(dev, -1, what, link)


def pm_runtime_get_noresume(dev):
    """``atomic_inc(&usage_count)``: a reference, no resume (``device_prepare`` takes one)."""
    dev.power.usage_count += 1
    _usage(dev, 1, "pm_runtime_get_noresume")


async def pm_runtime_idle(dev):
    return await __pm_runtime_idle(dev, 0, "pm_runtime_idle")


async def pm_request_idle(dev):
    return await __pm_runtime_idle(dev, RPM_ASYNC, "pm_request_idle")


async def pm_runtime_suspend(dev):
    return await __pm_runtime_suspend(dev, 0, "pm_runtime_suspend")


# -- configuration ----------------------------------------------------------------


def pm_runtime_enable(dev):
    power = dev.power
    pm_wq(power.kernel)
    if power.disable_depth > 0:
        power.disable_depth -= 1
    else:
        power.kernel.warn(f"{dev.name}: Unbalanced pm_runtime_enable!")


async def pm_runtime_disable(dev):
    """``pm_runtime_disable``: ``__pm_runtime_disable(dev, true)``."""
    await __pm_runtime_disable(dev, True)


def _cancel_work(dev):
    """``cancel_work_sync(&dev->power.work)`` of a work item not running: off the queue."""
    power = dev.power
    wq = getattr(power.kernel, "pm_wq", None)
    if wq is not None and dev in wq.queue and dev not in wq.running:
        wq.queue.remove(dev)


async def __pm_runtime_barrier(cpu, dev):
    """``__pm_runtime_barrier``: cancel the pending request, wait for a callback in progress."""
    power = dev.power
    if power.request_pending:
        power.request = RPM_REQ_NONE
        power.request_pending = False
        _cancel_work(dev)
    while not power.ready():
        await _wait_stable(cpu, dev)


async def __pm_runtime_disable(dev, check_resume):
    """``__pm_runtime_disable``: a pending resume request is carried out first
    (``check_resume``: there is I/O to process), then the barrier, then the depth."""
    cpu = current()
    await cpu.sched.point(cpu)  # spin_lock_irq(&dev->power.lock)
    _power_lock(cpu, dev)
    power = dev.power
    if power.disable_depth > 0:
        power.disable_depth += 1
        return
    if check_resume and power.request_pending and power.request == RPM_REQ_RESUME:
        # Prevent suspends and idle notifications from being carried out
        # after we have woken up the device.
        pm_runtime_get_noresume(dev)
        await rpm_resume(dev, 0)
        _put_noidle(dev, "pm_runtime_put_noidle")
    power.disable_depth += 1
    if power.disable_depth == 1:  # if (!dev->power.disable_depth++)
        await __pm_runtime_barrier(cpu, dev)


async def pm_runtime_barrier(dev):
    """``pm_runtime_barrier`` (``device_suspend`` calls it): a pending resume
    request is carried out, other requests cancelled, a transition in
    progress waited for; 1 if the device was resumed."""
    cpu = current()
    pm_runtime_get_noresume(dev)
    await cpu.sched.point(cpu)  # spin_lock_irq(&dev->power.lock)
    _power_lock(cpu, dev)
    power = dev.power
    retval = 0
    if power.request_pending and power.request == RPM_REQ_RESUME:
        await rpm_resume(dev, 0)
        retval = 1
    await __pm_runtime_barrier(cpu, dev)
    _put_noidle(dev, "pm_runtime_put_noidle")
    return retval


async def __pm_runtime_set_status(dev, status):
    """``__pm_runtime_set_status`` (runtime PM disabled, or -EAGAIN): ACTIVE
    takes references on the suppliers first; SUSPENDED drops those the links hold."""
    power = dev.power
    if not (power.runtime_error or power.disable_depth):
        return -EAGAIN
    power.disable_depth += 1  # prevent runtime PM from being enabled meanwhile
    error = 0
    if status == RPM_ACTIVE:
        error = await rpm_get_suppliers(dev)
        if error:
            status = RPM_SUSPENDED
    if power.runtime_status != status:
        _update_status(dev, status)
    if not error:
        power.runtime_error = 0
    if status == RPM_SUSPENDED:
        await _rpm_put_suppliers(dev, True)
    pm_runtime_enable(dev)
    return error


async def pm_runtime_set_active(dev):
    return await __pm_runtime_set_status(dev, RPM_ACTIVE)


async def pm_runtime_set_suspended(dev):
    return await __pm_runtime_set_status(dev, RPM_SUSPENDED)


def pm_runtime_set_autosuspend_delay(dev, delay_ms):
    dev.power.autosuspend_delay = delay_ms


def pm_runtime_use_autosuspend(dev):
    dev.power.use_autosuspend = True


def pm_runtime_mark_last_busy(dev):
    """Time is virtual: the next autosuspend happens when the worker gets to it."""


def pm_runtime_active(dev):
    return dev.power.runtime_status == RPM_ACTIVE or dev.power.disable_depth > 0


def pm_runtime_suspended(dev):
    return dev.power.runtime_status == RPM_SUSPENDED and dev.power.disable_depth == 0


def pm_runtime_status_suspended(dev):
    return dev.power.runtime_status == RPM_SUSPENDED


def pm_runtime_need_not_resume(dev):
    """``pm_runtime_need_not_resume``: nobody but the PM core (``device_prepare``'s
    reference) uses the device (no children here)."""
    return dev.power.usage_count <= 1


async def pm_runtime_force_suspend(dev):
    """``pm_runtime_force_suspend`` (runtime.c, v6.17+): disable runtime PM; if
    the device is not suspended (and not forced already) run its
    ``runtime_suspend`` callback directly (no ``__rpm_callback``: interrupts as
    the caller has them, suppliers untouched).  If nobody else uses it, its
    status becomes SUSPENDED (``pm_runtime_set_suspended``: the links drop
    their references on the suppliers); otherwise its status stays as it was
    (RPM_ACTIVE, with the hardware suspended) and ``needs_force_resume`` is set.
    Runtime PM stays disabled until :func:`pm_runtime_force_resume`."""
    await pm_runtime_disable(dev)
    power = dev.power
    if pm_runtime_status_suspended(dev) or power.needs_force_resume:
        return 0
    cb = _callback(dev, "runtime_suspend")
    ret = await cb(dev) if cb is not None else 0
    if ret:
        pm_runtime_enable(dev)  # err:
        return ret
    if pm_runtime_need_not_resume(dev):
        await pm_runtime_set_suspended(dev)
    else:
        power.needs_force_resume = True
    _event(dev, "force-suspended")
    return 0


async def pm_runtime_force_resume(dev):
    """``pm_runtime_force_resume`` (v6.17+; no smart_suspend): the
    ``runtime_resume`` callback only for a device :func:`pm_runtime_force_suspend`
    left ``needs_force_resume`` (a failure makes it SUSPENDED); then runtime PM
    is enabled again."""
    power = dev.power
    ret = 0
    if power.needs_force_resume:
        cb = _callback(dev, "runtime_resume")
        ret = await cb(dev) if cb is not None else 0
        if ret:
            await pm_runtime_set_suspended(dev)
        else:
            _event(dev, "force-resumed")
    power.needs_force_resume = False
    pm_runtime_enable(dev)
    return ret


def pm_sleep_callback(dev, name):
    """The system-sleep callback ``name`` (``suspend``, ``resume``, ...) of ``dev``,
    as ``device_suspend``/``device_resume`` pick it: the power domain's, else
    the driver's ``dev_pm_ops``; None when there is none (the PM core then
    does nothing for the device in that phase)."""
    pd = getattr(dev, "pm_domain", None)
    cb = getattr(pd.ops, name, None) if pd is not None else None
    return cb if cb is not None else driver_pm_callback(dev, name)


async def device_link_add(consumer, supplier, flags):
    """``device_link_add``: the consumer's runtime PM will hold the supplier."""
    cpu = current()
    _might_sleep(cpu, "device_link_add")  # device_links_write_lock()
    await cpu.sched.point(cpu)
    for link in consumer.power.suppliers:
        if link.supplier is supplier:
            return link
    link = DeviceLink(consumer, supplier, flags)
    consumer.power.suppliers.append(link)
    if flags & DL_FLAG_PM_RUNTIME and flags & DL_FLAG_RPM_ACTIVE:
        await __pm_runtime_resume(supplier, RPM_GET_PUT, "pm_runtime_get_sync", link)
        link.rpm_active += 1
    return link


async def device_link_remove(consumer, supplier):
    """``device_link_remove``: drop what the link holds on the supplier, then idle it."""
    cpu = current()
    _might_sleep(cpu, "device_link_remove")
    await cpu.sched.point(cpu)
    for link in consumer.power.suppliers:
        if link.supplier is supplier:
            consumer.power.suppliers.remove(link)
            if link.flags & DL_FLAG_PM_RUNTIME:
                # pm_runtime_drop_link()
                pm_runtime_release_supplier(link)
                await rpm_idle(supplier, RPM_ASYNC)
            return
