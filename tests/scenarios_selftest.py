"""lib/locking-selftest.c, ported to scenarios.

Each scenario is named after the C testcase it ports (the ``spin`` column:
``raw_spin_lock``), and its docstring quotes the C test's name as it appears
in the boot log ("A-B-B-A deadlock", "hard-irqs-on + irq-safe-A/12", ...).
Every failing family has a correct counterpart next to it that must stay
clean: a consistent lock order, ``spin_lock_irqsave`` everywhere, nesting
annotated with ``spin_lock_nested``, the unlock that was missing.

The C runs one testcase in one context, one event after the other, and
simulates hard-IRQ context with ``HARDIRQ_ENTER()``.  Here:

* the deadlock families keep the C shape (one CPU runs the events in
  order: lockdep must find the cycle without any contention), and the
  ``_smp``/``_3cpu`` variants spread the same events over CPUs so that the
  explorer also tries every interleaving of them;
* hard-IRQ context is a real interrupt: ``request_irq`` a handler, and a CPU
  body calls ``raise_irq``; the scheduler delivers it at a preemption point
  on a CPU with interrupts enabled.  Where the C fixes the order of the
  events (the ``/12`` and ``/21`` permutations), the process-context event
  runs in the probe (``kernel.add_setup``) or remove (``kernel.add_teardown``)
  path, which run alone before and after every CPU.

Trylock has no column of its own in the C: the ww_mutex table ports its
rows ("try", "block", "spinlock" against "block"/"try"), here with
spinlocks, next to the ABBA orders with a trylock in either position and the
hard-IRQ uses of ``spin_trylock``.  Lockdep's rule: a trylock adds no
dependency and sets no IN-HARDIRQ bit (it cannot wait), but the lock is held
afterwards and a trylock with interrupts enabled is HARDIRQ-ON.

``SELFTESTS`` is the table the tests run: ``(name, scenario, expected kind
or None)``.
"""

from model.kernel import (
    IRQ_HANDLED,
    Shared,
    SpinLock,
    local_irq_disable,
    local_irq_enable,
    raise_irq,
    request_irq,
    spin_lock,
    spin_lock_irq,
    spin_lock_irqsave,
    spin_lock_nested,
    spin_trylock,
    spin_unlock,
    spin_unlock_irq,
    spin_unlock_irqrestore,
)

#: include/linux/lockdep_types.h
SINGLE_DEPTH_NESTING = 1

#: the interrupt line of the simulated device
TEST_IRQ = 11


# -- building blocks (the C macros) -----------------------------------------------------


def locks(*names):
    """``static DEFINE_RAW_SPINLOCK(lock_X)`` for each name."""
    return [SpinLock(f"lock_{n}") for n in names]


async def LOCK_UNLOCK_2(x, y):
    """``LOCK(x); LOCK(y); UNLOCK(y); UNLOCK(x)``: records the dependency x -> y."""
    await spin_lock(x)
    await spin_lock(y)
    spin_unlock(y)
    spin_unlock(x)


def events_on_one_cpu(pairs):
    """One CPU body running ``LOCK_UNLOCK_2`` over ``pairs`` in order (the C ``E()``)."""

    async def cpu0():
        for x, y in pairs:
            await LOCK_UNLOCK_2(x, y)

    return [cpu0]


def events_on_own_cpus(pairs):
    """One CPU per ``LOCK_UNLOCK_2`` event: the same dependencies, taken concurrently."""

    def body(x, y):
        async def cpu():
            await LOCK_UNLOCK_2(x, y)

        return cpu

    return [body(x, y) for x, y in pairs]


def hardirq_handler(lock):
    """A handler taking ``lock`` in hard-IRQ context (``IRQ_ENTER(); LOCK(A); ...``)."""

    async def handler(irq, dev_id):
        await spin_lock(lock)
        spin_unlock(lock)
        return IRQ_HANDLED

    return handler


async def trylock_unlock(lock):
    """``if (TRYLOCK(x)) UNLOCK(x)``."""
    if await spin_trylock(lock):
        spin_unlock(lock)


def hardirq_trylock_handler(lock):
    """A handler that only trylocks ``lock`` in hard-IRQ context (and copes with failing)."""

    async def handler(irq, dev_id):
        await trylock_unlock(lock)
        return IRQ_HANDLED

    return handler


