"""Stacks for splats: the model's frames, innermost first, one format everywhere.

A frame is shown as ``function (path/file.py:LINE)``.  ``path`` is short and
stable (never an absolute path of the checkout, so reports are the same
bytes on every machine):

* relative to the package root for code under it: ``model/drivers/vsi_v3.py``,
  ``stress/workload.py``, ``tests/plugins/drivers.py``;
* else relative to the current directory when the file is under it;
* else (or when the file is an installed package's, under ``site-packages``)
  the path its module name implies (``scen.py`` for a module ``scen`` found
  on ``sys.path``, ``pkg/drivers.py`` for ``pkg.drivers``), or the file's
  parent directory and name when the name does not match the file.

Kernel primitives (``spin_lock``, ``kfree``, ... in :data:`PRIMITIVES`)
appear by name only; the rest of ``model.kernel`` is plumbing and is
skipped, as are the checkers' own frames (``stress.lockdep``,
``stress.race``, ``stress.oracles``, ...).  Trio, outcome, Hypothesis and
pytest frames end the walk, and so does the engine (``stress.engine``) and
the scheduler (``stress.scheduler``) - except the scheduler frames the walk
starts in: a stack taken inside the scheduler (the CPU that finds a deadlock
or a livelock) skips them and shows the CPU's own frames.  An IRQ handler's
stack ends at the scheduler frame that ran it.

Three walks share the format: :func:`model_stack` (the caller's frames,
``sys._getframe``), :func:`coro_stack` (a parked coroutine chain,
``cr_frame``/``cr_await``) and :func:`traceback_stack` (a crash).  How a
code object is shown is decided once and cached: ``model_stack`` runs on
every lock acquisition.
"""

from __future__ import annotations

import os
import sys

__all__ = ["PRIMITIVES", "model_stack", "coro_stack", "traceback_stack", "frame_where"]

#: the most frames a stack keeps (a guard against runaway recursion only)
LIMIT = 64

# Primitive names that stay visible in stacks (the rest of model.kernel is plumbing).
PRIMITIVES = frozenset(
    {
        "spin_lock",
        "spin_lock_irqsave",
        "spin_lock_nested",
        "spin_trylock",
        "spin_lock_irq",
        "mutex_unlock",
        "spin_unlock",
        "spin_unlock_irqrestore",
        "free_pages",
        "kfree",
        "mutex_lock",
        "msleep",
        "might_sleep",
        "alloc_pages",
        "kmalloc",
        "pm_runtime_resume_and_get",
        "pm_runtime_get_sync",
        # softirqs, rwlocks, completions, workqueues, timers, RCU, IRQs
        "local_bh_enable",
        "raise_softirq",
        "do_softirq",
        "spin_lock_bh",
        "read_lock",
        "write_lock",
        "read_lock_irqsave",
        "write_lock_irqsave",
        "read_lock_irq",
        "write_lock_irq",
        "read_lock_bh",
        "write_lock_bh",
        "down_read",
        "down_write",
        "wait_for_completion",
        "complete",
        "process_one_work",
        "queue_work",
        "flush_work",
        "cancel_work_sync",
        "flush_workqueue",
        "call_timer_fn",
        "mod_timer",
        "timer_delete_sync",
        "synchronize_rcu",
        "rcu_core",
        "synchronize_irq",
    }
)

# How a code object is shown: one of these sentinels, a primitive's name (a
# str), or a _Lines: the frame's text per line number.
_STOP = object()  # end the walk
_SCHED = object()  # the scheduler: skipped where the walk starts, else ends it
_SKIP = object()  # not shown
_LINE = object()  # shown with its file and line
# id(code) -> how it is shown.  Keyed by id: a code object's hash is computed
# from its names and constants on every lookup (hundreds of ns for a driver
# function), an int's is itself.  _CODES keeps each code alive: its id stays its own.
_HOW = {}
_CODES = []

_SCHED_MODULES = frozenset({"stress.scheduler", "stress.cputasks"})
_STOP_MODULES = frozenset({"stress.engine", "stress.run"})
_STOP_PREFIXES = ("trio", "outcome", "hypothesis", "_pytest", "pluggy")
_SKIP_PREFIXES = ("stress.lockdep", "stress.race", "stress.trace", "stress.oracles", "stress.checkers", "stress.search")

#: the directory holding the ``model`` package (the checkout, or site-packages)
_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_WHERE = {}


def _kind(mod):
    if mod in _SCHED_MODULES:
        return _SCHED
    if mod in _STOP_MODULES or mod.startswith(_STOP_PREFIXES):
        return _STOP
    if mod.startswith("model.kernel"):
        return None  # a primitive or plumbing: by the function's name
    if mod.startswith(_SKIP_PREFIXES):
        return _SKIP
    return _LINE


def _classify(code, globals_):
    mod = globals_.get("__name__") or ""
    kind = _kind(mod)
    if kind is None:
        return code.co_name if code.co_name in PRIMITIVES else _SKIP
    if kind is _LINE:
        return _Lines(_prefix(code, mod))
    return kind


