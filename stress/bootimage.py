"""Boot images: a schedule starts from a copy of the machine its scenario booted.

Boot (probe, default domains, the user's domains, runtime PM) is the same
for every schedule of a search whose scenarios share a boot configuration.
A scenario that says how it boots (a :class:`BootRecipe`: the driver
workloads do) gets an image: the pickled state right after
``kernel.setup`` ran - the kernel, every observer attached to it, and the
state its CPU bodies work on - and later schedules start from an unpickled
copy instead of booting again.  A copy costs about half a boot (1.7 M
instructions against 3.6 M on the default machine: unpickling makes every
object again, ~450 of them), so a default-workload schedule is ~10% cheaper
and one with empty programs ~23%.

A run from an image is the run a real boot would have given, decision for
decision and byte for byte:

* boot makes no decision (it runs alone on the boot CPU: no preemption, no
  failure point), so the state after it is a function of the recipe's key,
  the checkers and the run's flags (``kasan_reported``, ``inject_failures``,
  ``coverage``): all of them key the image;
* the one state a run shares with others is lockdep's graph.  An image is
  taken only from a boot that taught the graph nothing (no new chain, so no
  new edge, and no new usage bit: the second schedule of a search, or any
  run on a graph recorded after one) and is used only on that graph, which
  only grows, or on another copy of the same recorded base.  There every
  lock the boot takes hits lockdep's chain cache and every usage bit is
  known, so a real boot would learn and report nothing either;
* what the run does not own is shared, not copied: the run's lock graph,
  and every object a module holds at its top level or in a class
  attribute (a module-level ``Mutex`` or ``Shared`` cell, sentinels);
* a state that does not pickle (a closure, a Trio object) is simply not
  imaged: that scenario boots every time, as it did before images existed.
  A boot that reported a violation is never imaged.

A search's copy is freed as soon as its run ends without a violation
(:func:`release`, asked for by ``release=True`` in
:func:`stress.run.run_schedule_async`): the copy is a web of reference
cycles that the cycle collector would otherwise find, schedules later, in
its older generations.

Images live in the process, per graph (a weak reference: they go with
it); a soak's workers each keep their own.  ``IOMMU_STRESS_BOOT_IMAGES=0``
turns them off (:data:`ENABLED`), for a bisection that suspects them.
"""

from __future__ import annotations

import contextlib
import copyreg
import io
import os
import pickle
import sys
import types
import weakref
from dataclasses import dataclass
from typing import Callable

from model.kernel.core import _no_report

__all__ = ["ENABLED", "FRESH", "BootRecipe", "wrap", "owner_of", "find", "refused", "take", "release", "graph_mark", "disabled"]

#: images on (``IOMMU_STRESS_BOOT_IMAGES=0``: every schedule boots)
ENABLED = os.environ.get("IOMMU_STRESS_BOOT_IMAGES", "1") != "0"


@dataclass(frozen=True)
class BootRecipe:
    """How a scenario boots, apart from its CPUs: ``scenario(kernel)`` is
    ``bodies(boot(kernel))``, and two scenarios with the same ``key`` boot
    the same machine."""

    key: tuple  # hashable: the driver and its boot configuration (not the programs)
    boot: Callable  # kernel -> state: registers the setup and teardown on the kernel
    bodies: Callable  # state -> one async callable per CPU
    after_boot: tuple = ()  # fn(kernel) each, on the booted (or copied) kernel, before bodies: see wrap()
    image: bool = True  # False: this boot runs for real each time (never imaged, never a copy)


def wrap(scenario, before):
    """``scenario`` with ``before(kernel)`` called each time it is built (an
    engine's own observer or budget), its boot recipe kept.  From a boot
    image ``before`` runs on the copy, after the boot it stands for: only
    for something that does not watch the boot (an observer of workload
    operations, a counter)."""

    def run(kernel):
        before(kernel)
        return scenario(kernel)

    run.__qualname__ = getattr(scenario, "__qualname__", "scenario")
    recipe = getattr(scenario, "boot_recipe", None)
    if recipe is not None:
        run.boot_recipe = lambda: _with_after_boot(recipe(), before)
    return run


def _with_after_boot(recipe, fn):
    return BootRecipe(recipe.key, recipe.boot, recipe.bodies, recipe.after_boot + (fn,), recipe.image)


@contextlib.contextmanager
def disabled():
    """Every schedule run inside boots (a benchmark's baseline)."""
    global ENABLED
    saved, ENABLED = ENABLED, False
    try:
        yield
    finally:
        ENABLED = saved


_NEVER = object()  # this key does not image (its state does not pickle)

# owner (a graph, or FRESH) -> {key: _Image or _NEVER}
_IMAGES = weakref.WeakKeyDictionary()

# what pickling must never copy: the type's module starts with one of these
_FOREIGN = ("trio", "outcome", "hypothesis", "stress.scheduler", "stress.choosers", "stress.engine")

# module-level values pickled by name anyway, or immutable: never shared by reference
_BY_VALUE = (type, types.FunctionType, types.BuiltinFunctionType, types.ModuleType, int, float, str, bytes, bool, type(None))


