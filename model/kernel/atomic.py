"""Atomics and reference counts (include/linux/atomic/atomic-instrumented.h,
include/linux/refcount.h, lib/refcount.c).

What the model guarantees:

* ``atomic_t`` / ``atomic_long_t`` are memory: the object names the word
  and holds its initial value, the run's kernel holds the value
  (``kernel.cells``, as :class:`~.shared.Shared`), so a module-level atomic
  starts every schedule from its initial value.  The counter wraps as C's
  ``int`` / ``long`` do (two's complement, 32 / 64 bits).
* Every operation is one preemption point followed by the whole operation
  with nothing else running (it is atomic), and a *marked* access
  (``access`` hook, ``marked`` bits of :mod:`.shared`): an atomic never
  races with another atomic, and races with a plain access to the same
  word as ``READ_ONCE`` would.  An operation made of a loop in C
  (``atomic_inc_not_zero``, ``refcount_inc_not_zero``: read, then
  ``try_cmpxchg`` until it sticks) is one operation here: the loop is
  linearizable, its retries show nothing more.
* Ordering, as Documentation/atomic_t.txt gives it: ``atomic_read`` /
  ``atomic_set`` and the void RMWs (``atomic_inc``, ``atomic_add``, ...) are
  relaxed; value-returning RMWs (``atomic_inc_return``,
  ``atomic_dec_and_test``, ``atomic_cmpxchg``, ``atomic_xchg``,
  ``atomic_fetch_add``, ...) are fully ordered (``smp_mb()`` before and
  after); the ``_relaxed`` / ``_acquire`` / ``_release`` variants are what
  they say.  A conditional RMW that fails (``cmpxchg`` that does not match,
  ``inc_not_zero`` on 0) stores nothing and is a relaxed read, unordered.
* ``refcount_t`` follows lib/refcount.c: increments relaxed; decrements
  release, and ``refcount_dec_and_test`` / ``refcount_sub_and_test``
  acquire when they hit 0 (``smp_acquire__after_ctrl_dep``), so the free
  after the last put is ordered after every earlier put's accesses.
  Saturation as the kernel does it: a bad transition sets
  ``REFCOUNT_SATURATED`` (a separate ``refcount_set``, racy as in C) and
  WARNs with the kernel's text through ``kernel.warn`` (an ``assertion``):
  ``refcount_t: addition on 0; use-after-free.``, ``refcount_t: underflow;
  use-after-free.``, ``refcount_t: saturated; leaking memory.``,
  ``refcount_t: decrement hit 0; leaking memory.``  (A model WARN ends the
  run, so ``WARN_ONCE`` and ``WARN`` are the same here.)

``ATOMIC_INIT(i)`` and ``REFCOUNT_INIT(n)`` are initializers:
``atomic_t("dev->users", ATOMIC_INIT(1))``, ``refcount_t("obj->ref",
REFCOUNT_INIT(1))``.  ``atomic_try_cmpxchg(v, old, new)`` cannot update
``*old``: it returns ``(success, value read)``.
"""

from __future__ import annotations

from .cpu import _current
from .locks import mutex_lock, mutex_unlock, spin_lock, spin_unlock
from .shared import ACQUIRE, FULL, MARKED, RELEASE, RMW, Shared

