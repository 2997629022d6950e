"""The Hypothesis example database that all the workers of a soak share.

A soak with ``--strategy hypothesis`` hands every batch the same database,
so a failure one worker finds is replayed first (``Phase.reuse``) by every
later search of the same scenario, on any worker, under any seed (see
:mod:`stress.hypothesis_chooser`).

* no spec: a :class:`~hypothesis.database.DirectoryBasedExampleDatabase` in
  ``<soak dir>/hypothesis`` - enough for the workers of one machine (it is
  safe for several processes at once: one file per example);
* ``redis://host:port/db`` (or ``rediss://``, ``unix:///path/to/socket``):
  :class:`hypothesis.extra.redis.RedisExampleDatabase` on that server - for
  the workers of a Dask cluster, which share no directory.

A database object is not sent to the workers: the batch code gets the
*spec* (a string: :func:`example_database_spec`, or the picklable
factory :func:`database_factory` makes of it) and calls
:func:`open_database` in the worker, which keeps one database per spec per
process.  ``redis`` is imported only when a Redis URL is used.
"""

from __future__ import annotations

import functools
import os

__all__ = ["example_database", "example_database_spec", "database_factory", "open_database", "is_redis_url"]

#: URL schemes that name a Redis server (what ``redis.Redis.from_url`` takes)
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")

_OPEN: dict[str, object] = {}  # spec -> database, per process


def is_redis_url(spec: str | None) -> bool:
    return bool(spec) and spec.startswith(REDIS_SCHEMES)


def example_database_spec(spec: str | None, soak_dir: str | os.PathLike) -> str:
    """The picklable name of a soak's database: the Redis URL, or ``<soak_dir>/hypothesis``."""
    if spec:
        return str(spec) if is_redis_url(str(spec)) else os.path.abspath(os.fspath(spec))
    return os.path.abspath(os.path.join(os.fspath(soak_dir), "hypothesis"))


def example_database(spec: str | None, soak_dir: str | os.PathLike):
    """The database a soak in ``soak_dir`` shares: ``spec`` a Redis URL, a directory, or None."""
    return open_database(example_database_spec(spec, soak_dir))


def database_factory(spec: str | None, soak_dir: str | os.PathLike):
    """A picklable no-argument callable opening the soak's database in the worker.

    What :attr:`stress.soak.batch.BatchSpec.database` takes:
    ``functools.partial(open_database, <spec string>)``.
    """
    return functools.partial(open_database, example_database_spec(spec, soak_dir))


def open_database(url_or_dir: str | os.PathLike):
    """The Hypothesis example database named by a Redis URL or a directory.

    A plain function of a string, for a worker process to call: the same
    spec gives the same object within a process (one Redis connection pool
    per worker, not one per batch).
    """
    spec = os.fspath(url_or_dir)
    db = _OPEN.get(spec)
    if db is None:
        db = _OPEN[spec] = _open(spec)
    return db


def _open(spec: str):
    if is_redis_url(spec):
        try:
            import redis
            from hypothesis.extra.redis import RedisExampleDatabase
        except ImportError as e:
            raise ImportError(
                f"a Redis example database ({spec}) needs the 'redis' package: pip install 'iommu-stress[cluster]'"
            ) from e
        client = redis.Redis.from_url(spec)
        client.ping()  # a wrong URL fails here, not in the middle of a search
        return RedisExampleDatabase(client)
    from hypothesis.database import DirectoryBasedExampleDatabase

    os.makedirs(spec, exist_ok=True)
    return DirectoryBasedExampleDatabase(spec)