async def lock_irqsave_unlock(lock):
    """``spin_lock_irqsave(); spin_unlock_irqrestore()``: irq-safe use of ``lock``."""
    flags = await spin_lock_irqsave(lock)
    await spin_unlock_irqrestore(lock, flags)


async def lock_unlock(lock):
    """``LOCK(x); UNLOCK(x)`` with whatever irq state the caller has."""
    await spin_lock(lock)
    spin_unlock(lock)


def raise_then(kernel, work):
    """A CPU body: the device interrupts (``raise_irq``), then the CPU does ``work()``."""

    async def cpu():
        raise_irq(kernel, TEST_IRQ)
        await work()

    return cpu


# -- A-A ----------------------------------------------------------------------------------


def AA_spin(kernel):
    """"A-A deadlock": ``LOCK(X1); LOCK(X2)``, two instances of one class (recursive-locking)."""
    X1, X2 = SpinLock("lock_X"), SpinLock("lock_X")

    async def cpu0():
        await spin_lock(X1)
        await spin_lock(X2)  # this one should fail
        spin_unlock(X2)
        spin_unlock(X1)

    return [cpu0]


def AA_spin_nested(kernel):
    """Counterpart of "A-A deadlock": X2 nests in X1 and says so with ``spin_lock_nested``."""
    X1, X2 = SpinLock("lock_X"), SpinLock("lock_X")

    async def cpu():
        await spin_lock(X1)
        await spin_lock_nested(X2, SINGLE_DEPTH_NESTING)
        spin_unlock(X2)
        spin_unlock(X1)

    return [cpu, cpu]


# -- circular dependencies ----------------------------------------------------------------


def ABBA_spin(kernel):
    """"A-B-B-A deadlock": ``LOCK_UNLOCK_2(A, B); LOCK_UNLOCK_2(B, A)``."""
    A, B = locks("A", "B")
    return events_on_one_cpu([(A, B), (B, A)])


def ABAB_spin(kernel):
    """Counterpart of "A-B-B-A deadlock": A before B both times."""
    A, B = locks("A", "B")
    return events_on_one_cpu([(A, B), (A, B)])


def ABBA_spin_smp(kernel):
    """"A-B-B-A deadlock" on two CPUs: CPU0 takes A then B, CPU1 B then A."""
    A, B = locks("A", "B")
    return events_on_own_cpus([(A, B), (B, A)])


def ABAB_spin_smp(kernel):
    """Counterpart of "A-B-B-A deadlock" on two CPUs: both take A then B."""
    A, B = locks("A", "B")
    return events_on_own_cpus([(A, B), (A, B)])


def ABBCCA_spin(kernel):
    """"A-B-B-C-C-A deadlock": A -> B, B -> C, C -> A."""
    A, B, C = locks("A", "B", "C")
    return events_on_one_cpu([(A, B), (B, C), (C, A)])


def ABBCAC_spin(kernel):
    """Counterpart of "A-B-B-C-C-A deadlock": A -> B, B -> C, A -> C (one order)."""
    A, B, C = locks("A", "B", "C")
    return events_on_one_cpu([(A, B), (B, C), (A, C)])


def ABBCCA_spin_3cpu(kernel):
    """"A-B-B-C-C-A deadlock" spread over 3 CPUs: A -> B on CPU0, B -> C on CPU1, C -> A on CPU2."""
    A, B, C = locks("A", "B", "C")
    return events_on_own_cpus([(A, B), (B, C), (C, A)])


def ABBCAC_spin_3cpu(kernel):
    """Counterpart of the 3-CPU "A-B-B-C-C-A deadlock": CPU2 takes A -> C instead."""
    A, B, C = locks("A", "B", "C")
    return events_on_own_cpus([(A, B), (B, C), (A, C)])


def ABCABC_spin(kernel):
    """"A-B-C-A-B-C deadlock": A -> B, C -> A, B -> C."""
    A, B, C = locks("A", "B", "C")
    return events_on_one_cpu([(A, B), (C, A), (B, C)])