__all__ = [
    "INT_MAX",
    "INT_MIN",
    "UINT_MAX",
    "atomic_t",
    "atomic_long_t",
    "ATOMIC_INIT",
    "ATOMIC_LONG_INIT",
    "atomic_read",
    "atomic_read_acquire",
    "atomic_set",
    "atomic_set_release",
    "atomic_add",
    "atomic_sub",
    "atomic_inc",
    "atomic_dec",
    "atomic_add_return",
    "atomic_add_return_relaxed",
    "atomic_add_return_acquire",
    "atomic_add_return_release",
    "atomic_sub_return",
    "atomic_sub_return_relaxed",
    "atomic_sub_return_acquire",
    "atomic_sub_return_release",
    "atomic_inc_return",
    "atomic_inc_return_relaxed",
    "atomic_inc_return_acquire",
    "atomic_inc_return_release",
    "atomic_dec_return",
    "atomic_dec_return_relaxed",
    "atomic_dec_return_acquire",
    "atomic_dec_return_release",
    "atomic_fetch_add",
    "atomic_fetch_add_relaxed",
    "atomic_fetch_add_acquire",
    "atomic_fetch_add_release",
    "atomic_fetch_sub",
    "atomic_fetch_sub_relaxed",
    "atomic_fetch_sub_acquire",
    "atomic_fetch_sub_release",
    "atomic_xchg",
    "atomic_xchg_relaxed",
    "atomic_xchg_acquire",
    "atomic_xchg_release",
    "atomic_cmpxchg",
    "atomic_cmpxchg_relaxed",
    "atomic_cmpxchg_acquire",
    "atomic_cmpxchg_release",
    "atomic_try_cmpxchg",
    "atomic_try_cmpxchg_relaxed",
    "atomic_try_cmpxchg_acquire",
    "atomic_try_cmpxchg_release",
    "atomic_dec_and_test",
    "atomic_inc_and_test",
    "atomic_sub_and_test",
    "atomic_add_negative",
    "atomic_fetch_add_unless",
    "atomic_add_unless",
    "atomic_inc_not_zero",
    "atomic_long_read",
    "atomic_long_set",
    "atomic_long_add",
    "atomic_long_sub",
    "atomic_long_inc",
    "atomic_long_dec",
    "atomic_long_add_return",
    "atomic_long_sub_return",
    "atomic_long_inc_return",
    "atomic_long_dec_return",
    "atomic_long_fetch_add",
    "atomic_long_fetch_sub",
    "atomic_long_xchg",
    "atomic_long_cmpxchg",
    "atomic_long_try_cmpxchg",
    "atomic_long_dec_and_test",
    "atomic_long_inc_not_zero",
    "refcount_t",
    "REFCOUNT_INIT",
    "REFCOUNT_MAX",
    "REFCOUNT_SATURATED",
    "REFCOUNT_ADD_NOT_ZERO_OVF",
    "REFCOUNT_ADD_OVF",
    "REFCOUNT_ADD_UAF",
    "REFCOUNT_SUB_UAF",
    "REFCOUNT_DEC_LEAK",
    "refcount_warn_saturate",
    "refcount_set",
    "refcount_set_release",
    "refcount_read",
    "refcount_add_not_zero",
    "refcount_inc_not_zero",
    "refcount_add",
    "refcount_inc",
    "refcount_sub_and_test",
    "refcount_dec_and_test",
    "refcount_dec",
    "refcount_dec_if_one",
    "refcount_dec_not_one",
    "refcount_dec_and_lock",
    "refcount_dec_and_mutex_lock",
]

INT_MAX = (1 << 31) - 1
INT_MIN = -(1 << 31)
UINT_MAX = (1 << 32) - 1

# The ``marked`` bits of each ordering of a read-modify-write.
_RELAXED = MARKED | RMW
_ACQUIRE = MARKED | RMW | ACQUIRE
_RELEASE = MARKED | RMW | RELEASE
_FULL = MARKED | RMW | ACQUIRE | RELEASE | FULL
_ORDERINGS = (("", _FULL), ("_relaxed", _RELAXED), ("_acquire", _ACQUIRE), ("_release", _RELEASE))


class atomic_t(Shared):
    """``atomic_t``: ``{ int counter; }``, one word of memory (see the module doc)."""

    __slots__ = ()
    bits = 32

    def __init__(self, name, i=0):
        super().__init__(name, i)

    def __repr__(self):
        return f"{type(self).__name__}({self.name})"


class atomic_long_t(atomic_t):
    """``atomic_long_t``: an ``atomic_t`` of ``long`` (64 bits); the ``atomic_*``
    operations take either (``atomic_long_*`` are the same functions)."""

    __slots__ = ()
    bits = 64


def ATOMIC_INIT(i):
    """``ATOMIC_INIT(i)``: the initial value, for ``atomic_t(name, ATOMIC_INIT(i))``."""
    return i


ATOMIC_LONG_INIT = ATOMIC_INIT


def _wrap(value, bits):
    half = 1 << (bits - 1)
    return ((value + half) & ((1 << bits) - 1)) - half


async def _op(v, fn, order, acquire_if=None):
    """One read-modify-write on ``v``: a preemption point, then, with nothing
    else running, the value ``old``, ``new = fn(old)`` (``None``: a
    conditional operation that failed, a relaxed read) and the access
    reported with ``order`` (plus ACQUIRE when ``acquire_if(old)``).
    Returns ``(old, new)``."""
    cpu = _current.get()
    await cpu.sched.point(cpu)
    k = cpu.kernel
    old = k.cells.get(v, v.init)
    new = fn(old)
    if new is None:
        for h in k.hooks.access:
            h(cpu, v, False, MARKED)
        return old, None
    new = _wrap(new, v.bits)
    if acquire_if is not None and acquire_if(old):
        order |= ACQUIRE
    for h in k.hooks.access:
        h(cpu, v, True, order)
    k.cells[v] = new
    return old, new


