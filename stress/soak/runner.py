"""The soak's parent: hands batches to an executor, and alone writes what they find.

:func:`run_soak` keeps ``executor.workers`` batches (:mod:`.batch`) in
flight, next from the checkpoint, and records each result as it comes (in
any order).  It guarantees:

* nothing found is lost: a new signature's report is written (atomically)
  before the state that names it, and the state (:mod:`.findings`) before
  the events that tell of it; a batch whose worker died is run again;
* nothing is counted twice: a batch's schedules, finds and counts enter
  ``state.json`` in the same atomic write that marks it done, so a soak
  killed at any point (even SIGKILL) and resumed re-runs exactly the
  batches not done; since a batch is a function of its index, the resumed
  soak ends with the counts an uninterrupted one has;
* each signature gets one report: the first worker to find it shrinks it;
  a result carrying a report for a signature recorded meanwhile (two
  batches in flight found it) is counted as a repeat, its report dropped;
* SIGINT and SIGTERM (handlers that set a flag; the loop polls every 0.2 s)
  stop the soak within about a second: no new batch, the in-flight ones
  cancelled (they were not done: a resume re-runs them), the state and a
  ``soak_end`` event written.  The limits (``schedules``, ``duration_s``)
  count the whole soak, over every session: at the duration the soak stops
  submitting and waits for the batches in flight.

The executor is used only through :mod:`stress.soak.executor`'s interface,
so a :class:`~stress.soak.pool.ProcessExecutor` and a Dask one are
interchangeable.
"""

from __future__ import annotations

import collections
import os
import socket
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

from ..errors import UsageError
from ..signals import StopSignals, check_writable
from ..search.coverage import counts
from .batch import BatchSpec, batch_range, driver_functions, run_batch
from .corpusfiles import CORPUS_SHARED, append_corpus, load_corpus, load_features, save_features
from .events import open_events, read_events, versions
from .executor import WorkerLost
from .findings import STATE, SoakState, StateError, load_state, save_state, write_report

__all__ = ["Summary", "SoakError", "run_soak", "MIN_FREE_MB", "MAX_LOSSES"]

#: a SOAKDIR with less free space is refused before the first schedule
MIN_FREE_MB = 50
#: a batch whose worker died this many times stops the soak (it kills its workers)
MAX_LOSSES = 3
#: seconds between ``checkpoint`` events (the state itself is written after every batch)
CHECKPOINT_EVERY_S = 30.0
POLL_S = 0.2


class SoakError(Exception):
    """The soak cannot go on (a batch that keeps killing its worker)."""


@dataclass
class Summary:
    """How a soak (all its sessions) stands when :func:`run_soak` returns."""

    soakdir: str
    reason: str  # duration | schedules | signal | error
    schedules: int
    points: int
    elapsed_s: float
    session_schedules: int
    session_s: float
    findings: dict
    new: list = field(default_factory=list)  # signatures first found in this session
    signal: int | None = None
    workers: int = 0
    lost: int = 0

    @property
    def found(self):
        return bool(self.findings)

    @property
    def rate(self):
        return self.session_schedules / self.session_s if self.session_s > 0 else 0.0

    def by_kind(self):
        out = collections.Counter(f["kind"] for f in self.findings.values())
        return dict(sorted(out.items()))


def _now():
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _batches(state, spec):
    """``(k, start)`` of every batch still to run, in index order (``start`` None: the whole batch)."""
    k = state.done_below
    while spec.schedules is None or k * spec.batch < spec.schedules:
        if not state.is_done(k):
            start = state.partial.get(k)
            _, stop = batch_range(spec, k)
            if start is None or start < stop:
                yield k, start
        k += 1