def ABACBC_spin(kernel):
    """Counterpart of "A-B-C-A-B-C deadlock": A -> B, A -> C, B -> C."""
    A, B, C = locks("A", "B", "C")
    return events_on_one_cpu([(A, B), (A, C), (B, C)])


def ABBCCDDA_spin(kernel):
    """"A-B-B-C-C-D-D-A deadlock": A -> B, B -> C, C -> D, D -> A."""
    A, B, C, D = locks("A", "B", "C", "D")
    return events_on_one_cpu([(A, B), (B, C), (C, D), (D, A)])


def ABBCCDAD_spin(kernel):
    """Counterpart of "A-B-B-C-C-D-D-A deadlock": the last event is A -> D."""
    A, B, C, D = locks("A", "B", "C", "D")
    return events_on_one_cpu([(A, B), (B, C), (C, D), (A, D)])


def ABCDBDDA_spin(kernel):
    """"A-B-C-D-B-D-D-A deadlock": A -> B, C -> D, B -> D, D -> A."""
    A, B, C, D = locks("A", "B", "C", "D")
    return events_on_one_cpu([(A, B), (C, D), (B, D), (D, A)])


def ABCDBDAD_spin(kernel):
    """Counterpart of "A-B-C-D-B-D-D-A deadlock": the last event is A -> D."""
    A, B, C, D = locks("A", "B", "C", "D")
    return events_on_one_cpu([(A, B), (C, D), (B, D), (A, D)])


def ABCDBCDA_spin(kernel):
    """"A-B-C-D-B-C-D-A deadlock": A -> B, C -> D, B -> C, D -> A."""
    A, B, C, D = locks("A", "B", "C", "D")
    return events_on_one_cpu([(A, B), (C, D), (B, C), (D, A)])


def ABCDBCAD_spin(kernel):
    """Counterpart of "A-B-C-D-B-C-D-A deadlock": the last event is A -> D."""
    A, B, C, D = locks("A", "B", "C", "D")
    return events_on_one_cpu([(A, B), (C, D), (B, C), (A, D)])


# -- unlock balance -----------------------------------------------------------------------


def double_unlock_spin(kernel):
    """"double unlock": ``LOCK(A); UNLOCK(A); UNLOCK(A)`` while CPU1 uses A too."""
    (A,) = locks("A")

    async def cpu0():
        await spin_lock(A)
        spin_unlock(A)
        spin_unlock(A)  # fail

    async def cpu1():
        await lock_unlock(A)

    return [cpu0, cpu1]


def single_unlock_spin(kernel):
    """Counterpart of "double unlock": one unlock per lock."""
    (A,) = locks("A")
    return [lambda: lock_unlock(A), lambda: lock_unlock(A)]


def lock_held_at_exit_spin(kernel):
    """A lock held when the CPU's work returns (lockdep: lock held when returning)."""
    (A,) = locks("A")

    async def cpu0():
        await spin_lock(A)  # no spin_unlock(): leaked

    async def cpu1():
        await lock_unlock(A)

    return [cpu0, cpu1]


def lock_released_at_exit_spin(kernel):
    """Counterpart of the lock held at exit: the lock is released before returning."""
    (A,) = locks("A")

    async def cpu0():
        await spin_lock(A)
        spin_unlock(A)

    return [cpu0, lambda: lock_unlock(A)]


# -- hard-IRQ safety ----------------------------------------------------------------------


def _irq_safe_A(kernel, probe=None, remove=None):
    """lock_A, taken by the IRQ handler and irq-safely by two CPUs; one CPU raises the IRQ.

    ``probe``/``remove`` are process-context uses of A run before/after every CPU.
    """
    (A,) = locks("A")
    request_irq(kernel, TEST_IRQ, hardirq_handler(A), 0, "selftest", None)
    if probe is not None:
        kernel.add_setup(lambda: probe(A))
    if remove is not None:
        kernel.add_teardown(lambda: remove(A))
    return [raise_then(kernel, lambda: lock_irqsave_unlock(A)), lambda: lock_irqsave_unlock(A)]


def irqsafe1_hard_spin_12(kernel):
    """"hard-irqs-on + irq-safe-A/12": A taken in hard IRQ, then with irqs on (remove path)."""
    return _irq_safe_A(kernel, remove=lock_unlock)


