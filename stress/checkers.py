"""The registry of checkers and oracles: observers turned on or off by name."""

from __future__ import annotations

from .lockdep import Lockdep
from .oracles import ORACLES
from .race import RaceDetector

__all__ = ["CHECKERS", "default_checkers", "attach_checkers", "register_checker"]

#: name -> factory(kernel) -> observer
CHECKERS = {
    "lockdep": Lockdep,
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


def attach_checkers(kernel, names):
    for name in names:
        try:
            factory = CHECKERS[name]
        except KeyError:
            raise ValueError(f"unknown checker {name!r} (known: {', '.join(sorted(CHECKERS))})") from None
        kernel.attach(factory(kernel))