# -- atomic_t -------------------------------------------------------------------


async def atomic_read(v):
    """``atomic_read(v)``: a marked load, relaxed."""
    return await v._marked_load(MARKED)


async def atomic_read_acquire(v):
    return await v._marked_load(MARKED | ACQUIRE)


async def atomic_set(v, i):
    """``atomic_set(v, i)``: a marked store, relaxed."""
    await v._marked_store(_wrap(i, v.bits), MARKED)


async def atomic_set_release(v, i):
    await v._marked_store(_wrap(i, v.bits), MARKED | RELEASE)


async def atomic_add(i, v):
    """``atomic_add(i, v)``: relaxed, returns nothing."""
    await _op(v, lambda old: old + i, _RELAXED)


async def atomic_sub(i, v):
    await _op(v, lambda old: old - i, _RELAXED)


async def atomic_inc(v):
    await _op(v, lambda old: old + 1, _RELAXED)


async def atomic_dec(v):
    await _op(v, lambda old: old - 1, _RELAXED)


def _variants(name, make, doc):
    """``name`` (fully ordered) and its ``_relaxed``/``_acquire``/``_release``
    forms: ``make(order)`` returns the coroutine function."""
    out = []
    for suffix, order in _ORDERINGS:
        fn = make(order)
        fn.__name__ = fn.__qualname__ = name + suffix
        fn.__doc__ = f"``{name}{suffix}``: {doc}"
        out.append(fn)
    return out


def _add_return(order):
    async def op(i, v):
        return (await _op(v, lambda old: old + i, order))[1]

    return op


def _sub_return(order):
    async def op(i, v):
        return (await _op(v, lambda old: old - i, order))[1]

    return op


def _inc_return(order):
    async def op(v):
        return (await _op(v, lambda old: old + 1, order))[1]

    return op


def _dec_return(order):
    async def op(v):
        return (await _op(v, lambda old: old - 1, order))[1]

    return op


def _fetch_add(order):
    async def op(i, v):
        return (await _op(v, lambda old: old + i, order))[0]

    return op


def _fetch_sub(order):
    async def op(i, v):
        return (await _op(v, lambda old: old - i, order))[0]

    return op


def _xchg(order):
    async def op(v, new):
        return (await _op(v, lambda old: new, order))[0]

    return op


def _cmpxchg(order):
    async def op(v, old, new):
        return (await _op(v, lambda cur: new if cur == old else None, order))[0]

    return op


def _try_cmpxchg(order):
    async def op(v, old, new):
        cur, stored = await _op(v, lambda cur: new if cur == old else None, order)
        return stored is not None, cur

    return op


atomic_add_return, atomic_add_return_relaxed, atomic_add_return_acquire, atomic_add_return_release = _variants(
    "atomic_add_return", _add_return, "(i, v) -> the new value"
)
atomic_sub_return, atomic_sub_return_relaxed, atomic_sub_return_acquire, atomic_sub_return_release = _variants(
    "atomic_sub_return", _sub_return, "(i, v) -> the new value"
)
atomic_inc_return, atomic_inc_return_relaxed, atomic_inc_return_acquire, atomic_inc_return_release = _variants(
    "atomic_inc_return", _inc_return, "(v) -> the new value"
)
atomic_dec_return, atomic_dec_return_relaxed, atomic_dec_return_acquire, atomic_dec_return_release = _variants(
    "atomic_dec_return", _dec_return, "(v) -> the new value"
)
atomic_fetch_add, atomic_fetch_add_relaxed, atomic_fetch_add_acquire, atomic_fetch_add_release = _variants(
    "atomic_fetch_add", _fetch_add, "(i, v) -> the old value"
)
atomic_fetch_sub, atomic_fetch_sub_relaxed, atomic_fetch_sub_acquire, atomic_fetch_sub_release = _variants(
    "atomic_fetch_sub", _fetch_sub, "(i, v) -> the old value"
)
atomic_xchg, atomic_xchg_relaxed, atomic_xchg_acquire, atomic_xchg_release = _variants(
    "atomic_xchg", _xchg, "(v, new) -> the old value"
)
atomic_cmpxchg, atomic_cmpxchg_relaxed, atomic_cmpxchg_acquire, atomic_cmpxchg_release = _variants(
    "atomic_cmpxchg", _cmpxchg, "(v, old, new) -> the value read; stores new only if it was old"
)
atomic_try_cmpxchg, atomic_try_cmpxchg_relaxed, atomic_try_cmpxchg_acquire, atomic_try_cmpxchg_release = _variants(
    "atomic_try_cmpxchg", _try_cmpxchg, "(v, old, new) -> (stored, the value read) (C's *old)"
)