def irqsafe1_hard_spin_21(kernel):
    """"hard-irqs-on + irq-safe-A/21": A taken with irqs on (probe path), then in hard IRQ."""
    return _irq_safe_A(kernel, probe=lock_unlock)


def irqsafe1_hard_spin_irqsave_12(kernel):
    """Counterpart of "hard-irqs-on + irq-safe-A/12": the remove path uses spin_lock_irqsave."""
    return _irq_safe_A(kernel, remove=lock_irqsave_unlock)


def irqsafe1_hard_spin_irqsave_21(kernel):
    """Counterpart of "hard-irqs-on + irq-safe-A/21": the probe path uses spin_lock_irqsave."""
    return _irq_safe_A(kernel, probe=lock_irqsave_unlock)


def irqsafe2B_hard_spin(kernel):
    """"hard-safe-A + irqs-on": interrupts enabled while the irq-safe A is held."""
    (A,) = locks("A")
    request_irq(kernel, TEST_IRQ, hardirq_handler(A), 0, "selftest", None)

    async def irqs_on_with_A_held():
        local_irq_disable()
        await spin_lock(A)
        await local_irq_enable()  # fail: A is irq-safe
        spin_unlock(A)

    return [raise_then(kernel, irqs_on_with_A_held), lambda: lock_irqsave_unlock(A)]


def irqsafe2B_hard_spin_fixed(kernel):
    """Counterpart of "hard-safe-A + irqs-on": A is released before interrupts come back."""
    (A,) = locks("A")
    request_irq(kernel, TEST_IRQ, hardirq_handler(A), 0, "selftest", None)

    async def irqs_on_after_unlock():
        local_irq_disable()
        await spin_lock(A)
        spin_unlock(A)
        await local_irq_enable()

    return [raise_then(kernel, irqs_on_after_unlock), lambda: lock_irqsave_unlock(A)]


def _safe_A_then_B(kernel, take_A_then_B, take_B):
    """IRQ takes A; CPU0 raises it and runs ``take_A_then_B(A, B)``; CPU1 runs ``take_B(B)``."""
    A, B = locks("A", "B")
    request_irq(kernel, TEST_IRQ, hardirq_handler(A), 0, "selftest", None)
    return [raise_then(kernel, lambda: take_A_then_B(A, B)), lambda: take_B(B)]


async def _A_B_irqs_on(A, B):
    """E1 of irqsafe3: ``LOCK(A); LOCK(B); UNLOCK(B); UNLOCK(A)`` with irqs enabled."""
    await LOCK_UNLOCK_2(A, B)


async def _A_B_irqs_off(A, B):
    """E1 of irqsafe4: the same with ``IRQ_DISABLE()``/``IRQ_ENABLE()`` around it."""
    local_irq_disable()
    await LOCK_UNLOCK_2(A, B)
    await local_irq_enable()


async def _A_B_irqsave(A, B):
    """A -> B with A taken irq-safely."""
    flags = await spin_lock_irqsave(A)
    await spin_lock(B)
    spin_unlock(B)
    await spin_unlock_irqrestore(A, flags)


async def _A_then_B(A, B):
    """A and B one after the other, irqs disabled for A: no A -> B dependency."""
    await lock_irqsave_unlock(A)
    await lock_unlock(B)


async def _B_irq(B):
    """B taken with ``spin_lock_irq``: B never held with irqs on."""
    await spin_lock_irq(B)
    await spin_unlock_irq(B)


def irqsafe3_hard_spin(kernel):
    """"hard-safe-A + unsafe-B #1": A -> B, B taken elsewhere with irqs on, A in hard IRQ.

    As in the C, E1 (``LOCK(A); LOCK(B)``) runs with interrupts enabled, so
    in the spin flavour A itself is also irqs-on: lockdep may complain about
    A's inconsistent state before it gets to the A -> B dependency.
    """
    return _safe_A_then_B(kernel, _A_B_irqs_on, lock_unlock)


def irqsafe3_hard_spin_fixed(kernel):
    """Counterpart of "hard-safe-A + unsafe-B #1": A irq-safe, B only with irqs disabled."""
    return _safe_A_then_B(kernel, _A_B_irqsave, _B_irq)


