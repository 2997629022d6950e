"""Kernel-style splat text: the pieces every checker's report is made of.

A splat reads like the kernel's own report of the same bug, so that it can
be pasted into a reply and recognised: lockdep's and KCSAN's framing,
``__warn`` (lib/bug.c, kernel/panic.c), the oops, the hung-task and
soft-lockup watchdogs, KASAN, ``debug_show_all_locks``.  What the kernel
prints as an address or a time has no meaning in the model and is left out
or fixed (``PID: 0``), so the same find always gives the same bytes.

Stack frames are shown as the model takes them (``function (path/file.py:LINE)``,
a kernel primitive by name only), innermost first, one per line.  Nothing
here runs during a search: a checker builds its text when it reports.
"""

from __future__ import annotations

import re

__all__ = [
    "CUT_HERE",
    "END_TRACE",
    "KASAN_RULE",
    "at",
    "complete_splat",
    "culprit",
    "cpu_line",
    "cpu_name",
    "cpu_number",
    "default_splat",
    "dump_stack",
    "func",
    "held_lock_lines",
    "hung_splat",
    "kasan_lines",
    "location",
    "oops_splat",
    "soft_lockup_splat",
    "trace",
    "value",
    "warn_lines",
    "warn_site",
]

CUT_HERE = "------------[ cut here ]------------"
END_TRACE = "---[ end trace 0000000000000000 ]---"
#: the rule above and below a KASAN or KCSAN report
KASAN_RULE = "=" * 66


def _located(frame):
    return frame.endswith(")") and " (" in frame


def at(stack):
    """The frame an instruction pointer would name: the first one with a file (the
    caller of a primitive, as ``_RET_IP_``), else the first; ``?`` for no stack."""
    for fr in stack or ():
        if _located(fr):
            return fr
    return stack[0] if stack else "?"


#: functions that only pass a WARN on (``_warn(msg)`` helpers): the WARNING line names their caller
_WARN_HELPERS = frozenset({"_warn", "warn"})
_OWN = ("model/", "stress/", "strategies/")


def warn_site(stack):
    """The frame a ``WARN()`` is at: the first with a file that is no WARN helper."""
    for fr in stack or ():
        if _located(fr) and func(fr) not in _WARN_HELPERS:
            return fr
    return at(stack)


def culprit(stack):
    """The frame of driver or user code a report is about: the innermost in
    ``model/drivers/`` or outside this tool's packages, else :func:`at` (the
    rule the find's signature names it by, :mod:`stress.soak.signature`)."""
    for fr in stack or ():
        if _located(fr):
            path = location(fr)
            if path.startswith("model/drivers/") or not path.startswith(_OWN):
                return fr
    return at(stack)


def func(frame):
    """The function of a frame (``%ps``: no offset)."""
    name = _FUNC.get(frame)
    if name is None:
        name = _FUNC[frame] = frame.split(" (", 1)[0] if frame else "?"
    return name


_FUNC = {}  # frame text -> its function (a stack's frames are a few thousand strings at most)


def location(frame):
    """``path/file.py:LINE`` of a located frame, else None."""
    if frame and _located(frame):
        return frame.rsplit(" (", 1)[1][:-1]
    return None


def cpu_number(cpu):
    return max(cpu.id, 0) if cpu is not None else 0


def cpu_line(cpu):
    """``dump_stack_print_info``: ``CPU: 0 PID: 0 Comm: CPU0`` (no pid, no kernel version)."""
    return f"CPU: {cpu_number(cpu)} PID: 0 Comm: {cpu_name(cpu)}"


def trace(stack, indent=1):
    """``stack_trace_print``: one frame a line, ``indent`` spaces in."""
    pad = " " * indent
    return [pad + fr for fr in stack] if stack else [pad + "(no model frames)"]


def dump_stack(cpu, stack):
    """``dump_stack()``: the CPU line, ``Call trace:`` and the frames."""
    return [cpu_line(cpu), "Call trace:", *trace(stack)]


def warn_lines(cpu, stack, message_lines, where=None):
    """``WARN()`` through ``__warn`` (lib/bug.c, kernel/panic.c)::

        ------------[ cut here ]------------
        WARNING: CPU: 0 PID: 0 at model/drivers/vsi_v3.py:441 vsi_iommu_domain_free
        <the message>
        CPU: 0 PID: 0 Comm: CPU0
        Call trace:
         <frames>
        ---[ end trace 0000000000000000 ]---

    ``where``: the frame the WARNING line names (default: :func:`warn_site` of ``stack``).
    """
    fr = where or warn_site(stack)
    loc = location(fr)
    site = f"{loc} {func(fr)}" if loc else func(fr)
    return [
        CUT_HERE,
        f"WARNING: CPU: {cpu_number(cpu)} PID: 0 at {site}",
        *message_lines,
        *dump_stack(cpu, stack),
        END_TRACE,
    ]


_ADDR = re.compile(r" at 0x[0-9a-fA-F]+")


def value(v):
    """A cell's value as a report shows it: integers in hex, no object addresses."""
    if v is None:
        return "NULL"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return f"{v:#x}" if v >= 0 else str(v)
    return _ADDR.sub("", repr(v))


