"""Bug reports: a versioned JSON document, and its text form for a mail reply.

Format (``"format": "iommu-stress-report"``, ``"version": 2``)::

    tool        tool version that wrote it
    target      what ran: {"scenario": "pkg.mod:fn"} or {"driver": ..., "workload": ...}
    strategy, seed, schedule    how it was found (schedule = index in the search)
    options     checkers, max_steps, pct_depth, bound; inject_failures (true, only
                when the search injected failures: replay injects them too)
    signature   the bug's name: kind and where (stress.soak.signature)
    decisions   the shrunk schedule (replay input)
    found_decisions   length of the schedule before shrinking
    preemptions, points
    violation   kind, message, splat, stacks {label: [frames]}, cpu, point, and
                ``assumptions`` (hardware facts the verdict rests on) if any
    timeline    [[step, actor, what, detail], ...]
    prior       only for a lockdep find that rests on orders seen in earlier
                schedules of the search: [{schedule, target, decisions}, ...],
                replayed in order (lockdep's graph only) before ``decisions``
    injected    only when the schedule failed a call (failure injection):
                [{call, result, cpu, op, where}, ...], the calls that failed

Version 2 (this one) added ``prior`` and ``signature`` and prints stack frames as
``function (path/file.py:LINE)``; version 1 reports still replay.  Failure
injection added ``options.inject_failures`` and ``injected`` without a new
version: a report without them replays as before (no failure point, no
decision for one), so every old report still replays.

Everything in it is derived from the seed and options: writing the same find
twice gives the same bytes.
"""

from __future__ import annotations

import json
import os
import re
import textwrap

from . import __version__
from .shrink import preemptions
from .errors import UsageError
from .soak.signature import signature

__all__ = [
    "FORMAT",
    "VERSION",
    "ReportError",
    "build_report",
    "dumps",
    "write_report",
    "write_atomic",
    "load_report",
    "report_text",
]

FORMAT = "iommu-stress-report"
VERSION = 2


class ReportError(ValueError):
    """A report file that cannot be replayed (one line, for the CLI)."""


def build_report(meta, index, outcome, original_decisions=None):
    v = outcome.violation
    return {
        "format": FORMAT,
        "version": VERSION,
        "tool": __version__,
        "target": meta["target"],
        "strategy": meta["strategy"],
        "seed": meta["seed"],
        "schedule": index,
        "options": meta["options"],
        "decisions": list(outcome.decisions),
        "found_decisions": original_decisions if original_decisions is not None else len(outcome.decisions),
        # an injected failure is a non-zero decision too, but no preemption
        "preemptions": preemptions(outcome.decisions) - len(getattr(outcome, "injected", None) or ()),
        "points": outcome.points,
        "signature": signature(v),
        "violation": {
            "kind": v["kind"],
            "message": v["message"],
            "splat": v["splat"],
            "stacks": v["stacks"],
            "cpu": v["cpu"],
            "point": v["point"],
            **({"assumptions": list(v["assumptions"])} if v.get("assumptions") else {}),
        },
        "timeline": outcome.timeline or [],
        **_injected(outcome),
    }


def _injected(outcome):
    """``{"injected": [...]}`` when the run failed calls (failure injection), else nothing."""
    failed = getattr(outcome, "injected", None)
    if not failed:
        return {}
    keys = ("call", "result", "cpu", "op", "where")
    return {"injected": [{k: f[k] for k in keys} for f in failed]}


def _failures(n):
    return f"{n} injected failure" + ("" if n == 1 else "s")


def injected_line(report):
    """The header line naming the calls failure injection failed, or None."""
    failed = report.get("injected")
    if not failed:
        return None
    what = "; ".join(
        f"{f['call'].split('(', 1)[0]} in {f['where']} failed ({f['cpu']}{': ' + f['op'] if f.get('op') else ''})"
        for f in failed
    )
    return f"with failure injection: {what}"


def dumps(report):
    return json.dumps(report, indent=1, sort_keys=True) + "\n"


def report_name(report):
    """``vsi-v3-data-race-s0-35``: the target's name, the kind, seed and schedule.

    A plugin driver is named by its ``name`` attribute, a scenario by its
    function; only ``[A-Za-z0-9_-]`` reach the file name.
    """
    t = report["target"]
    if t.get("driver"):
        from .workload import driver_label  # here: the engine imports no driver code

        try:
            what = driver_label(t["driver"])
        except UsageError:
            what = t["driver"]
    else:
        what = str(t.get("scenario") or "scenario").rsplit(":", 1)[-1]
    what = re.sub(r"[^A-Za-z0-9_-]+", "-", what).strip("-") or "target"
    return f"{what}-{report['violation']['kind']}-s{report['seed']}-{report['schedule']}"