def irqsafe4_hard_spin(kernel):
    """"hard-safe-A + unsafe-B #2": A -> B with irqs disabled, B elsewhere with irqs on."""
    return _safe_A_then_B(kernel, _A_B_irqs_off, lock_unlock)


def irqsafe4_hard_spin_fixed(kernel):
    """Counterpart of "hard-safe-A + unsafe-B #2": B no longer nests in A, so B may stay irq-unsafe."""
    return _safe_A_then_B(kernel, _A_then_B, lock_unlock)


def _irq_inversion(kernel, take_B_then_irq):
    """The deadlock of the C comment: CPU0 holds A (irqs off) and wants B; CPU1 holds B; the IRQ wants A.

    ``take_B_then_irq(B, status)`` runs on CPU1; it raises the IRQ with B held
    and writes ``dev->status``, a preemption point where the IRQ can fire.
    """
    A, B = locks("A", "B")
    status = Shared("dev->status", 0)
    request_irq(kernel, TEST_IRQ, hardirq_handler(A), 0, "selftest", None)
    return [lambda: _A_B_irqsave(A, B), lambda: take_B_then_irq(B, status)]


def irq_inversion_hard_spin(kernel):
    """"hard-irq lock-inversion": the IRQ hits CPU1 while it holds B with irqs on."""

    async def B_irqs_on(B, status):
        await spin_lock(B)
        raise_irq(kernel, TEST_IRQ)
        await status.store(1)  # a point where the IRQ fires with B held
        spin_unlock(B)

    return _irq_inversion(kernel, B_irqs_on)


def irq_inversion_hard_spin_fixed(kernel):
    """Counterpart of "hard-irq lock-inversion": CPU1 takes B with spin_lock_irqsave."""

    async def B_irqsave(B, status):
        flags = await spin_lock_irqsave(B)
        raise_irq(kernel, TEST_IRQ)
        await status.store(1)
        await spin_unlock_irqrestore(B, flags)

    return _irq_inversion(kernel, B_irqsave)


# -- spin_lock vs spin_lock_irqsave ---------------------------------------------------------


def _dev_lock_in_irq(kernel, process_lock, process_unlock):
    """dev->lock guards dev->count in the IRQ handler and in process context on two CPUs."""
    lock = SpinLock("dev->lock")
    count = Shared("dev->count", 0)

    async def handler(irq, dev_id):
        flags = await spin_lock_irqsave(lock)
        await count.store(await count.load() + 1)
        await spin_unlock_irqrestore(lock, flags)
        return IRQ_HANDLED

    request_irq(kernel, TEST_IRQ, handler, 0, "dev", None)

    async def update():
        flags = await process_lock(lock)
        await count.store(await count.load() + 1)
        await process_unlock(lock, flags)

    return [raise_then(kernel, update), update]


async def _plain_lock(lock):
    """``spin_lock()``, shaped like spin_lock_irqsave (no flags)."""
    await spin_lock(lock)


async def _plain_unlock(lock, flags):
    """``spin_unlock()``, shaped like spin_unlock_irqrestore."""
    spin_unlock(lock)


def spin_lock_irq_unsafe(kernel):
    """Plain spin_lock with irqs on in process context, and in the IRQ handler (inconsistent)."""
    return _dev_lock_in_irq(kernel, _plain_lock, _plain_unlock)


def spin_lock_irqsave_consistent(kernel):
    """spin_lock_irqsave in process context and in the IRQ handler: fine."""
    return _dev_lock_in_irq(kernel, spin_lock_irqsave, spin_unlock_irqrestore)


# -- trylock --------------------------------------------------------------------------------


async def LOCK_TRYLOCK_2(x, y):
    """``LOCK(x); if (TRYLOCK(y)) UNLOCK(y); UNLOCK(x)``: no dependency x -> y."""
    await spin_lock(x)
    await trylock_unlock(y)
    spin_unlock(x)


async def TRYLOCK_LOCK_2(x, y):
    """``if (TRYLOCK(x)) { LOCK(y); UNLOCK(y); UNLOCK(x); }``: x is held, so x -> y."""
    if await spin_trylock(x):
        await spin_lock(y)
        spin_unlock(y)
        spin_unlock(x)


