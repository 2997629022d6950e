"""Splats read like the kernel's: each producer's text against a golden file,
and the kernel's own wording checked on its own.

Every scenario below triggers one splat on a fixed schedule.  Its text is
compared with ``tests/golden/splats/NAME.txt``; ``UPDATE_GOLDEN=1`` rewrites
the files (then read the diff).  The frames name lines of this file: the
scenarios come first so that an edit to the tests below moves none of them.
"""

import os

import pytest

from model.iommu.events import iommu_event
from model.kernel import (
    GFP_ATOMIC,
    GFP_KERNEL,
    GFP_KERNEL_ACCOUNT,
    IRQ_HANDLED,
    Mutex,
    Shared,
    SpinLock,
    alloc_pages,
    current,
    free_pages,
    kfree,
    kmalloc,
    mutex_lock,
    mutex_unlock,
    raise_irq,
    request_irq,
    schedule_point,
    spin_lock,
    spin_lock_irqsave,
    spin_unlock,
    spin_unlock_irqrestore,
)
from model.kernel.dma import DMA_BIT_MASK, DMA_TO_DEVICE, dma_map_single
from stress.examples import abba
from stress.report import report_text
from stress.run import replay_decisions
from stress.soak.signature import signature

IRQ = 9


# -- scenarios (keep them first: the golden files name their lines) ---------------------


def abc_cycle(kernel):
    a, b, c = SpinLock("lock_a"), SpinLock("lock_b"), SpinLock("lock_c")

    def take(x, y):
        async def body():
            await spin_lock(x)
            await spin_lock(y)
            spin_unlock(y)
            spin_unlock(x)

        return body

    return [take(a, b), take(b, c), take(c, a)]


def mutex_under_spinlock(kernel):
    lock, m = SpinLock("dev->lock"), Mutex("dev->mutex")
    other = SpinLock("other->lock")
    cell = Shared("dev->state", 0)

    async def holder():
        await spin_lock(other)
        await cell.load()
        spin_unlock(other)

    async def sleeper():
        flags = await spin_lock_irqsave(lock)
        await mutex_lock(m)
        mutex_unlock(m)
        await spin_unlock_irqrestore(lock, flags)

    return [holder, sleeper]


def racy_flag(kernel):
    flag = Shared("dev->flag", 0)

    async def dev_set_flag():
        await flag.store(1)

    async def dev_poll_flag():
        await flag.load()

    return [dev_set_flag, dev_poll_flag]


def _irq_takes(kernel, lock):
    async def handler(irq, dev_id):
        await spin_lock(lock)
        spin_unlock(lock)
        return IRQ_HANDLED

    request_irq(kernel, IRQ, handler, 0, "dev", None)


async def _irq_now(kernel):
    """Raise the IRQ; the schedule's decision 1 delivers it at the point below."""
    await schedule_point()  # a CPU's first point decides nothing
    raise_irq(kernel, IRQ)
    await schedule_point()


def irq_then_irqs_on(kernel):
    lock = SpinLock("dev->lock")
    _irq_takes(kernel, lock)

    async def cpu0():
        await _irq_now(kernel)
        await spin_lock(lock)
        spin_unlock(lock)

    return [cpu0]


def safe_took_unsafe(kernel):
    safe, mid, unsafe = SpinLock("dev->irq_lock"), SpinLock("dev->list_lock"), SpinLock("dev->cfg_lock")
    _irq_takes(kernel, safe)

    async def cpu0():
        flags = await spin_lock_irqsave(safe)
        await spin_lock(mid)
        spin_unlock(mid)
        await spin_unlock_irqrestore(safe, flags)
        flags = await spin_lock_irqsave(mid)
        await spin_lock(unsafe)
        spin_unlock(unsafe)
        await spin_unlock_irqrestore(mid, flags)
        await spin_lock(unsafe)  # HARDIRQ-ON
        spin_unlock(unsafe)
        await _irq_now(kernel)  # safe becomes IN-HARDIRQ: it reaches unsafe through mid

    return [cpu0]


