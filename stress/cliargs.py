"""argparse types shared by the subcommands: one line naming what was expected."""

from __future__ import annotations

import argparse

__all__ = ["number", "positive_int", "seed", "seconds"]


def number(cast, ok, what):
    """An argparse type: ``cast(text)`` that satisfies ``ok``, else one line naming ``what``."""

    def parse(text):
        try:
            v = cast(text)
        except ValueError:
            v = None
        if v is None or not ok(v):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return v

    parse.__name__ = what  # argparse names the type in its own messages
    return parse


positive_int = number(int, lambda v: v >= 1, "a positive integer")
seed = number(int, lambda v: v >= 0, "an integer seed >= 0")
seconds = number(float, lambda v: 0 < v < float("inf"), "a positive number of seconds")