def spin_block_spin(kernel):
    """"spinlock | block" (ww_test_spin_block): X -> A, then A -> X, both blocking."""
    A, X = SpinLock("lock_A"), SpinLock("lock_X")

    async def cpu0():
        await lock_unlock(A)
        await LOCK_UNLOCK_2(X, A)
        await LOCK_UNLOCK_2(A, X)  # fail

    return [cpu0]


def spin_try_spin(kernel):
    """"spinlock | try" (ww_test_spin_try): X trylocked before A, then trylocked under A.

    The trylocked X is held, so X -> A is a dependency; A -> X is not.
    """
    A, X = SpinLock("lock_A"), SpinLock("lock_X")

    async def cpu0():
        await lock_unlock(A)
        await TRYLOCK_LOCK_2(X, A)
        await LOCK_TRYLOCK_2(A, X)  # should NOT fail

    return [cpu0]


def try_block_spin(kernel):
    """"try | block" (ww_test_try_block): ``TRYLOCK(X1); LOCK(X2)``, one class (recursive-locking)."""
    X1, X2 = SpinLock("lock_X"), SpinLock("lock_X")

    async def cpu0():
        if await spin_trylock(X1):
            await spin_lock(X2)  # fail: X1 is held
            spin_unlock(X2)
            spin_unlock(X1)

    return [cpu0]


def try_try_spin(kernel):
    """"try | try" (ww_test_try_try): ``TRYLOCK(X1); TRYLOCK(X2)`` on two CPUs: no recursion check."""
    X1, X2 = SpinLock("lock_X"), SpinLock("lock_X")

    async def cpu():
        if await spin_trylock(X1):
            await trylock_unlock(X2)
            spin_unlock(X1)

    return [cpu, cpu]


def block_try_spin(kernel):
    """"block | try" (ww_test_block_try): ``LOCK(X1); TRYLOCK(X2)`` on two CPUs: fine."""
    X1, X2 = SpinLock("lock_X"), SpinLock("lock_X")
    return [lambda: LOCK_TRYLOCK_2(X1, X2), lambda: LOCK_TRYLOCK_2(X1, X2)]


def ABBA_trylock_first_smp(kernel):
    """A-B-B-A with the trylock first: CPU0 trylocks A and then waits for B, CPU1 takes B then A.

    A trylocked lock is held like any other: CPU0 can sit on A waiting for B.
    """
    A, B = locks("A", "B")
    return [lambda: TRYLOCK_LOCK_2(A, B), lambda: LOCK_UNLOCK_2(B, A)]


def ABBA_trylock_second_smp(kernel):
    """Counterpart: CPU0 takes A and only trylocks B, CPU1 takes B then A ("trylock can be done in any order")."""
    A, B = locks("A", "B")
    return [lambda: LOCK_TRYLOCK_2(A, B), lambda: LOCK_UNLOCK_2(B, A)]


def irq_trylock_hard_spin(kernel):
    """The IRQ handler only trylocks A; process context takes A with irqs on: no IN-HARDIRQ, fine."""
    (A,) = locks("A")
    request_irq(kernel, TEST_IRQ, hardirq_trylock_handler(A), 0, "selftest", None)
    return [raise_then(kernel, lambda: lock_unlock(A)), lambda: lock_unlock(A)]


def trylock_irqs_on_hard_spin(kernel):
    """Process context trylocks A with irqs on, the IRQ handler spin_locks it (inconsistent).

    The IRQ can hit while the trylock holds A on the same CPU: HARDIRQ-ON applies to a trylock.
    """
    (A,) = locks("A")
    request_irq(kernel, TEST_IRQ, hardirq_handler(A), 0, "selftest", None)
    return [raise_then(kernel, lambda: trylock_unlock(A)), lambda: trylock_unlock(A)]


def irqsafe2B_hard_spin_trylock(kernel):
    """"hard-safe-A + irqs-on" with a trylock: irqs come back on while the trylocked A is held."""
    (A,) = locks("A")
    request_irq(kernel, TEST_IRQ, hardirq_handler(A), 0, "selftest", None)

    async def irqs_on_with_A_trylocked():
        local_irq_disable()
        if await spin_trylock(A):
            await local_irq_enable()  # fail: A is irq-safe
            spin_unlock(A)
        else:
            await local_irq_enable()

    return [raise_then(kernel, irqs_on_with_A_trylocked), lambda: lock_irqsave_unlock(A)]