def new_safe_to_unsafe_order(kernel):
    safe, unsafe = SpinLock("dev->irq_lock"), SpinLock("dev->cfg_lock")
    _irq_takes(kernel, safe)

    async def cpu0():
        await _irq_now(kernel)  # safe is IN-HARDIRQ
        await spin_lock(unsafe)  # unsafe is HARDIRQ-ON
        spin_unlock(unsafe)
        flags = await spin_lock_irqsave(safe)
        await spin_lock(unsafe)
        spin_unlock(unsafe)
        await spin_unlock_irqrestore(safe, flags)

    return [cpu0]


def recursive(kernel):
    lock = SpinLock("dev->lock")

    async def cpu0():
        await spin_lock(lock)
        await spin_lock(lock)

    return [cpu0]


def unbalanced_unlock(kernel):
    lock = SpinLock("dev->lock")

    async def cpu0():
        spin_unlock(lock)

    return [cpu0]


def returns_locked(kernel):
    lock = SpinLock("dev->lock")

    async def cpu0():
        await spin_lock(lock)

    return [cpu0]


def vsi_iommu_domain_free(domain):
    current().kernel.warn(f"vsi_iommu_domain_free({domain}): WARN_ON(!list_empty(&vsi_domain->iommus))")


def warns(kernel):
    async def cpu0():
        vsi_iommu_domain_free("dma-domain0")

    return [cpu0]


def vsi_iommu_map(domain):
    return domain.pgtable


def null_deref(kernel):
    async def cpu0():
        vsi_iommu_map(None)

    return [cpu0]


def double_kfree(kernel):
    async def cpu0():
        obj = await kmalloc(64, GFP_KERNEL, tag="vsi_domain")
        kfree(obj)
        kfree(obj)

    return [cpu0]


async def _map_on_behalf(gfp):
    info = {"domain": None, "iova": 0, "paddr": 0, "size": 4096, "prot": 3, "gfp": GFP_KERNEL_ACCOUNT, "ret": None}
    iommu_event("map_begin", info)
    page = await alloc_pages(gfp, tag="pt")
    iommu_event("map_end", dict(info, ret=0))
    free_pages(page)


def gfp_dropped(kernel):
    async def cpu0():
        await _map_on_behalf(GFP_ATOMIC)

    return [cpu0]


class _Vpu:
    name = "vpu0"
    dma_mask = DMA_BIT_MASK(32)


def dma_above_mask(kernel):
    async def cpu0():
        page = await alloc_pages(GFP_KERNEL, tag="dt")
        await dma_map_single(_Vpu(), page, 4096, DMA_TO_DEVICE)

    return [cpu0]


def spin(kernel):
    lock = SpinLock("dev->lock")
    busy = Shared("dev->busy", 1)

    async def waiter():
        while await busy.load():
            pass

    async def holder():
        await spin_lock(lock)
        await busy.load()
        spin_unlock(lock)

    return [holder, waiter]


def leaks(kernel):
    async def teardown():
        pass

    kernel.add_teardown(teardown)

    async def cpu0():
        await kmalloc(128, GFP_KERNEL, tag="vsi_domain")

    return [cpu0]


# -- the table: name -> (scenario, decisions, options, kind) -----------------------------

NO_LOCKDEP = {"checkers": ["race"]}