def run_soak(
    soakdir,
    options=None,
    *,
    schedules=None,
    duration_s=None,
    resume=False,
    executor=None,
    workers=None,
    database=None,
    progress=None,
    stop=None,
):
    """Run (or with ``resume`` continue) the soak in ``soakdir``; returns a :class:`Summary`.

    ``options`` (a new soak only): ``target``, ``strategy``, ``seed``,
    ``checkers``, ``max_steps``, ``pct_depth``, ``batch``, and
    ``inject_failures`` (optional, default off).  ``schedules``
    and ``duration_s`` limit the whole soak (None: no limit; on resume None
    keeps the stored limit).  ``executor`` defaults to a
    :class:`~stress.soak.pool.ProcessExecutor` of ``workers`` processes;
    ``database`` is a picklable factory of the Hypothesis example database
    (default: ``SOAKDIR/hypothesis``).  ``progress`` (see
    :mod:`.progress`) is told how the soak stands several times a second;
    ``stop()`` returning true stops the soak as a signal does.
    """
    soakdir = os.path.abspath(soakdir)
    if resume and not os.path.isdir(soakdir):
        raise UsageError(f"{soakdir} holds no soak to resume (no such directory)")
    check_writable(soakdir, "the soak", min_free=MIN_FREE_MB << 20)
    try:
        state = load_state(soakdir)
    except StateError as e:
        raise UsageError(str(e)) from None
    if resume:
        if state is None:
            raise UsageError(f"{soakdir} holds no soak to resume (no {STATE})")
    else:
        if state is not None or os.path.exists(os.path.join(soakdir, "events.jsonl")):
            raise UsageError(f"{soakdir} already holds a soak: continue it with --resume {soakdir}, or choose another --dir")
        state = SoakState(options=dict(options))
    if schedules is not None:
        state.limits["schedules"] = schedules
    if duration_s is not None:
        state.limits["duration_s"] = duration_s
    state.sessions += 1
    opts = state.options
    db = database
    if opts["strategy"] == "hypothesis" and db is None:
        from .exampledb import database_factory

        db = database_factory(None, soakdir)  # SOAKDIR/hypothesis, opened once per worker
    spec = BatchSpec(
        target=opts["target"],
        strategy=opts["strategy"],
        seed=opts["seed"],
        checkers=tuple(opts["checkers"]),
        max_steps=opts["max_steps"],
        pct_depth=opts["pct_depth"],
        batch=opts["batch"],
        schedules=state.limits["schedules"],
        inject_failures=bool(opts.get("inject_failures", False)),
        database=db if opts["strategy"] == "hypothesis" else None,
    )
    if executor is None:
        from .pool import ProcessExecutor

        executor = ProcessExecutor(workers)
    soak = _Soak(soakdir, state, spec, executor, progress, stop)
    return soak.run(resumed=resume)


