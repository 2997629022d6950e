"""How a running campaign stands, on stderr: a rich progress bar on a terminal, plain lines elsewhere.

:func:`make_progress` picks the display; both take :meth:`job_done` with
the searches done, their total, the elapsed seconds and the first
:class:`~stress.bench.job.JobResult` of the search just done, and :meth:`note` with a line of their
own (the estimate, the throughput step), and :meth:`tick` while no search
ends:

* :class:`BarProgress` (stderr is a terminal): a rich bar with the count,
  the elapsed time and an estimate of what is left;
* :class:`LineProgress` (a pipe, a log file, CI): one plain line every
  ``every`` seconds and one at the end; no carriage return, no colour, no
  trailing space;
* neither ever raises into the campaign: a display that fails is dropped.
"""

from __future__ import annotations

import sys
import time

from ..soak.progress import duration_text, write_line

__all__ = ["make_progress", "LineProgress", "BarProgress", "eta_s", "status_line"]


def eta_s(done, total, elapsed):
    """Seconds left if the searches left cost what the searches done did (None before the first)."""
    if done <= 0:
        return None
    return elapsed / done * (total - done)


def status_line(done, total, elapsed, last=None):
    line = f"campaign: {done}/{total} searches, {duration_text(elapsed)} elapsed, ~{duration_text(eta_s(done, total, elapsed))} left"
    if last is not None:
        what = f"found at {last.schedules}" if last.found and last.schedules is not None else ("found" if last.found else "missed")
        if last.error:
            what = f"error: {last.error}"
        line += f"; last: {last.bug} {last.arm} seed {last.seed} {what}"
    return line


class LineProgress:
    """One plain line every ``every`` seconds on ``stream``."""

    def __init__(self, stream=None, every=10.0):
        self.stream = stream or sys.stderr
        self.every = every
        self.last = time.monotonic()
        self.latest = None  # the last search that ended

    def _write(self, line):
        write_line(self.stream, line)

    def note(self, line):
        self._write(line)

    def job_done(self, done, total, elapsed, job):
        self.latest = job
        now = time.monotonic()
        if done < total and now - self.last < self.every:
            return
        self.last = now
        self._write(status_line(done, total, elapsed, job))

    def tick(self, done, total, elapsed):
        """No search ended lately: still a line every ``every`` seconds."""
        if time.monotonic() - self.last >= self.every:
            self.last = time.monotonic()
            self._write(status_line(done, total, elapsed, self.latest))

    def close(self):
        pass


class BarProgress:
    """A rich progress bar on a terminal."""

    def __init__(self, total, stream=None):
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.console = Console(file=stream or sys.stderr, highlight=False)
        self.bar = Progress(
            TextColumn("[bold]campaign[/]"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("left"),
            TimeRemainingColumn(),
            TextColumn("{task.description}"),
            console=self.console,
        )
        self.task = self.bar.add_task("", total=total)
        self.bar.start()

    def note(self, line):
        try:
            self.bar.console.print(line, markup=False, highlight=False)
        except Exception:  # noqa: BLE001 - a display never stops a campaign
            pass

    def job_done(self, done, total, elapsed, job):
        try:
            self.bar.update(self.task, completed=done, description=status_line(done, total, elapsed, job).split("; ", 1)[-1])
        except Exception:  # noqa: BLE001
            pass

    def tick(self, done, total, elapsed):
        pass  # the bar's own clock keeps going

    def close(self):
        try:
            self.bar.stop()
        except Exception:  # noqa: BLE001
            pass


def make_progress(total, enabled=True, every=10.0, stream=None):
    """The display for ``stream`` (default stderr), or None when not ``enabled``."""
    if not enabled:
        return None
    stream = stream or sys.stderr
    try:
        if stream.isatty():
            return BarProgress(total, stream)
    except Exception:  # noqa: BLE001 - no terminal after all: plain lines
        pass
    return LineProgress(stream, every)