def cpu_name(cpu):
    return repr(cpu) if cpu is not None else "swapper/0"


def kasan_lines(cpu, bug, stack, message_lines, where=None):
    """A KASAN report (mm/kasan/report.c)::

        ==================================================================
        BUG: KASAN: double-free in vsi_iommu_domain_free
        <what was accessed, by whom>

        CPU: 0 PID: 0 Comm: CPU0
        Call trace:
         <frames>
        ==================================================================

    ``where``: the function the title names (default: that of :func:`at` of ``stack``).
    """
    name = where or func(at(stack))
    lines = [KASAN_RULE, f"BUG: KASAN: {bug} in {name}", *message_lines, ""]
    if stack or cpu is not None:
        lines += dump_stack(cpu, stack)
    return lines + [KASAN_RULE]


def _kasan_bug(message):
    """The KASAN bug type an ``invalid-access`` message describes."""
    if message.startswith("double "):
        return "double-free"
    if "NULL" in message:
        return "null-ptr-deref"
    if "freed" in message or "use after free" in message:
        return "use-after-free"
    return "invalid-access"


def default_splat(kind, message, stacks, cpu):
    """The splat of a report that brings none: ``WARN()`` for an assertion (and
    any kind this module does not know), KASAN for an invalid access."""
    stack = next(iter(stacks.values()), ()) if stacks else ()
    if kind == "invalid-access":
        lines = kasan_lines(cpu, _kasan_bug(message), stack, [message])
    elif kind == "assertion":
        lines = warn_lines(cpu, stack, [message])
    else:
        lines = warn_lines(cpu, stack, [f"{kind}: {message}"])
    return "\n".join(lines)


def complete_splat(splat, stacks):
    """``splat`` with every stack of ``stacks`` it does not already show appended."""
    extra = []
    for label, frames in stacks.items():
        if frames and not all(fr in splat for fr in frames):
            extra += ["", f"{label}:", *trace(frames)]
    return "\n".join([splat, *extra]) if extra else splat


def oops_splat(cpu, exc, message, stack):
    """A crash of model or driver code (a Python exception), as the kernel's oops.

    ``None`` used as an object is a NULL pointer dereference; a ``ModelBug``
    (BUG_ON in the model) is ``kernel BUG at``; anything else an oops naming
    the exception.
    """
    from model.kernel.cpu import ModelBug

    lines = []
    if isinstance(exc, ModelBug):
        lines += [f"kernel BUG at {location(at(stack)) or func(at(stack))}!", f"Internal error: Oops - BUG: {message} [#1] PREEMPT SMP"]
    else:
        if isinstance(exc, (AttributeError, TypeError)) and "NoneType" in str(exc):
            lines.append("BUG: kernel NULL pointer dereference, address: 0000000000000000")
        lines.append(f"Oops: {message} [#1] PREEMPT SMP")
    lines += [cpu_line(cpu), f"pc : {stack[0] if stack else '?'}", "Call trace:", *trace(stack), END_TRACE]
    return "\n".join(lines)


def _task_line(cpu, state):
    """``sched_show_task()`` (no stack size, no pids)."""
    return f"task:{cpu_name(cpu):<15.15} state:{state} stack:0     pid:0     tgid:0     ppid:0      flags:0x00000000"


def hung_splat(stuck, stacks):
    """The hung-task watchdog (kernel/hung_task.c) for each CPU that waits forever."""
    lines = []
    for c in stuck:
        lines += [
            f"INFO: task {cpu_name(c)} blocked for more than 120 seconds.",
            f"      {cpu_name(c)} waits for {c.blocked_on!r}",
            _task_line(c, "D"),
            "Call trace:",
            *trace(stacks.get(c, ())),
        ]
    return "\n".join(lines)


def soft_lockup_splat(cpu, steps, message, stack, others):
    """The soft-lockup watchdog (kernel/watchdog.c): ``cpu`` never gave up the CPU;
    ``others``: ``(cpu, stack)`` of the other CPUs, as an all-CPU NMI backtrace."""
    lines = [
        f"watchdog: BUG: soft lockup - CPU#{cpu_number(cpu)} stuck for {steps} steps! [{cpu_name(cpu)}:0]",
        message,
        cpu_line(cpu),
        f"pc : {at(stack)}",
        "Call trace:",
        *trace(stack),
    ]
    shown = [(c, s) for c, s in others if s]
    if shown:
        lines += ["", f"Sending NMI from CPU {cpu_number(cpu)} to CPUs {', '.join(str(cpu_number(c)) for c, _ in shown)}:"]
        for c, s in shown:
            lines += [f"NMI backtrace for cpu {cpu_number(c)}", *dump_stack(c, s)]
    return "\n".join(lines)


def held_lock_lines(cpu):
    """``lockdep_print_held_locks()`` from the CPU's own list, without lockdep:
    the locks, in acquisition order, but neither their usage nor where they were taken."""
    held = cpu.held
    if not held:
        return []
    return [f"{len(held)} lock{'s' if len(held) > 1 else ''} held by {cpu_name(cpu)}:"] + [
        f" #{i}: ({lock!r})" for i, lock in enumerate(held)
    ]