CASES = {
    "circular-2": (abba, [], {}, "lock-inversion"),
    "circular-3": (abc_cycle, [], {}, "lock-inversion"),
    "sleep-in-atomic": (mutex_under_spinlock, [0, 1], {}, "sleep-in-atomic"),
    "data-race": (racy_flag, [], {}, "data-race"),
    "inconsistent-lock-state": (irq_then_irqs_on, [1], {}, "irq-lock-inversion"),
    "irq-inversion": (safe_took_unsafe, [1], {}, "irq-lock-inversion"),
    "safe-to-unsafe": (new_safe_to_unsafe_order, [1], {}, "irq-lock-inversion"),
    "recursive-locking": (recursive, [], {}, "recursive-locking"),
    "bad-unlock": (unbalanced_unlock, [], {}, "bad-unlock"),
    "lock-held-at-exit": (returns_locked, [], {}, "lock-held-at-exit"),
    "assertion": (warns, [], {}, "assertion"),
    "crash": (null_deref, [], {}, "assertion"),
    "double-free": (double_kfree, [], {}, "invalid-access"),
    "gfp": (gfp_dropped, [], {}, "gfp-accounting-dropped"),
    "dma32": (dma_above_mask, [], {}, "dma32-violation"),
    "deadlock": (abba, [0, 1], NO_LOCKDEP, "deadlock"),
    "livelock": (spin, [0, 1], {"max_steps": 20}, "livelock"),
    "leak": (leaks, [], {}, "leak"),
}

GOLDEN = os.path.join(os.path.dirname(__file__), "golden", "splats")


def violation(name):
    scenario, decisions, opts, kind = CASES[name]
    out = replay_decisions(scenario, decisions, **opts)
    assert out.kind == kind, out.violation
    return out.violation


@pytest.fixture(scope="module")
def splats():
    return {name: violation(name) for name in CASES}