async def atomic_dec_and_test(v):
    """``atomic_dec_and_test(v)``: fully ordered; true if the result is 0."""
    return (await _op(v, lambda old: old - 1, _FULL))[1] == 0


async def atomic_inc_and_test(v):
    return (await _op(v, lambda old: old + 1, _FULL))[1] == 0


async def atomic_sub_and_test(i, v):
    return (await _op(v, lambda old: old - i, _FULL))[1] == 0


async def atomic_add_negative(i, v):
    return (await _op(v, lambda old: old + i, _FULL))[1] < 0


async def atomic_fetch_add_unless(v, a, u):
    """``atomic_fetch_add_unless(v, a, u)``: add ``a`` unless the value is ``u``
    (then nothing is stored, no ordering); returns the old value."""
    return (await _op(v, lambda old: None if old == u else old + a, _FULL))[0]


async def atomic_add_unless(v, a, u):
    return await atomic_fetch_add_unless(v, a, u) != u


async def atomic_inc_not_zero(v):
    """``atomic_inc_not_zero(v)``: increment unless 0; true if it did."""
    return await atomic_fetch_add_unless(v, 1, 0) != 0


# atomic_long_t: the same operations (the counter knows its width).
atomic_long_read = atomic_read
atomic_long_set = atomic_set
atomic_long_add = atomic_add
atomic_long_sub = atomic_sub
atomic_long_inc = atomic_inc
atomic_long_dec = atomic_dec
atomic_long_add_return = atomic_add_return
atomic_long_sub_return = atomic_sub_return
atomic_long_inc_return = atomic_inc_return
atomic_long_dec_return = atomic_dec_return
atomic_long_fetch_add = atomic_fetch_add
atomic_long_fetch_sub = atomic_fetch_sub
atomic_long_xchg = atomic_xchg
atomic_long_cmpxchg = atomic_cmpxchg
atomic_long_try_cmpxchg = atomic_try_cmpxchg
atomic_long_dec_and_test = atomic_dec_and_test
atomic_long_inc_not_zero = atomic_inc_not_zero


# -- refcount_t ------------------------------------------------------------------

REFCOUNT_MAX = INT_MAX
REFCOUNT_SATURATED = INT_MIN // 2

# enum refcount_saturation_type
REFCOUNT_ADD_NOT_ZERO_OVF = 0
REFCOUNT_ADD_OVF = 1
REFCOUNT_ADD_UAF = 2
REFCOUNT_SUB_UAF = 3
REFCOUNT_DEC_LEAK = 4

_SATURATION = {
    REFCOUNT_ADD_NOT_ZERO_OVF: "saturated; leaking memory",
    REFCOUNT_ADD_OVF: "saturated; leaking memory",
    REFCOUNT_ADD_UAF: "addition on 0; use-after-free",
    REFCOUNT_SUB_UAF: "underflow; use-after-free",
    REFCOUNT_DEC_LEAK: "decrement hit 0; leaking memory",
}


class refcount_t:
    """``refcount_t``: ``{ atomic_t refs; }`` (``r.refs`` is the word, named ``name``)."""

    __slots__ = ("refs",)

    def __init__(self, name, n=0):
        self.refs = atomic_t(name, n)

    @property
    def name(self):
        return self.refs.name

    def get(self, kernel):
        """The counter in ``kernel``'s run (no preemption point, no hook), signed as ``refs.counter``."""
        return self.refs.get(kernel)

    def __repr__(self):
        return f"refcount_t({self.refs.name})"


def REFCOUNT_INIT(n):
    """``REFCOUNT_INIT(n)``: the initial value, for ``refcount_t(name, REFCOUNT_INIT(n))``."""
    return n