# -- the table ----------------------------------------------------------------------------

SELFTESTS = [
    ("AA_spin", AA_spin, "recursive-locking"),
    ("AA_spin_nested", AA_spin_nested, None),
    ("ABBA_spin", ABBA_spin, "lock-inversion"),
    ("ABAB_spin", ABAB_spin, None),
    ("ABBA_spin_smp", ABBA_spin_smp, "lock-inversion"),
    ("ABAB_spin_smp", ABAB_spin_smp, None),
    ("ABBCCA_spin", ABBCCA_spin, "lock-inversion"),
    ("ABBCAC_spin", ABBCAC_spin, None),
    ("ABBCCA_spin_3cpu", ABBCCA_spin_3cpu, "lock-inversion"),
    ("ABBCAC_spin_3cpu", ABBCAC_spin_3cpu, None),
    ("ABCABC_spin", ABCABC_spin, "lock-inversion"),
    ("ABACBC_spin", ABACBC_spin, None),
    ("ABBCCDDA_spin", ABBCCDDA_spin, "lock-inversion"),
    ("ABBCCDAD_spin", ABBCCDAD_spin, None),
    ("ABCDBDDA_spin", ABCDBDDA_spin, "lock-inversion"),
    ("ABCDBDAD_spin", ABCDBDAD_spin, None),
    ("ABCDBCDA_spin", ABCDBCDA_spin, "lock-inversion"),
    ("ABCDBCAD_spin", ABCDBCAD_spin, None),
    ("double_unlock_spin", double_unlock_spin, "bad-unlock"),
    ("single_unlock_spin", single_unlock_spin, None),
    ("lock_held_at_exit_spin", lock_held_at_exit_spin, "lock-held-at-exit"),
    ("lock_released_at_exit_spin", lock_released_at_exit_spin, None),
    ("irqsafe1_hard_spin_12", irqsafe1_hard_spin_12, "irq-lock-inversion"),
    ("irqsafe1_hard_spin_irqsave_12", irqsafe1_hard_spin_irqsave_12, None),
    ("irqsafe1_hard_spin_21", irqsafe1_hard_spin_21, "irq-lock-inversion"),
    ("irqsafe1_hard_spin_irqsave_21", irqsafe1_hard_spin_irqsave_21, None),
    ("irqsafe2B_hard_spin", irqsafe2B_hard_spin, "irq-lock-inversion"),
    ("irqsafe2B_hard_spin_fixed", irqsafe2B_hard_spin_fixed, None),
    ("irqsafe3_hard_spin", irqsafe3_hard_spin, "irq-lock-inversion"),
    ("irqsafe3_hard_spin_fixed", irqsafe3_hard_spin_fixed, None),
    ("irqsafe4_hard_spin", irqsafe4_hard_spin, "irq-lock-inversion"),
    ("irqsafe4_hard_spin_fixed", irqsafe4_hard_spin_fixed, None),
    ("irq_inversion_hard_spin", irq_inversion_hard_spin, "irq-lock-inversion"),
    ("irq_inversion_hard_spin_fixed", irq_inversion_hard_spin_fixed, None),
    ("spin_lock_irq_unsafe", spin_lock_irq_unsafe, "irq-lock-inversion"),
    ("spin_lock_irqsave_consistent", spin_lock_irqsave_consistent, None),
    ("spin_block_spin", spin_block_spin, "lock-inversion"),
    ("spin_try_spin", spin_try_spin, None),
    ("try_block_spin", try_block_spin, "recursive-locking"),
    ("try_try_spin", try_try_spin, None),
    ("block_try_spin", block_try_spin, None),
    ("ABBA_trylock_first_smp", ABBA_trylock_first_smp, "lock-inversion"),
    ("ABBA_trylock_second_smp", ABBA_trylock_second_smp, None),
    ("trylock_irqs_on_hard_spin", trylock_irqs_on_hard_spin, "irq-lock-inversion"),
    ("irq_trylock_hard_spin", irq_trylock_hard_spin, None),
    ("irqsafe2B_hard_spin_trylock", irqsafe2B_hard_spin_trylock, "irq-lock-inversion"),
]
