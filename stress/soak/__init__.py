"""Soak: long, crash-safe, multi-core searches that never lose a find.

* :mod:`.signature` - the name of a bug (syzbot-style titles)
* :mod:`.batch` - one batch of schedule indices, run in a worker (``run_batch``)
* :mod:`.executor` - the interface of where batches run
* :mod:`.pool` - worker processes on this machine (``ProcessExecutor``)
* :mod:`.dask` - a Dask cluster (``DaskExecutor``)
* :mod:`.runner` - the parent: batches in flight, the only writer (``run_soak``)
* :mod:`.findings` - ``state.json``, ``findings.json``, the reports: atomic writes
* :mod:`.corpusfiles` - ``coverage.json`` and the guided corpus ``corpus.jsonl``
* :mod:`.events` - ``events.jsonl``, the structured event log, and its reader
* :mod:`.progress` - the live display (a terminal) or a line every N seconds
* :mod:`.cli` - ``iommu-stress soak``
"""
