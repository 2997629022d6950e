"""How a running soak stands, on stderr: a live panel on a terminal, a line every N seconds elsewhere.

:func:`make_progress` picks the display.  Both take :meth:`update` with the
runner's status dict (``elapsed_s``, ``remaining_s``, ``schedules``,
``limit``, ``rate``, ``alive``, ``workers``, ``by_kind``, ``last_find``)
as often as the runner likes, and:

* :class:`LiveProgress` (stderr is a terminal) redraws a rich status line
  at most 4 times a second;
* :class:`LineProgress` (a pipe, a log file, CI) writes one plain line every
  ``every`` seconds: no carriage return, no colour;
* neither ever raises into the soak: a display that fails is dropped.
"""

from __future__ import annotations

import sys
import time

__all__ = ["make_progress", "LineProgress", "LiveProgress", "status_line", "duration_text"]


def duration_text(seconds):
    """``1h02m03s``, ``4m05s``, ``6.0s``."""
    if seconds is None:
        return "-"
    s = int(seconds)
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m{s % 60:02d}s"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{seconds:.1f}s"


def status_line(st):
    """The plain one-line form of a status dict."""
    kinds = ", ".join(f"{k} {n}" for k, n in st["by_kind"].items()) or "none"
    limit = f"/{st['limit']}" if st.get("limit") else ""
    line = (
        f"soak: {duration_text(st['elapsed_s'])} elapsed, {duration_text(st['remaining_s'])} left; "
        f"{st['schedules']}{limit} schedules, {st['rate']:.0f}/s; "
        f"workers {st['alive']}/{st['workers']}; signatures: {kinds}"
    )
    if st.get("last_find"):
        line += f"; last find: {st['last_find'][0]}"
    return line


def write_line(stream, line):
    """``line`` on ``stream``, flushed; a display never stops the work (its reader went away)."""
    try:
        stream.write(line.rstrip() + "\n")
        stream.flush()
    except (OSError, ValueError):
        pass


class LineProgress:
    """One plain line every ``every`` seconds on ``stream``."""

    def __init__(self, stream=None, every=10.0):
        self.stream = stream or sys.stderr
        self.every = every
        self.last = time.monotonic()

    def update(self, st):
        now = time.monotonic()
        if now - self.last < self.every:
            return
        self.last = now
        write_line(self.stream, status_line(st))

    def close(self):
        pass


class LiveProgress:
    """A rich live status on a terminal, refreshed at most 4 times a second."""

    def __init__(self, stream=None):
        from rich.console import Console
        from rich.live import Live

        self.console = Console(file=stream or sys.stderr, highlight=False)
        self.live = Live(console=self.console, refresh_per_second=4, transient=False, auto_refresh=False)
        self.live.start()
        self.last = 0.0

    def update(self, st):
        now = time.monotonic()
        if now - self.last < 0.25:
            return
        self.last = now
        from rich.markup import escape
        from rich.text import Text

        kinds = "  ".join(f"{k} [bold]{n}[/]" for k, n in st["by_kind"].items()) or "none yet"
        limit = f" / {st['limit']:,}" if st.get("limit") else ""
        text = (
            f"[bold]soak[/] {duration_text(st['elapsed_s'])} elapsed, {duration_text(st['remaining_s'])} left   "
            f"[bold]{st['schedules']:,}[/]{limit} schedules  {st['rate']:,.0f}/s   "
            f"workers {st['alive']}/{st['workers']}\n"
            f"signatures: {kinds}"
        )
        if st.get("last_find"):
            sig, when = st["last_find"]
            text += f"\nlast find: [red]{escape(sig)}[/] ({when})"
        self.live.update(Text.from_markup(text), refresh=True)

    def close(self):
        try:
            self.live.stop()
        except Exception:  # noqa: BLE001 - a display never stops a soak
            pass


def make_progress(enabled=True, every=10.0, stream=None):
    """The display for ``stream`` (default stderr), or None when not ``enabled``."""
    if not enabled:
        return None
    stream = stream or sys.stderr
    try:
        if stream.isatty():
            return LiveProgress(stream)
    except Exception:  # noqa: BLE001 - no terminal after all: plain lines
        pass
    return LineProgress(stream, every)