class _Refused(Exception):
    """The state holds something a copy must not hold (no image for it)."""


class _Fresh:
    """The owner of the images of runs whose graph starts empty (a fresh one
    per schedule, or a search's first): there what the boot taught lockdep
    is part of the image."""

    __slots__ = ("__weakref__",)


FRESH = _Fresh()

# at most this many images per owner (each ~12 KB): a process that runs many
# machine configurations (a test session) starts over past it
_PER_OWNER = 256


def owner_of(graph, lock_graph, lockdep_base):
    """What the boot's lockdep state depends on besides the image key: nothing
    (:data:`FRESH`) on an empty graph, else the shared graph or the base copied."""
    if graph.empty():
        return FRESH
    return lock_graph if lock_graph is not None else lockdep_base


def graph_mark(graph):
    """What lockdep knows, counted: it changes exactly when a boot teaches the graph something."""
    return len(graph.chains), sum(map(len, graph.usage.values()))


def find(owner, key):
    """``load(graph)`` for the image of ``key`` on ``owner``'s graph, or None:
    it gives ``((kernel, state), instances)``, a copy and what :func:`release`
    empties."""
    images = _IMAGES.get(owner) if ENABLED else None
    image = images.get(key) if images is not None else None
    if image is None or image is _NEVER:
        return None
    return image.load


def refused(owner, key):
    """Whether ``key`` is known not to image on ``owner`` (its state did not pickle)."""
    images = _IMAGES.get(owner)
    return images is not None and images.get(key) is _NEVER


def take(owner, key, kernel, graph, state):
    """Image the booted ``kernel`` (with ``state``, what the CPU bodies need);
    ``graph`` is the run's lock graph: every copy uses its own run's, which
    for :data:`FRESH` learns what this boot taught it."""
    if not ENABLED:
        return
    images = _IMAGES.setdefault(owner, {})
    if len(images) >= _PER_OWNER:
        images.clear()
    report, kernel.report = kernel.report, _no_report  # the scheduler's: each run sets its own
    try:
        images[key] = _Image.dump((kernel, state), graph, graph.copy() if owner is FRESH else None)
    except Exception:  # noqa: BLE001 - whatever does not pickle (ctypes, a closure, a Trio object): no image
        images[key] = _NEVER
    finally:
        kernel.report = report


def _shared():
    """id -> object, for every object a loaded module holds at top level or
    in a class attribute: scanned again when a module was imported since
    (the model binds its module-level objects at import)."""
    if _SHARED and _SHARED[0] == len(sys.modules):
        return _SHARED[1]
    out = _scan()
    _SHARED[:] = [len(sys.modules), out]  # the objects are kept: their ids stay theirs
    return out


_SHARED = []  # [len(sys.modules) when scanned, its _scan()]


def _scan():
    out = {}
    for modname, mod in list(sys.modules.items()):
        if modname == "__main__":  # a script's globals may hold a run's objects
            continue
        try:
            values = list(vars(mod).values())
            for value in values:
                if isinstance(value, type) and value.__module__ == modname:
                    out.update((id(v), v) for v in list(vars(value).values()) if not isinstance(v, _BY_VALUE))
                elif not isinstance(value, _BY_VALUE):
                    out[id(value)] = value
        except Exception:  # noqa: BLE001 - a module of proxies or lazy attributes: its objects are not the model's
            continue
    return out


class _Pickler(pickle.Pickler):
    """Pickles a booted state: ``refs[i]`` is what persistent id ``i`` names
    (0: the run's ``graph``, then the modules' objects, classes, functions
    and strings met: a reference loads as a list index, where a global is
    imported again by name at every load and a string decoded, hashed and,
    as an attribute's name, interned again)."""

    def __init__(self, buf, graph):
        super().__init__(buf, protocol=pickle.HIGHEST_PROTOCOL)
        self.graph = graph
        self.shared = _shared()
        self.index = {}  # id -> persistent id
        self.refs = [None]

    def persistent_id(self, o):
        if o is self.graph:
            return 0
        i = self.index.get(id(o))
        if i is None and (type(o) is str or id(o) in self.shared or isinstance(o, _GLOBALS) and _by_name(o)):
            i = self.index[id(o)] = len(self.refs)
            self.refs.append(o)
        if i is None and type(o).__module__.startswith(_FOREIGN):
            raise _Refused(type(o).__qualname__)
        return i

    def reducer_override(self, o):
        return _reduce(o)


class _Memoized(pickle.Pickler):
    """Pickles a state whose references (a :class:`_Pickler`'s ``refs``) are
    on the memo already, ``refs[i]`` at index ``i`` (see :func:`_memoized`)."""

    def __init__(self, buf, refs):
        super().__init__(buf, protocol=pickle.HIGHEST_PROTOCOL)
        self.memo = {id(o): (i, o) for i, o in enumerate(refs)}
        self.instances = []  # every object pickled by _reduce, in order

    def reducer_override(self, o):
        r = _reduce(o)
        if r is not NotImplemented:
            self.instances.append(o)
        return r


# what pickle saves as a global (its module and name), when it is found by them
_GLOBALS = (type, types.FunctionType)


