"""Signatures: the name of a bug, as syzbot titles a crash.

A signature is built from the violation's kind and where it happened, so
two finds of the same defect (other schedules, other programs) share it and
two defects of the same kind do not:

* ``data-race in vsi_iommu_flush_tlb / vsi_iommu_runtime_resume`` - the
  functions of the two accesses, sorted (KCSAN's title);
* ``lock-inversion &a -> &b`` - the cycle of lock classes, rotated to start
  at its smallest class (the same cycle closed from another lock is one bug);
* ``irq-lock-inversion &a -> &b`` - the classes the splat names;
* ``deadlock in f1 / f2`` - the functions each blocked CPU waits in;
* ``KIND: what`` for an oracle that names what went wrong (``where`` in
  the report: ``stale-tlb: an unmapped IOVA``, ``dma-isolation: identity
  bypass``);
* ``KIND in function`` for everything else (``sleep-in-atomic in
  vsi_iommu_irq``); with no stack at all, the message with its numbers
  blanked.

"Where" is the innermost frame of driver or user code (``model/drivers/``,
or anything outside this tool's packages), else the innermost frame with a
file; kernel primitives (``spin_lock``) never name a bug.  Nothing here
depends on line numbers, so an edit elsewhere in a file keeps signatures.
"""

from __future__ import annotations

import hashlib
import re

__all__ = ["signature", "slug"]

_OWN = ("model/", "stress/", "strategies/")
_CYCLE = re.compile(r"circular locking dependency (.+?) on \S+$")
_CLASSES = re.compile(r"\(([^()]+)\)")
_NUMBERS = re.compile(r"0x[0-9a-fA-F]+|\d+")


def _func(frame):
    return frame.split(" (", 1)[0]


def _where(frames):
    """The function that names a stack (see the module docstring), or None."""
    located = [f for f in frames if " (" in f]
    for f in located:
        path = f.rsplit(" (", 1)[1]
        if path.startswith("model/drivers/") or not path.startswith(_OWN):
            return _func(f)
    if located:
        return _func(located[0])
    return _func(frames[0]) if frames else None


def _wheres(stacks):
    out = []
    for frames in stacks.values():
        w = _where(frames)
        if w and w not in out:
            out.append(w)
    return sorted(out)


def _cycle(message):
    m = _CYCLE.search(message)
    if not m:
        return None
    nodes = m.group(1).split(" -> ")
    if len(nodes) > 1 and nodes[0] == nodes[-1]:
        nodes = nodes[:-1]
    i = nodes.index(min(nodes))
    nodes = nodes[i:] + nodes[:i]
    return " -> ".join(f"&{n}" for n in nodes + nodes[:1])


def signature(violation):
    """The signature of a violation dict (``kind``, ``message``, ``stacks``)."""
    kind = violation["kind"]
    message = violation.get("message", "")
    stacks = violation.get("stacks") or {}
    if kind == "lock-inversion":
        cycle = _cycle(message)
        if cycle:
            return f"lock-inversion {cycle}"
    if kind == "irq-lock-inversion":
        classes = []
        for c in _CLASSES.findall(message):
            if c not in classes:
                classes.append(c)
        if classes:
            return f"irq-lock-inversion {' -> '.join('&' + c for c in classes)}"
    if violation.get("where"):  # an oracle's own words for what went wrong
        return f"{kind}: {violation['where']}"
    wheres = _wheres(stacks)
    if kind in ("data-race", "deadlock") and wheres:
        return f"{kind} in {' / '.join(wheres)}"
    # the innermost function of the first stack that has one
    for frames in stacks.values():
        w = _where(frames)
        if w:
            return f"{kind} in {w}"
    return f"{kind}: {_NUMBERS.sub('N', message)}" if message else kind


def slug(sig, width=60):
    """A file name for ``sig``: readable, and unique through a short hash."""
    text = re.sub(r"[^A-Za-z0-9_]+", "-", sig).strip("-")[:width].rstrip("-")
    return f"{text}-{hashlib.sha1(sig.encode()).hexdigest()[:8]}"
