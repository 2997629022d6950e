"""The registry of checkers and oracles: observers turned on or off by name.

Besides the observers there is one switch, ``cross-schedule``: with it (the
default), lockdep keeps one dependency graph for a whole search, as Linux
keeps one for a whole boot, so an order seen in one schedule and its inverse
seen in another close a cycle.  Without it each schedule starts afresh.
"""

from __future__ import annotations

from .lockdep import Lockdep
from .oracles import ORACLES
from .race import RaceDetector

__all__ = [
    "CHECKERS",
    "CROSS_SCHEDULE",
    "default_checkers",
    "attach_checkers",
    "register_checker",
    "cross_schedule",
    "parse_checkers",
]

#: the switch that keeps lockdep's graph across the schedules of a search
CROSS_SCHEDULE = "cross-schedule"

#: name -> factory(kernel) -> observer (None: a switch, not an observer)
CHECKERS = {
    "lockdep": Lockdep,
    CROSS_SCHEDULE: None,
    "race": RaceDetector,
    **ORACLES,
}

_DEFAULT = list(CHECKERS)


def default_checkers():
    """Names of the checkers a run attaches when not told otherwise."""
    return tuple(_DEFAULT)


def register_checker(name, factory, default=True):
    """Add an observer factory; ``default`` puts it in the default set."""
    CHECKERS[name] = factory
    if default and name not in _DEFAULT:
        _DEFAULT.append(name)


def parse_checkers(text):
    """The names of a ``--checkers a,b,c`` list; an unknown one, or none, is a one-line usage error."""
    from .errors import UsageError

    names = [c.strip() for c in text.split(",") if c.strip()]
    if not names:  # "" is not "all": a script that lost its list should say so
        raise UsageError(f"--checkers needs at least one checker (known: {', '.join(sorted(CHECKERS))})")
    unknown = [c for c in names if c not in CHECKERS]
    if unknown:
        raise UsageError(f"unknown checker {unknown[0]!r} (known: {', '.join(sorted(CHECKERS))})")
    return names


def cross_schedule(names):
    """Whether a search over ``names`` keeps lockdep's graph across schedules."""
    return "lockdep" in names and CROSS_SCHEDULE in names


def attach_checkers(kernel, names, lock_graph=None):
    """Attach the observers ``names``; lockdep works on ``lock_graph`` when given."""
    for name in names:
        try:
            factory = CHECKERS[name]
        except KeyError:
            raise ValueError(f"unknown checker {name!r} (known: {', '.join(sorted(CHECKERS))})") from None
        if factory is None:
            continue
        if factory is Lockdep and lock_graph is not None:
            kernel.attach(Lockdep(kernel, lock_graph))
        else:
            kernel.attach(factory(kernel))
