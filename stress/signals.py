"""Ctrl-C and SIGTERM as a request to stop, not an exception.

A hunt or a soak polls :class:`StopSignals` between schedules (or batches):
the first SIGINT/SIGTERM sets it, the work in flight ends cleanly, every
find is already on disk, and the command prints its summary.  While it is
installed, Trio sees a non-default SIGINT handler and leaves it alone, so
no ``KeyboardInterrupt`` (or ``BaseExceptionGroup``) is raised inside a run.
"""

from __future__ import annotations

import signal

__all__ = ["StopSignals", "check_writable"]

_NAMES = {signal.SIGINT: "SIGINT", signal.SIGTERM: "SIGTERM"}


class StopSignals:
    """``with StopSignals() as stop:`` ... ``if stop(): break``; ``stop.signum`` says which."""

    def __init__(self):
        self.signum = None
        self._old = {}

    def __call__(self):
        return self.signum is not None

    @property
    def name(self):
        return _NAMES.get(self.signum)

    def exit_status(self):
        """The shell's status for dying of the signal: 128 + its number."""
        return 128 + self.signum if self.signum is not None else 0

    def _handle(self, signum, frame):
        if self.signum is None:
            self.signum = signum

    def __enter__(self):
        for sig in _NAMES:
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: leave the signals alone
                pass
        return self

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)
        return False


def check_writable(directory, what, min_free=1 << 20):
    """Refuse an output directory before any work: it must be creatable, writable, not full.

    Raises :class:`~stress.errors.UsageError` with one line.
    """
    import os
    import shutil

    from .errors import UsageError

    try:
        os.makedirs(directory, exist_ok=True)
        probe = os.path.join(directory, f".iommu-stress-probe-{os.getpid()}")
        with open(probe, "w", encoding="utf-8") as f:
            f.write("probe\n")
            f.flush()
            os.fsync(f.fileno())
        os.remove(probe)
        free = shutil.disk_usage(directory).free
    except OSError as e:
        raise UsageError(f"cannot write {what} to {directory}: {e.strerror or e}") from None
    if free < min_free:
        raise UsageError(f"cannot write {what} to {directory}: only {free} bytes free")