# -- golden files ------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(CASES))
def test_splat_matches_golden(name, splats):
    text = splats[name]["splat"] + "\n"
    path = os.path.join(GOLDEN, f"{name}.txt")
    if os.environ.get("UPDATE_GOLDEN"):
        os.makedirs(GOLDEN, exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    with open(path, encoding="utf-8") as f:
        expected = f.read()
    assert text == expected, f"{name}: the splat changed (UPDATE_GOLDEN=1 rewrites {path})"


def test_the_same_find_gives_the_same_bytes(splats):
    for name in ("circular-3", "data-race", "crash", "deadlock"):
        assert violation(name)["splat"] == splats[name]["splat"]


# -- every splat is complete on its own ---------------------------------------------------


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_stack_is_in_the_splat(name, splats):
    v = splats[name]
    for label, frames in v["stacks"].items():
        for fr in frames:
            assert fr in v["splat"], f"{name}: {label}: {fr!r} is not in the splat"


@pytest.mark.parametrize("name", sorted(CASES))
def test_report_text_prints_no_stack_twice(name, splats):
    v = splats[name]
    report = {
        "tool": "0",
        "target": {"scenario": f"tests.test_splat_format:{name}"},
        "strategy": "replay",
        "seed": 0,
        "schedule": 0,
        "decisions": [],
        "preemptions": 0,
        "violation": v,
        "timeline": [],
    }
    text = report_text(report)
    assert v["splat"] in text
    for label in v["stacks"]:
        assert f"\n{label}:\n" not in text.split(v["splat"], 1)[1], f"{name}: the stack {label!r} printed again"


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_splat_ends_with_every_cpus_locks(name, splats):
    tail = splats[name]["splat"].split("\n\nShowing all locks held in the system:\n", 1)
    assert len(tail) == 2, name
    assert tail[1].endswith("\n\n" + "=" * 45)


# -- the kernel's wording ------------------------------------------------------------------


def lines(splats, name):
    return splats[name]["splat"].splitlines()


def test_circular_locking_header(splats):
    s = lines(splats, "circular-2")
    title = "WARNING: possible circular locking dependency detected"
    assert s[:3] == ["=" * len(title), title, "-" * len(title)]
    assert s[3] == "CPU1 is trying to acquire lock:"
    assert s[4].startswith("(&lock_a){+.+.}-{3:3}, at: cpu1 (stress/examples.py:")
    text = splats["circular-2"]["splat"]
    assert "\nbut task is already holding lock:\n(&lock_b)" in text
    assert "\nwhich lock already depends on the new lock.\n\n\nthe existing dependency chain (in reverse order) is:\n\n-> #1 (&lock_b)" in text
    assert "\n-> #0 (&lock_a){+.+.}-{3:3}:\n       spin_lock\n" in text
    assert "Chain exists of" not in text
    assert (
        " Possible unsafe locking scenario:\n\n"
        "       CPU0                    CPU1\n"
        "       ----                    ----\n"
        "  lock(&lock_b);\n"
        "                               lock(&lock_a);\n"
        "                               lock(&lock_b);\n"
        "  lock(&lock_a);\n\n"
        " *** DEADLOCK ***\n\n"
        "1 lock held by CPU1:\n"
        " #0: (&lock_b){+.+.}-{3:3}, at: cpu1 (stress/examples.py:"
    ) in text
    assert "\n\nstack backtrace:\nCPU: 1 PID: 0 Comm: CPU1\nCall trace:\n spin_lock\n" in text


def test_circular_chain_of_three_names_source_parent_target(splats):
    text = splats["circular-3"]["splat"]
    # CPU2 holds lock_c and takes lock_a, which reaches lock_c through lock_b
    assert "\n-> #2 (&lock_c){+.+.}-{3:3}:\n" in text and "\n-> #1 (&lock_b)" in text and "\n-> #0 (&lock_a)" in text
    assert (
        "other info that might help us debug this:\n\n"
        "Chain exists of:\n"
        "  &lock_a --> &lock_b --> &lock_c\n\n"
        " Possible unsafe locking scenario:\n\n"
        "       CPU0                    CPU1\n"
        "       ----                    ----\n"
        "  lock(&lock_c);\n"
        "                               lock(&lock_b);\n"
        "                               lock(&lock_c);\n"
        "  lock(&lock_a);\n\n"
        " *** DEADLOCK ***\n"
    ) in text


def test_sleeping_function_called_from_invalid_context(splats):
    s = lines(splats, "sleep-in-atomic")
    assert s[0].startswith("BUG: sleeping function called from invalid context at tests/test_splat_format.py:")
    assert s[1] == "sleeping call: mutex_lock"
    assert s[2] == "in_atomic(): 1, irqs_disabled(): 1, non_block: 0, pid: 0, name: CPU1"
    assert s[3] == "preempt_count: 1, expected: 0"
    assert s[4] == "1 lock held by CPU1:"
    assert s[5].startswith(" #0: (&dev->lock){....}-{3:3}, at: sleeper (tests/test_splat_format.py:")
    text = splats["sleep-in-atomic"]["splat"]
    assert "\nCPU: 1 PID: 0 Comm: CPU1\nCall trace:\n mutex_lock\n sleeper (tests/test_splat_format.py:" in text
    # where the sleep was made is the FILE:LINE of the title
    where = s[0].rsplit(" at ", 1)[1]
    assert f" sleeper ({where})" in text
    # CPU0 was preempted holding its lock: the system's locks name it
    assert "Showing all locks held in the system:\n1 lock held by CPU0:\n #0: (&other->lock)" in text


def test_kcsan_data_race(splats):
    v = splats["data-race"]
    s = v["splat"].splitlines()
    assert s[0] == "=" * 66 and s[-1] == "=" * 45
    # KCSAN sorts the two functions; the find's signature names them the same way
    assert s[1] == "BUG: KCSAN: data-race in dev_poll_flag / dev_set_flag"
    assert signature(v) == "data-race in dev_poll_flag / dev_set_flag"
    text = v["splat"]
    # the earlier access first, each stack once
    assert "\n\nwrite to dev->flag by CPU0:\n dev_set_flag (tests/test_splat_format.py:" in text
    assert "\n\nread to dev->flag by CPU1:\n dev_poll_flag (tests/test_splat_format.py:" in text
    assert text.index("write to dev->flag") < text.index("read to dev->flag")
    assert "\n\nvalue changed: 0x0 -> 0x1\n\nReported by Kernel Concurrency Sanitizer on:\nCPU: 1 PID: 0 Comm: CPU1\n" + "=" * 66 in text
    assert text.count("dev_set_flag (tests/") == 1 and text.count("dev_poll_flag (tests/") == 1


def test_inconsistent_lock_state(splats):
    s = lines(splats, "inconsistent-lock-state")
    title = "WARNING: inconsistent lock state"
    assert s[:3] == ["=" * len(title), title, "-" * len(title)]
    assert s[3] == "inconsistent {IN-HARDIRQ-W} -> {HARDIRQ-ON-W} usage."
    assert s[4] == "CPU0 [HC0[0]:SC0[0]:HE1:SE1] takes:"
    assert s[5].startswith("(&dev->lock){?...}-{3:3}, at: cpu0 (tests/test_splat_format.py:")
    assert s[6] == "{IN-HARDIRQ-W} state was registered at:"
    assert s[7:9] == ["  spin_lock", s[8]] and s[8].startswith("  handler (tests/test_splat_format.py:")
    text = splats["inconsistent-lock-state"]["splat"]
    assert "\n       CPU0\n       ----\n  lock(&dev->lock);\n  <Interrupt>\n    lock(&dev->lock);\n\n *** DEADLOCK ***\n" in text


def test_irq_lock_inversion(splats):
    s = lines(splats, "irq-inversion")
    title = "WARNING: possible irq lock inversion dependency detected"
    assert s[:3] == ["=" * len(title), title, "-" * len(title)]
    assert s[3] == "CPU0 just changed the state of lock:"
    assert s[4].startswith("(&dev->irq_lock){-...}-{3:3}, at: handler (tests/test_splat_format.py:")
    assert s[5] == "but this lock took another, HARDIRQ-unsafe lock in the past:"
    assert s[6] == " (&dev->cfg_lock){+.+.}-{3:3}"
    text = splats["irq-inversion"]["splat"]
    assert "\n\nand interrupts could create inverse lock ordering between them.\n\n" in text
    assert (
        "Chain exists of:\n"
        "  &dev->irq_lock --> &dev->list_lock --> &dev->cfg_lock\n\n"
        " Possible interrupt unsafe locking scenario:\n\n"
        "       CPU0                    CPU1\n"
        "       ----                    ----\n"
        "  lock(&dev->cfg_lock);\n"
        "                               local_irq_disable();\n"
        "                               lock(&dev->irq_lock);\n"
        "                               lock(&dev->list_lock);\n"
        "  <Interrupt>\n"
        "    lock(&dev->irq_lock);\n\n"
        " *** DEADLOCK ***\n"
    ) in text
    assert "\nthe shortest dependencies between 2nd lock and 1st lock:\n  -> (&dev->cfg_lock){+.+.}-{3:3} {\n     HARDIRQ-ON-W at:\n" in text


def test_hardirq_safe_to_unsafe_lock_order(splats):
    s = lines(splats, "safe-to-unsafe")
    assert s[:3] == ["=" * 53, "WARNING: HARDIRQ-safe -> HARDIRQ-unsafe lock order detected", "-" * 53]
    assert s[3] == "CPU0 [HC0[0]:SC0[0]:HE0:SE1] is trying to acquire:"
    text = splats["safe-to-unsafe"]["splat"]
    assert "\nwhich would create a new lock dependency:\n (&dev->irq_lock){-...}-{3:3} -> (&dev->cfg_lock){+.+.}-{3:3}\n" in text
    assert "\nbut this new dependency connects a HARDIRQ-irq-safe lock:\n (&dev->irq_lock){-...}-{3:3}\n\n... which became HARDIRQ-irq-safe at:\n  spin_lock\n" in text
    assert "\nto a HARDIRQ-irq-unsafe lock:\n (&dev->cfg_lock){+.+.}-{3:3}\n\n... which became HARDIRQ-irq-unsafe at:\n...\n  spin_lock\n" in text
    assert "\nthe dependencies between the lock to be acquired\n and HARDIRQ-irq-unsafe lock:\n" in text


def test_recursive_locking_bad_unlock_and_locks_at_exit(splats):
    s = lines(splats, "recursive-locking")
    assert s[:3] == ["=" * 44, "WARNING: possible recursive locking detected", "-" * 44]
    assert "\n\n May be due to missing lock nesting notation\n\n" in splats["recursive-locking"]["splat"]
    s = lines(splats, "bad-unlock")
    assert s[:4] == ["=" * 37, "WARNING: bad unlock balance detected!", "-" * 37, "CPU0 is trying to release lock (&dev->lock) at:"]
    assert s[4:6] == [s[4], "but there are no more locks to release!"] and s[4].startswith("cpu0 (tests/")
    s = lines(splats, "lock-held-at-exit")
    assert s[:3] == ["=" * 48, "WARNING: lock held when returning to user space!", "-" * 48]
    assert s[3] == "CPU0 is leaving the kernel with locks still held!"


def test_warn(splats):
    s = lines(splats, "assertion")
    assert s[0] == "------------[ cut here ]------------"
    assert s[1].startswith("WARNING: CPU: 0 PID: 0 at tests/test_splat_format.py:")
    assert s[1].endswith(" vsi_iommu_domain_free")
    assert s[2] == "vsi_iommu_domain_free(dma-domain0): WARN_ON(!list_empty(&vsi_domain->iommus))"
    assert s[3:5] == ["CPU: 0 PID: 0 Comm: CPU0", "Call trace:"]
    assert "---[ end trace 0000000000000000 ]---" in s
    for name in ("gfp", "dma32"):
        s = lines(splats, name)
        assert s[0] == "------------[ cut here ]------------" and s[1].startswith("WARNING: CPU: 0 PID: 0 at tests/test_splat_format.py:")


def test_oops(splats):
    s = lines(splats, "crash")
    assert s[0] == "BUG: kernel NULL pointer dereference, address: 0000000000000000"
    assert s[1] == "Oops: AttributeError: 'NoneType' object has no attribute 'pgtable' [#1] PREEMPT SMP"
    assert s[2] == "CPU: 0 PID: 0 Comm: CPU0"
    assert s[3].startswith("pc : vsi_iommu_map (tests/test_splat_format.py:")
    assert s[4] == "Call trace:"


def test_kasan_double_free(splats):
    s = lines(splats, "double-free")
    assert s[0] == "=" * 66
    assert s[1] == "BUG: KASAN: double-free in cpu0"


def test_hung_task_and_soft_lockup(splats):
    s = lines(splats, "deadlock")
    assert s[0] == "INFO: task CPU0 blocked for more than 120 seconds."
    assert s[1] == "      CPU0 waits for &lock_b"
    text = splats["deadlock"]["splat"]
    assert "\nINFO: task CPU1 blocked for more than 120 seconds.\n      CPU1 waits for &lock_a\n" in text
    # without lockdep the CPUs' own lists name the locks, not where they were taken
    assert "Showing all locks held in the system:\n1 lock held by CPU0:\n #0: (&lock_a)\n1 lock held by CPU1:\n #0: (&lock_b)\n" in text
    s = lines(splats, "livelock")
    assert s[0] == "watchdog: BUG: soft lockup - CPU#1 stuck for 20 steps! [CPU1:0]"
    assert "\nNMI backtrace for cpu 0\nCPU: 0 PID: 0 Comm: CPU0\nCall trace:\n" in splats["livelock"]["splat"]


def test_kmemleak(splats):
    s = lines(splats, "leak")
    assert s[0] == "kmemleak: 1 new suspected memory leak (see /sys/kernel/debug/kmemleak)"
    assert s[1].startswith("unreferenced object ")