async def refcount_warn_saturate(r, t):
    """lib/refcount.c: pin the counter at REFCOUNT_SATURATED, then WARN."""
    await refcount_set(r, REFCOUNT_SATURATED)
    _current.get().kernel.warn(f"refcount_t: {_SATURATION.get(t, 'unknown saturation event!?')}.")


async def refcount_set(r, n):
    await atomic_set(r.refs, n)


async def refcount_set_release(r, n):
    await atomic_set_release(r.refs, n)


async def refcount_read(r):
    """``refcount_read(r)``: the counter as C's ``unsigned int``."""
    return (await atomic_read(r.refs)) & UINT_MAX


async def refcount_add_not_zero(i, r):
    """``refcount_add_not_zero(i, r)``: relaxed; false (nothing added) if the count is 0."""
    old, _ = await _op(r.refs, lambda old: old + i if old else None, _RELAXED)
    if old < 0 or _wrap(old + i, 32) < 0:
        await refcount_warn_saturate(r, REFCOUNT_ADD_NOT_ZERO_OVF)
    return old != 0


async def refcount_inc_not_zero(r):
    return await refcount_add_not_zero(1, r)


async def refcount_add(i, r):
    """``refcount_add(i, r)``: relaxed; on 0 WARNs addition on 0 (use-after-free)."""
    old, _ = await _op(r.refs, lambda old: old + i, _RELAXED)  # atomic_fetch_add_relaxed
    if not old:
        await refcount_warn_saturate(r, REFCOUNT_ADD_UAF)
    elif old < 0 or _wrap(old + i, 32) < 0:
        await refcount_warn_saturate(r, REFCOUNT_ADD_OVF)


async def refcount_inc(r):
    await refcount_add(1, r)


async def refcount_sub_and_test(i, r):
    """``refcount_sub_and_test(i, r)``: release; acquire too when it hits 0
    (true).  Underflow WARNs and saturates."""
    old, _ = await _op(r.refs, lambda old: old - i, _RELEASE, acquire_if=lambda old: old > 0 and old == i)
    if old > 0 and old == i:
        return True  # smp_acquire__after_ctrl_dep(): the ACQUIRE above
    if old <= 0 or _wrap(old - i, 32) < 0:
        await refcount_warn_saturate(r, REFCOUNT_SUB_UAF)
    return False


async def refcount_dec_and_test(r):
    """``refcount_dec_and_test(r)``: true when this put dropped the last reference."""
    return await refcount_sub_and_test(1, r)


async def refcount_dec(r):
    """``refcount_dec(r)``: release; hitting 0 WARNs (the object leaks)."""
    old, _ = await _op(r.refs, lambda old: old - 1, _RELEASE)  # atomic_fetch_sub_release
    if old <= 1:
        await refcount_warn_saturate(r, REFCOUNT_DEC_LEAK)


async def refcount_dec_if_one(r):
    """``refcount_dec_if_one(r)``: the 1 -> 0 transition (release), or nothing."""
    _, new = await _op(r.refs, lambda old: 0 if old == 1 else None, _RELEASE)
    return new is not None


async def refcount_dec_not_one(r):
    """``refcount_dec_not_one(r)``: decrement (release) unless the count is 1;
    false only then.  Saturated stays; 0 WARNs underflow."""
    saturated = REFCOUNT_SATURATED & UINT_MAX

    def dec(old):
        val = old & UINT_MAX
        return None if val in (saturated, 1, 0) else old - 1

    old, new = await _op(r.refs, dec, _RELEASE)
    val = old & UINT_MAX
    if val == 1:
        return False
    if new is None and val == 0:
        _current.get().kernel.warn("refcount_t: underflow; use-after-free.")
    return True


async def refcount_dec_and_lock(r, lock):
    """``refcount_dec_and_lock(r, lock)``: true, holding ``lock``, if this put
    dropped the last reference."""
    if await refcount_dec_not_one(r):
        return False
    await spin_lock(lock)
    if not await refcount_dec_and_test(r):
        spin_unlock(lock)
        return False
    return True


async def refcount_dec_and_mutex_lock(r, lock):
    """``refcount_dec_and_mutex_lock(r, lock)``: as :func:`refcount_dec_and_lock`, with a mutex."""
    if await refcount_dec_not_one(r):
        return False
    await mutex_lock(lock)
    if not await refcount_dec_and_test(r):
        mutex_unlock(lock)
        return False
    return True