class _Lines(dict):
    """A frame's text per line number, made on first use (``lines[n]``): a
    stack walk then formats no string for a line it has shown before.

    ``at`` holds the same text per instruction offset (``f_lasti``): a
    frame's ``f_lineno`` is computed from its code's line table on every
    read, its ``f_lasti`` is a field, and one offset is always one line."""

    __slots__ = ("prefix", "at")

    def __init__(self, prefix):
        super().__init__()
        self.prefix = prefix  # "function (path:" : the text up to the line number
        self.at = {}  # f_lasti -> the text of its line

    def __missing__(self, lineno):
        text = self[lineno] = f"{self.prefix}{lineno})"
        return text


def _prefix(code, mod):
    return f"{code.co_name} ({frame_where(code.co_filename, mod)}:"


def _learn(frame):
    code = frame.f_code
    how = _HOW[id(code)] = _classify(code, frame.f_globals)
    _CODES.append(code)
    return how


def frame_where(filename, module=""):
    """The short, stable path shown for ``filename`` (of module ``module``)."""
    key = (filename, module)
    where = _WHERE.get(key)
    if where is None:
        where = _WHERE[key] = _where(filename, module)
    return where


def _where(filename, module):
    if not filename or filename.startswith("<"):
        return filename or "?"  # <string>, <frozen ...>, <stdin>
    path = os.path.abspath(filename)
    parts = path.split(os.sep)
    cwd = os.getcwd()
    for base in (_ROOT, cwd if cwd != os.sep else None):
        if base and path.startswith(base.rstrip(os.sep) + os.sep):
            rel = os.path.relpath(path, base).split(os.sep)
            if "site-packages" not in rel and "dist-packages" not in rel:  # not a venv's package
                return "/".join(rel)
    stem = os.path.splitext(parts[-1])[0]
    names = module.split(".") if module and module != "__main__" else []
    if stem == "__init__":
        stem = parts[-2] if len(parts) > 1 else stem
        n = len(names) + 1
    else:
        n = len(names)
    if names and names[-1] == stem and n < len(parts):
        return "/".join(parts[-n:])
    return "/".join(parts[-2:])


def model_stack(skip=1, limit=LIMIT):
    """The calling model code's frames, innermost first (see the module doc).

    ``skip`` counts from the caller of ``model_stack`` (1 = the caller).
    """
    f = sys._getframe(skip)
    how = _HOW.get(id(f.f_code))
    if how is None:
        how = _learn(f)
    while how is _SCHED:  # taken inside the scheduler: its frames are not the CPU's
        f = f.f_back
        if f is None:
            return ()
        how = _HOW.get(id(f.f_code))
        if how is None:
            how = _learn(f)
    out = []
    while True:
        cls = how.__class__
        if cls is _Lines:
            text = how.at.get(f.f_lasti)
            if text is None:
                text = how.at[f.f_lasti] = how[f.f_lineno]
            out.append(text)
        elif cls is str:
            out.append(how)
        elif how is not _SKIP:
            break
        f = f.f_back
        if f is None or len(out) >= limit:
            break
        how = _HOW.get(id(f.f_code))
        if how is None:
            how = _learn(f)
    return tuple(out)


def _format(entries, limit, full=False):
    """Frames ``(frame, lineno)``, innermost first, as :func:`model_stack` shows them.

    ``full`` (a crash): every frame short of the scheduler is shown with its
    line, primitives, plumbing and checkers too, where the exception went.
    """
    out = []
    leading = True
    for frame, lineno in entries:
        code = frame.f_code
        how = _HOW.get(id(code))
        if how is None:
            how = _learn(frame)
        if how is _SCHED or how is _STOP:
            if leading:
                continue
            break
        leading = False
        if full:
            out.append(f"{_prefix(code, frame.f_globals.get('__name__') or '')}{lineno})")
        elif how.__class__ is _Lines:
            out.append(how[lineno])
        elif how.__class__ is str:
            out.append(how)
        if len(out) >= limit:
            break
    return tuple(out)


def coro_stack(coro, limit=LIMIT):
    """The frames of a suspended coroutine chain (``cr_await``), innermost first.

    For a parked CPU: the chain runs from its task's coroutine down to the
    scheduler's park; that end (the scheduler's and Trio's frames) is
    skipped as in :func:`model_stack`.
    """
    frames = []
    while coro is not None:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is not None:
            frames.append((frame, frame.f_lineno))
        nxt = getattr(coro, "cr_await", None)
        if nxt is None:
            nxt = getattr(coro, "gi_yieldfrom", None)
        coro = nxt
    frames.reverse()
    return _format(frames, limit)


def traceback_stack(tb, limit=LIMIT):
    """The frames of a crash's traceback, innermost (the raise) first.

    Every frame up to the scheduler is kept, each with the line the
    exception passed through.
    """
    entries = []
    while tb is not None:
        entries.append((tb.tb_frame, tb.tb_lineno))
        tb = tb.tb_next
    entries.reverse()
    return _format(entries, limit, full=True)