def _by_name(o):
    """Whether ``o`` is what its module and qualified name name (as pickle
    checks: a closure or a class made in a function is not, and stays
    unpicklable)."""
    found = sys.modules.get(o.__module__)
    for part in o.__qualname__.split("."):
        found = getattr(found, part, None)
    return found is o


def _reduce(o):
    """How an instance of a plain class pickles: created bare, then its
    attributes set one by one, as ``setattr`` would (the "slot state" of
    pickle's BUILD, which the unpickler sets in C; a class that overrides
    ``__setattr__``, a frozen dataclass, through :func:`_set_attributes`).
    Pickle's own way fills ``o.__dict__``, which makes CPython keep the
    object's attributes in a real dict instead of its inline values: every
    attribute access on the copy would then be slower than on a booted
    object."""
    cls = type(o)
    plain = _PLAIN.get(cls)
    if plain is None:
        plain = _PLAIN[cls] = _plain(cls)
    if not plain or not hasattr(o, "__dict__"):
        return NotImplemented
    if plain is _SETATTR:
        return (copyreg.__newobj__, (cls,), (None, dict(o.__dict__)))
    return (copyreg.__newobj__, (cls,), dict(o.__dict__), None, None, _set_attributes)


_SETATTR = "setattr"  # _plain(): a plain class whose instances take the builtin setattr


def _plain(cls):
    """Whether :func:`_reduce` pickles instances of ``cls`` (and how: :data:`_SETATTR`)."""
    plain = (
        cls.__flags__ & _HEAPTYPE  # a class written in Python
        and cls.__reduce_ex__ is object.__reduce_ex__
        and cls.__reduce__ is object.__reduce__
        and getattr(cls, "__getstate__", object.__getstate__) is object.__getstate__
        and getattr(cls, "__setstate__", None) is None
        and "__slots__" not in vars(cls)
        and not issubclass(cls, (type, list, dict, set, tuple, str, bytes, int, float, frozenset))
        and all(getattr(b, "__slots__", ()) == () for b in cls.__mro__[1:-1])
    )
    return plain and (_SETATTR if cls.__setattr__ is object.__setattr__ else True)


_PLAIN = {}  # class -> _plain(class)
_HEAPTYPE = 1 << 9  # Py_TPFLAGS_HEAPTYPE


def _memoized(n):
    """The opcodes that push persistent ids ``0 .. n-1`` onto the unpickler's
    memo, in order (``memo[i]`` is reference ``i``), leaving the stack empty:
    one frame (the unpickler reads it at once, not an opcode at a time)."""
    ops = []
    for i in range(n):
        ops += [pickle.BININT2, i.to_bytes(2, "little")] if i < 65536 else [pickle.BININT, i.to_bytes(4, "little")]
        ops += [pickle.BINPERSID, pickle.MEMOIZE, pickle.POP]
    frame = b"".join(ops)
    return pickle.PROTO + bytes([pickle.HIGHEST_PROTOCOL]) + pickle.FRAME + len(frame).to_bytes(8, "little") + frame


def _set_attributes(obj, state):
    for name, value in state.items():
        object.__setattr__(obj, name, value)  # frozen dataclasses


@dataclass(frozen=True)
class _Image:
    """A booted state, pickled; ``shared[i]`` is what its persistent id ``i``
    names (0: the run's graph); ``learnt`` what the boot taught a fresh graph."""

    data: bytes
    shared: tuple
    learnt: object = None

    @classmethod
    def dump(cls, obj, graph, learnt=None):
        buf = io.BytesIO()
        pickler = _Pickler(buf, graph)
        pickler.dump(obj)  # finds the references (and refuses what must not be copied)
        refs = pickler.refs
        # Again, each reference memoized before the state: the state names it
        # by its memo index (BINGET, in C), not by a persistent id (a call)
        # at every use: a string names many attributes.
        buf = io.BytesIO()
        memoized = _Memoized(buf, [graph, *refs[1:]])
        # the list is pickled after the state: each of its items is a BINGET
        memoized.dump((obj, memoized.instances))
        return cls(_memoized(len(refs)) + buf.getvalue(), tuple(refs), learnt)

    def load(self, graph):
        """A fresh copy of the state, on ``graph`` and sharing the modules'
        objects, and the copy's instances (for :func:`release`)."""
        if self.learnt is not None:
            graph.learn_from(self.learnt)
        unpickler = pickle.Unpickler(io.BytesIO(self.data))
        unpickler.persistent_load = [graph, *self.shared[1:]].__getitem__  # C all the way: no Python frame per reference
        return unpickler.load()


def release(instances):
    """Free a copy whose run is over, now: each of its instances (of a plain
    class: :func:`_reduce`) forgets its attributes, which breaks every cycle
    through them (kernel and CPUs, observers and their hooks, devices and
    drivers), so reference counting frees the copy at once.  Left to
    Python's cycle collector, a search's dead copies pile up to be traversed
    in its older generations: a tenth of a default-workload schedule's time.
    Only for a copy no one looks at again: an object of it kept past this
    has no attributes left."""
    for o in instances:
        o.__dict__.clear()