def write_atomic(path, text):
    """Write ``text`` to ``path`` so that a crash leaves the old file or the new, never half.

    A temporary file beside it, flushed to the disk (fsync), then renamed over
    ``path``; the directory is synced too, so the rename itself survives.
    """
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    try:
        fd = os.open(os.path.dirname(path) or ".", os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_report(report, out_dir):
    """Write ``NAME.json`` and ``NAME.txt`` into ``out_dir``; returns the JSON path."""
    os.makedirs(out_dir, exist_ok=True)
    base = os.path.join(out_dir, report_name(report))
    for path, text in ((base + ".json", dumps(report)), (base + ".txt", report_text(report, path=base + ".json"))):
        write_atomic(path, text)
    return base + ".json"


def load_report(path):
    """Read and validate a report; raises :class:`ReportError` with one line."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise ReportError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ReportError(f"{path}: cannot read: {e}") from None
    except json.JSONDecodeError as e:
        raise ReportError(f"{path}: not a JSON report (line {e.lineno}: {e.msg})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ReportError(f"{path}: not an iommu-stress report (no \"format\": \"{FORMAT}\")")
    ver = data.get("version")
    if not isinstance(ver, int) or ver > VERSION or ver < 1:
        raise ReportError(f"{path}: report version {ver!r} is not supported (this tool reads version {VERSION})")
    for key, typ in (("target", dict), ("decisions", list), ("violation", dict), ("options", dict)):
        if not isinstance(data.get(key), typ):
            raise ReportError(f"{path}: field {key!r} missing or not a {typ.__name__}")
    if not all(isinstance(d, int) and d >= 0 for d in data["decisions"]):
        raise ReportError(f"{path}: decisions must be non-negative integers")
    if not isinstance(data["violation"].get("kind"), str):
        raise ReportError(f"{path}: violation has no kind")
    prior = data.get("prior", [])
    if not isinstance(prior, list) or not all(
        isinstance(p, dict)
        and isinstance(p.get("target"), dict)
        and isinstance(p.get("schedule"), int)
        and isinstance(p.get("decisions"), list)
        and all(isinstance(d, int) and d >= 0 for d in p["decisions"])
        for p in prior
    ):
        raise ReportError(f"{path}: field 'prior' must be a list of {{schedule, target, decisions}}")
    return data


def hardware_line(workload):
    """The hardware a driver workload ran on: SoC profile and TLB retention."""
    from model.hw.soc import DEFAULT_SOC, SOCS
    from model.hw.tlb import DEFAULT_RETENTION

    name = workload.get("soc") or DEFAULT_SOC
    soc = f"{name} ({SOCS[name].source})" if name in SOCS else str(name)
    retention = workload.get("tlb_retention")
    kept = ", ".join(map(str, DEFAULT_RETENTION if retention is None else retention)) or "nothing"
    masters = workload.get("masters") or 1
    behind = ""
    if masters > 1:
        groups = "one group per IOMMU" if workload.get("group") == "shared" else "each in its own group"
        behind = f"; {masters} masters behind each IOMMU, {groups}"
    return f"hardware: {soc}; the IOTLB survives: {kept}{behind}"


def report_text(report, *, full=False, path=None):
    """The mailing-list form: header, the splat, any stack it lacks, the schedule.

    ``full``: every event; otherwise boot and teardown are folded, except the
    events that touch an object the violation names (:func:`related_rows`).
    ``path``: the report file the "replay with" line names.
    """
    v = report["violation"]
    t = report["target"]
    what = ", ".join(f"{k}={val}" for k, val in sorted(t.items()) if val is not None and not isinstance(val, dict))
    lines = [
        f"iommu-stress {report['tool']}: {v['kind']} in {what}",
        f"found by {report['strategy']} (seed {report['seed']}, schedule {report['schedule']}); "
        f"shrunk to {len(report['decisions'])} decisions, {report['preemptions']} preemptions"
        + (f", {_failures(len(report['injected']))}" if report.get("injected") else ""),
        *([injected_line(report)] if report.get("injected") else []),
        *([hardware_line(t["workload"])] if isinstance(t.get("workload"), dict) else []),
        *(["rests on (hardware, not shown by the driver's source):", *(f"  {a}" for a in v["assumptions"])] if v.get("assumptions") else []),
        "",
        v["splat"],
        "",
    ]
    for label, frames in v["stacks"].items():
        if frames and _in_splat(v["splat"], frames):
            continue  # printed once, in the splat
        lines.append(f"{label}:")
        lines += [f"  {fr}" for fr in frames] or ["  (none)"]
    lines += ["", f"Schedule (replay with: iommu-stress replay {path or report_name(report) + '.json'}):", ""]
    timeline = report["timeline"]
    if full:
        rows = timeline
    else:
        keep, names = related_rows(timeline, v)
        rows = [r for r in timeline if r[1] not in _FOLDED or r[0] in keep]
        hidden = len(timeline) - len(rows)
        if hidden:
            shown = f"; shown: the {len(rows) - _count_unfolded(timeline)} that touch {', '.join(names)}" if keep else ""
            lines.append(f"({hidden} boot and teardown events omitted{shown}; --full or the JSON has them all)")
    lines += timeline_lines(rows)
    return "\n".join(line.rstrip() for line in lines) + "\n"


_FOLDED = ("boot", "teardown")


def _count_unfolded(timeline):
    return sum(1 for r in timeline if r[1] not in _FOLDED)


def _in_splat(splat, frames):
    return all(fr in splat for fr in frames)


# What a timeline row is about: its object, as the violation would name it.
# Loads and stores are left out: a cell is named by its class (every IOMMU's
# ``vsi_iommu->domain``), and boot and teardown are ordered before and after
# every CPU, so their accesses never take part in a race.
_ROW_OBJECTS = {
    "mutex_lock": lambda d: [d],
    "spin_lock": lambda d: [d],
    "trylock": lambda d: [d],
    "acquired": lambda d: [d],
    "unlock": lambda d: [d],
    "rpm": lambda d: [d.split(":", 1)[0]],
    "mmio": lambda d: re.findall(r"\((?:0x[0-9a-f]+, )?(\S+) \+", d),
    "iommu": lambda d: re.findall(r"[\w-]+\d", d.split(" ", 1)[1]) if " " in d else [],
    "alloc": lambda d: [d],
    "free": lambda d: [d],
}


def related_rows(timeline, violation):
    """Steps of boot/teardown rows that touch an object the violation names.

    An object is named when it occurs in the violation's message as a whole
    word (``dma-domain0``, ``iommu1``, ``&vsi_iommu->lock``,
    ``vsi_iommu->domain``).  An ``attach_dev`` or ``domain_free`` that touches
    one keeps every event up to the core's next step: it is what the object
    went through.  Returns ``(steps, names)``.
    """
    message = violation.get("message", "")
    named = {}
    for step, actor, what, detail in timeline:
        if actor not in _FOLDED or what not in _ROW_OBJECTS:
            continue
        for obj in _ROW_OBJECTS[what](detail):
            if obj not in named:
                named[obj] = bool(obj) and re.search(r"(?<![\w>&.-])" + re.escape(obj) + r"(?![\w-])", message) is not None
    keep, names, inside = set(), [], None
    for step, actor, what, detail in timeline:
        if actor not in _FOLDED:
            continue
        hit = what in _ROW_OBJECTS and any(named.get(o) for o in _ROW_OBJECTS[what](detail))
        if what == "iommu":
            # an attach or a domain_free spans the rows up to the core's next step
            starts = detail.startswith("domain_free") or (detail.startswith("attach_dev") and ": " in detail)
            if inside == actor and not starts:
                keep.add(step)
            inside = actor if hit and starts else None
        if hit or inside == actor:
            keep.add(step)
        if hit:
            names += [o for o in _ROW_OBJECTS[what](detail) if named.get(o) and o not in names]
    return keep, names


def actor_order(timeline):
    """Columns: CPUs in number order (CPU0 first), then the others as they
    appear (pm_wq, masters); boot and teardown run before and after them all
    and take whole lines instead."""
    actors = []
    for _, actor, _, _ in timeline:
        if actor != "-" and actor not in _FOLDED and actor not in actors:
            actors.append(actor)

    def key(a):
        m = re.fullmatch(r"CPU(\d+)", a)
        return (0, int(m.group(1)), 0) if m else (1, 0, actors.index(a))

    return sorted(actors, key=key)


def timeline_lines(timeline, max_width=60):
    """A side-by-side plain-text table: one column per actor, CPU0 first.

    A column is as wide as its longest cell up to ``max_width``; a longer
    cell wraps at spaces onto the next lines of its column and is never cut
    (a word longer than the column widens it).  The violation, boot and
    teardown events and events of no actor take a whole line.
    """
    actors = actor_order(timeline)
    cells = [(step, actor, f"{what} {detail}".strip()) for step, actor, what, detail in timeline]
    wrapped = {}
    widths = {a: len(a) for a in actors}
    for i, (step, actor, cell) in enumerate(cells):
        if actor not in widths or timeline[i][2] == "violation":
            continue
        parts = textwrap.wrap(cell, max_width, break_long_words=False, break_on_hyphens=False) or [""]
        wrapped[i] = parts
        widths[actor] = max(widths[actor], *(len(p) for p in parts))
    starts, col = {}, 6
    for a in actors:
        starts[a] = col
        col += widths[a] + 2
    head = "step  " + "".join(a.ljust(widths[a] + 2) for a in actors)
    out = [head.rstrip(), "-" * (col - 2)]
    for i, (step, actor, cell) in enumerate(cells):
        if i not in wrapped:
            out.append(f"{step:>4}  " + (cell if actor == "-" else f"{actor}: {cell}"))
            continue
        for j, part in enumerate(wrapped[i]):
            out.append(((f"{step:>4}" if j == 0 else "").ljust(starts[actor]) + part).rstrip())
    return out