class _Soak:
    def __init__(self, soakdir, state, spec, executor, progress, stop):
        self.dir = soakdir
        self.state = state
        self.spec = spec
        self.executor = executor
        self.progress = progress
        self.stop = stop
        self.events = None
        self.inflight = {}  # k -> start
        self.retry = collections.deque()
        self.losses = collections.Counter()
        self.lost = 0
        self.new = []
        self.last_find = None
        self.session_schedules = 0
        self.features = load_features(soakdir)  # interleaving coverage of every batch so far
        self.corpus = load_corpus(soakdir)  # guided: the corpus entries of every batch so far

    # -- the loop ---------------------------------------------------------------

    def run(self, resumed):
        with StopSignals() as signals:  # before anything is written: a signal from now on is ours
            reason = self._run(resumed, signals)
        return self._summary(reason, signals.signum)

    def _run(self, resumed, signals):
        state, spec = self.state, self.spec
        self.t0 = time.monotonic()
        self.elapsed0 = state.totals["elapsed_s"]
        self.last_checkpoint = self.t0
        try:
            save_state(self.dir, self._stamp())  # first: from now on the directory holds a resumable soak
            self.events = open_events(os.path.join(self.dir, "events.jsonl"))
        except BaseException:
            self.executor.close(cancel=True)
            raise
        reason, cancel = "error", True
        try:
            self.events.event(
                "soak_start",
                target=state.options["target"],
                options=state.options,
                limits=state.limits,
                versions=versions(),
                host=socket.gethostname(),
                pid=os.getpid(),
                workers=self.executor.workers,
                resumed=bool(resumed),
                session=state.sessions,
                driver_functions=driver_functions(state.options["target"]),
            )
            todo = _batches(state, spec)
            draining = False
            while True:
                if signals.signum is not None or (self.stop is not None and self.stop()):
                    reason = "signal"
                    break
                if not draining and self._over_time():
                    draining = True
                if not draining:
                    while len(self.inflight) < self.executor.workers:
                        nxt = self.retry.popleft() if self.retry else next(todo, None)
                        if nxt is None:
                            break
                        self._submit(*nxt)
                if not self.inflight:
                    reason, cancel = ("duration" if draining else "schedules"), False
                    break
                for key, result, err in self.executor.poll(POLL_S):
                    self._outcome(key, result, err)
                self._show()
        finally:  # a broken scenario, a batch that kills workers, a bug: recorded, then raised
            self.executor.close(cancel=cancel)
            self.inflight.clear()
            self._finish(reason)
        return reason

    def _over_time(self):
        limit = self.state.limits.get("duration_s")
        return limit is not None and self._elapsed() >= limit

    def _elapsed(self):
        return self.elapsed0 + (time.monotonic() - self.t0)

    def _known(self):
        return frozenset(s for s, f in self.state.findings.items() if f.get("report"))

    def _corpus(self):
        """What a guided batch starts from: the soak's corpus (its last
        :data:`CORPUS_SHARED` entries) and every feature reached so far."""
        if self.spec.strategy != "guided":
            return None
        return tuple(self.corpus[-CORPUS_SHARED:]), frozenset(self.features)

    def _submit(self, k, start):
        self.inflight[k] = start
        self.executor.submit(k, run_batch, self.spec, k, self._known(), start, self._corpus())

    def _outcome(self, k, result, err):
        start = self.inflight.pop(k, None)
        if isinstance(err, WorkerLost):
            self.lost += 1
            self.losses[k] += 1
            lo, stop = batch_range(self.spec, k)
            self.events.event("worker_lost", batch=k, range=[lo if start is None else start, stop], error=str(err), alive=self.executor.alive())
            if self.losses[k] >= MAX_LOSSES:
                raise SoakError(f"batch {k} lost its worker {MAX_LOSSES} times (does it exhaust memory?); the soak stopped")
            self.retry.append((k, start))
            return
        if err is not None:
            raise err
        self._record(result)

    # -- recording (the only writer) -------------------------------------------------

    def _record(self, res):
        state, now = self.state, _now()
        worker = {"time": now, "worker": res.pid, "host": res.host, "batch": res.k}
        new, repeats = [], []
        for f in res.finds:
            entry = state.findings.get(f.signature)
            if entry is None or (entry.get("report") is None and f.report is not None):
                path = write_report(self.dir, f.signature, f.report) if f.report is not None else None
                count = f.count + (entry["count"] if entry else 0)
                first = entry["first"] if entry else dict(worker, schedule=f.schedule)
                state.findings[f.signature] = {
                    "kind": f.kind,
                    "message": f.message,
                    "report": path,
                    "count": count,
                    "first": first,
                    "last": dict(worker, schedule=f.schedule),
                }
                new.append((f, path))
            else:
                entry["count"] += f.count
                entry["last"] = dict(worker, schedule=f.schedule)
                repeats.append(f)
        state.mark_done(res.k, res.stop, res.stop >= (res.k + 1) * self.spec.batch)
        t = state.totals
        t["schedules"] += res.schedules
        t["points"] += res.points
        t["batches"] += 1
        ops = state.coverage.setdefault("ops", {})
        for kind, n in res.ops.items():
            ops[kind] = ops.get(kind, 0) + n
        for key in ("overlaps", "functions"):  # absent from an older state.json: start at zero
            total = state.coverage.setdefault(key, {})
            for name, n in getattr(res, key, {}).items():
                total[name] = total.get(name, 0) + n
        edges = {tuple(e) for e in state.coverage.get("lock_edges", [])}
        edges.update(tuple(e) for e in res.lock_edges)
        state.coverage["lock_edges"] = sorted(list(e) for e in edges)
        batch_features = {tuple(f) for f in res.features}
        new_features = batch_features - self.features
        self.features |= new_features
        state.coverage["interleavings"] = counts(self.features)
        if new_features:
            save_features(self.dir, self.features)
        if res.corpus:
            self.corpus.extend(res.corpus)
            append_corpus(self.dir, res.corpus)
        save_state(self.dir, self._stamp())
        self.session_schedules += res.schedules
        ev = self.events.event
        ev(
            "batch",
            worker=res.pid,
            host=res.host,
            batch=res.k,
            range=[res.start, res.stop],
            schedules=res.schedules,
            points=res.points,
            seconds=round(res.seconds, 3),
            ops=res.ops,
            overlaps=res.overlaps,
            functions=res.functions,
            lock_edges=res.lock_edges,
            interleavings=counts(batch_features),
            interleavings_new=counts(new_features),
            **({"corpus_added": len(res.corpus), "corpus": len(self.corpus)} if self.spec.strategy == "guided" else {}),
            finds=sum(f.count for f in res.finds),
        )
        for f, path in new:
            if f.signature not in self.new:
                self.new.append(f.signature)
            self.last_find = (f.signature, now)
            ev("find", signature=f.signature, kind=f.kind, message=f.message, report=path, schedule=f.schedule, seed=self.spec.seed, worker=res.pid, batch=res.k, count=f.count)
        for f in repeats:
            ev("repeat", signature=f.signature, schedule=f.schedule, n=f.count, count=state.findings[f.signature]["count"], batch=res.k)
        if time.monotonic() - self.last_checkpoint >= CHECKPOINT_EVERY_S:
            self._checkpoint()

    def _stamp(self):
        self.state.totals["elapsed_s"] = round(self._elapsed(), 3)
        return self.state

    def _checkpoint(self):
        self.last_checkpoint = time.monotonic()
        s = self.state
        self.events.event("checkpoint", done_below=s.done_below, done=sorted(s.done), batches=s.totals["batches"], schedules=s.totals["schedules"])

    def _finish(self, reason):
        try:
            save_state(self.dir, self._stamp())
            self._checkpoint()
            t = self.state.totals
            self.events.event(
                "soak_end",
                reason=reason,
                schedules=t["schedules"],
                points=t["points"],
                elapsed_s=t["elapsed_s"],
                session_schedules=self.session_schedules,
                session_s=round(time.monotonic() - self.t0, 3),
                signatures=len(self.state.findings),
                new=len(self.new),
                lost=self.lost,
            )
        finally:
            self.events.close()
            if self.progress is not None:
                self.progress.close()

    # -- display ---------------------------------------------------------------------

    def _show(self):
        if self.progress is None:
            return
        try:
            self.progress.update(self.status())
        except Exception:  # noqa: BLE001 - a display never stops a soak
            self.progress = None

    def status(self):
        s = self.state
        session_s = time.monotonic() - self.t0
        limits = s.limits
        remaining = None
        if limits.get("duration_s") is not None:
            remaining = max(0.0, limits["duration_s"] - self._elapsed())
        rate = self.session_schedules / session_s if session_s > 0 else 0.0
        if limits.get("schedules") is not None and rate > 0:
            eta = max(0, limits["schedules"] - s.totals["schedules"]) / rate
            remaining = eta if remaining is None else min(remaining, eta)
        return {
            "elapsed_s": self._elapsed(),
            "remaining_s": remaining,
            "schedules": s.totals["schedules"],
            "limit": limits.get("schedules"),
            "rate": rate,
            "alive": self.executor.alive(),
            "workers": self.executor.workers,
            "by_kind": dict(sorted(collections.Counter(f["kind"] for f in s.findings.values()).items())),
            "last_find": self.last_find,
        }

    def _summary(self, reason, signum):
        t = self.state.totals
        return Summary(
            soakdir=self.dir,
            reason=reason,
            schedules=t["schedules"],
            points=t["points"],
            elapsed_s=t["elapsed_s"],
            session_schedules=self.session_schedules,
            session_s=time.monotonic() - self.t0,
            findings=self.state.findings,
            new=list(self.new),
            signal=signum,
            workers=self.executor.workers,
            lost=self.lost,
        )


def event_counts(soakdir):
    """``({event name: n}, bad lines)`` of ``SOAKDIR/events.jsonl`` (for summaries and tests)."""
    events, bad = read_events(os.path.join(soakdir, "events.jsonl"))
    return dict(collections.Counter(e["event"] for e in events)), bad

