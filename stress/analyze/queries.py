"""Every SQL query of ``iommu-stress analyze``, named and documented.

They all run over one DuckDB table, ``ev``, that :mod:`stress.analyze.load`
builds from one or more event logs (``SOAKDIR/events.jsonl`` or a
``hunt --log`` file).  ``ev`` has one row per parsed event line:

=============== ==========================================================
``run``         the label of the log (its PATH on the command line)
``n``           the line's position in its log (1, 2, ...): completion order
``event``       ``soak_start``, ``batch``, ``find``, ``repeat``, ...
``time``        TIMESTAMPTZ
``session``     1 + the number of ``soak_start``/``hunt_start`` lines before it
``elapsed_s``   seconds of *running* time since the run started: the gaps
                between sessions of a resumed soak are not counted
``cum_schedules`` schedules completed up to this line (running sum of
                ``batch.schedules``; for a hunt log the find's
                ``schedule + 1`` and ``hunt_end.schedules``)
(the rest)      the event fields of :data:`EVENT_COLUMNS`, NULL when absent
=============== ==========================================================

To use a query by hand on a single log, create ``ev`` with
:data:`EV_FOR_ONE_FILE` (``duckdb`` CLI or Python), then paste the query.

Every query returns rows with a ``run`` column and is fast on big logs:
one scan, window functions and ``unnest``, no per-record Python.
"""

from __future__ import annotations

__all__ = [
    "EVENT_COLUMNS",
    "READ_EVENTS",
    "COUNT_LINES",
    "EV_SELECT",
    "EV_FOR_ONE_FILE",
    "for_path",
    "QUERIES",
]

#: the typed columns read from each event line (missing keys are NULL; unknown keys ignored).
#: ``ops``/``overlaps``/``functions`` are maps ``{name: n}``; ``lock_edges`` is ``[[a, b], ...]``;
#: ``interleavings``/``interleavings_new`` map a kind of interleaving feature (stress.search.coverage) to a count.
EVENT_COLUMNS = {
    "event": "VARCHAR",
    "time": "TIMESTAMPTZ",
    "v": "BIGINT",
    "batch": "BIGINT",
    "range": "BIGINT[]",
    "schedules": "BIGINT",
    "points": "BIGINT",
    "seconds": "DOUBLE",
    "worker": "VARCHAR",
    "host": "VARCHAR",
    "ops": "MAP(VARCHAR, BIGINT)",
    "overlaps": "MAP(VARCHAR, BIGINT)",
    "functions": "MAP(VARCHAR, BIGINT)",
    "interleavings": "MAP(VARCHAR, BIGINT)",
    "interleavings_new": "MAP(VARCHAR, BIGINT)",
    "lock_edges": "VARCHAR[][]",
    "finds": "BIGINT",
    "signature": "VARCHAR",
    "kind": "VARCHAR",
    "message": "VARCHAR",
    "report": "VARCHAR",
    "schedule": "BIGINT",
    "seed": "BIGINT",
    "count": "BIGINT",
    "n": "BIGINT",
    "error": "VARCHAR",
    "alive": "BIGINT",
    "resumed": "BOOLEAN",
    "workers": "BIGINT",
    "driver_functions": "VARCHAR[]",
    "target": "JSON",
    "strategy": "VARCHAR",
    "reason": "VARCHAR",
    "elapsed_s": "DOUBLE",
    "signatures": "BIGINT",
}


def _columns_literal():
    return "{" + ", ".join(f"'{k}': '{t}'" for k, t in EVENT_COLUMNS.items()) + "}"


#: the event lines of one log, typed; ``{path}`` stands for a SQL string literal (see :func:`for_path`).  A line that is
#: not JSON comes out as a row of NULLs (``ignore_errors``) and is dropped by :data:`EV_SELECT`.
READ_EVENTS = (
    "SELECT row_number() OVER () AS line_no, * FROM read_json({path}, format = 'newline_delimited', "
    "ignore_errors = true, union_by_name = true, columns = " + _columns_literal() + ")"
)

#: the lines of one log as text: how many are non-empty, and how many of those are an
#: event (a JSON object with a string ``event``); the difference is the corrupt/torn lines.
COUNT_LINES = """
SELECT count(*) FILTER (WHERE trim(line) <> '') AS lines,
       count(*) FILTER (WHERE CASE WHEN json_valid(line) AND json_type(line) = 'OBJECT'
                                   THEN coalesce(json_type(line, '$.event') = 'VARCHAR', false)
                                   ELSE false END) AS events
FROM read_csv({path}, columns = {'line': 'VARCHAR'}, header = false, delim = chr(1), quote = '', escape = '',
              auto_detect = false, encoding = 'latin-1', max_line_size = 1000000000)
"""

#: ``ev`` from the raw rows ``raw`` (columns ``run``, ``line_no`` and :data:`EVENT_COLUMNS`):
#: adds ``session``, ``elapsed_s`` (running seconds) and ``cum_schedules``.
EV_SELECT = """
WITH narrow AS (
    SELECT run, line_no, event, time, schedules, schedule, batch,
           greatest(1, count(*) FILTER (WHERE event IN ('soak_start', 'hunt_start'))
                          OVER (PARTITION BY run ORDER BY line_no)) AS session,
           greatest(
               coalesce(sum(CASE WHEN event = 'batch' THEN schedules END)
                        OVER (PARTITION BY run ORDER BY line_no), 0),
               coalesce(max(CASE WHEN event = 'find' AND batch IS NULL THEN schedule + 1
                                 WHEN event = 'hunt_end' THEN schedules END)
                        OVER (PARTITION BY run ORDER BY line_no), 0)
           ) AS cum_schedules
    FROM raw WHERE event IS NOT NULL
), sess AS (
    SELECT run, session, min(time) AS t0, max(time) AS t1 FROM narrow GROUP BY ALL
), off AS (
    SELECT run, session, t0,
           coalesce(sum(epoch(t1) - epoch(t0)) OVER (PARTITION BY run ORDER BY session
                    ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS offset_s
    FROM sess
), k AS (
    SELECT narrow.run, line_no, session, cum_schedules,
           epoch(time) - epoch(off.t0) + off.offset_s AS elapsed_s
    FROM narrow JOIN off USING (run, session)
)
SELECT k.run, k.line_no AS n, k.session, k.elapsed_s, k.cum_schedules,
       raw.* EXCLUDE (run, line_no, elapsed_s), raw.elapsed_s AS end_elapsed_s
FROM raw JOIN k ON raw.run = k.run AND raw.line_no = k.line_no
"""

#: build ``ev`` by hand from one log: ``duckdb -c "$(python -c 'from stress.analyze.queries import *; print(EV_FOR_ONE_FILE)')"``
#: or in Python ``con.execute(for_path(EV_FOR_ONE_FILE, "soak/events.jsonl"))``.
def for_path(sql, path):
    """``sql`` with ``{path}`` replaced by ``path`` as a SQL string literal."""
    return sql.replace("{path}", "'" + str(path).replace("'", "''") + "'")


EV_FOR_ONE_FILE = (
    "CREATE OR REPLACE TABLE raw AS SELECT 'run' AS run, * FROM (" + READ_EVENTS + ");\n"
    "CREATE OR REPLACE TABLE ev AS " + EV_SELECT + ";"
)


#: name -> (what it answers, SQL over ``ev``)
QUERIES = {
    # ---------------------------------------------------------------- summary
    "summary": (
        "One row per run: what ran, how much, for how long, how many signatures.",
        """
        SELECT run,
               any_value(coalesce(target->>'$.driver', target->>'$.scenario'))
                   FILTER (WHERE event IN ('soak_start', 'hunt_start')) AS target,
               CASE WHEN bool_or(event = 'soak_start') THEN 'soak'
                    WHEN bool_or(event = 'hunt_start') THEN 'hunt' ELSE '?' END AS kind,
               count(*) AS events,
               count(*) FILTER (WHERE event = 'batch') AS batches,
               coalesce(max(cum_schedules), 0) AS schedules,
               coalesce(sum(points) FILTER (WHERE event = 'batch'), 0)
                   + coalesce(max(points) FILTER (WHERE event = 'hunt_end'), 0) AS points,
               round(coalesce(max(elapsed_s), 0), 3) AS elapsed_s,
               count(DISTINCT signature) FILTER (WHERE event = 'find') AS signatures,
               greatest(count(*) FILTER (WHERE event IN ('soak_start', 'hunt_start')), 1) AS sessions,
               count(DISTINCT worker) FILTER (WHERE event = 'batch') AS workers_seen,
               count(*) FILTER (WHERE event = 'worker_lost') AS workers_lost,
               bool_or(event IN ('soak_end', 'hunt_end')) AS finished
        FROM ev GROUP BY run ORDER BY run
        """,
    ),
    # ------------------------------------------------------------- signatures
    "signatures": (
        "Distinct signatures: kind, title, first seen (time, schedule, worker, running "
        "seconds, schedules done), total count, report (.txt).",
        """
        WITH f AS (
            SELECT run, signature,
                   arg_min(kind, n) AS kind,
                   min(time) AS first_time,
                   arg_min(schedule, n) AS first_schedule,
                   arg_min(worker, n) AS first_worker,
                   arg_min(elapsed_s, n) AS first_elapsed_s,
                   arg_min(cum_schedules, n) AS schedules_done,
                   arg_min(report, n) AS report,
                   coalesce(max(count), 1) AS find_count
            FROM ev WHERE event = 'find' GROUP BY run, signature
        ), r AS (
            SELECT run, signature, max(count) AS total FROM ev WHERE event = 'repeat' GROUP BY ALL
        )
        SELECT f.run, f.kind, f.signature, f.first_time, f.first_schedule, f.first_worker,
               round(f.first_elapsed_s, 3) AS first_elapsed_s, f.schedules_done,
               greatest(coalesce(r.total, 0), f.find_count) AS count,
               regexp_replace(f.report, '\\.json$', '.txt') AS report
        FROM f LEFT JOIN r USING (run, signature)
        ORDER BY f.run, f.first_time, f.signature
        """,
    ),
    # -------------------------------------------------------------- discovery
    "discovery": (
        "The discovery curve: distinct signatures after each batch (or find), against "
        "schedules done and running seconds; starts at (0, 0, 0), non-decreasing.",
        """
        WITH pts AS (
            SELECT run, n, event, cum_schedules, elapsed_s,
                   count(*) FILTER (WHERE event = 'find' AND first_find)
                       OVER (PARTITION BY run ORDER BY n) AS signatures
            FROM (SELECT run, n, event, cum_schedules, elapsed_s,
                         event = 'find' AND row_number() OVER (PARTITION BY run, event, signature ORDER BY n) = 1 AS first_find
                  FROM ev WHERE event IN ('batch', 'find', 'hunt_end', 'soak_end', 'soak_start', 'hunt_start'))
        )
        SELECT run, 0 AS schedules, 0.0 AS elapsed_s, 0 AS signatures FROM ev GROUP BY run
        UNION ALL
        SELECT run, cum_schedules AS schedules, round(max(elapsed_s), 3) AS elapsed_s, max(signatures) AS signatures
        FROM pts WHERE cum_schedules > 0 GROUP BY run, cum_schedules
        ORDER BY run, schedules, elapsed_s
        """,
    ),
    # ------------------------------------------------------------- throughput
    "throughput": (
        "Schedules/s and points/s per time bucket of ``$bucket_s`` running seconds "
        "(a batch counts in the bucket where it completed).",
        """
        SELECT run, floor(elapsed_s / $bucket_s)::BIGINT * $bucket_s AS t_s,
               sum(schedules) AS schedules, sum(points) AS points, count(*) AS batches,
               round(sum(schedules) / $bucket_s, 2) AS schedules_per_s,
               round(sum(points) / $bucket_s, 1) AS points_per_s
        FROM ev WHERE event = 'batch' GROUP BY ALL ORDER BY run, t_s
        """,
    ),
    "workers": (
        "Per worker: batches, schedules, points, busy seconds and its own rate.",
        """
        SELECT run, worker, any_value(host) AS host, count(*) AS batches,
               sum(schedules) AS schedules, sum(points) AS points,
               round(sum(seconds), 3) AS busy_s,
               round(sum(schedules) / nullif(sum(seconds), 0), 2) AS schedules_per_s,
               round(sum(points) / nullif(sum(seconds), 0), 1) AS points_per_s
        FROM ev WHERE event = 'batch' GROUP BY run, worker ORDER BY run, schedules DESC, worker
        """,
    ),
    "lost": (
        "Workers lost (their batch is re-run): when, which batch, why.",
        """
        SELECT run, time, round(elapsed_s, 3) AS elapsed_s, batch, range, error, alive
        FROM ev WHERE event = 'worker_lost' ORDER BY run, n
        """,
    ),
    "sessions": (
        "Sessions: each soak_start (resumed = true after --resume) or hunt_start.",
        """
        SELECT run, session, time, coalesce(resumed, false) AS resumed, workers,
               round(elapsed_s, 3) AS at_elapsed_s, cum_schedules AS at_schedules
        FROM ev WHERE event IN ('soak_start', 'hunt_start') ORDER BY run, n
        """,
    ),
    # --------------------------------------------------------------- coverage
    "ops": (
        "Operations run, by kind: the sum of batch.ops.",
        """
        SELECT run, op, sum(k) AS count FROM (
            SELECT run, unnest(map_keys(ops)) AS op, unnest(map_values(ops)) AS k
            FROM ev WHERE event = 'batch' AND ops IS NOT NULL
        ) GROUP BY ALL ORDER BY run, count DESC, op
        """,
    ),
    "overlaps": (
        "Pairs of operation kinds that overlapped in time on different CPUs: the sum of batch.overlaps.",
        """
        SELECT run, pair, split_part(pair, '|', 1) AS op_a, split_part(pair, '|', 2) AS op_b, sum(k) AS count FROM (
            SELECT run, unnest(map_keys("overlaps")) AS pair, unnest(map_values("overlaps")) AS k
            FROM ev WHERE event = 'batch' AND "overlaps" IS NOT NULL
        ) GROUP BY ALL ORDER BY run, count DESC, pair
        """,
    ),
    "lock_edges": (
        "Lock-order edges (class -> class) and how many batches saw each.",
        """
        SELECT run, e[1] AS lock_a, e[2] AS lock_b, count(DISTINCT n) AS batches FROM (
            SELECT run, n, unnest(lock_edges) AS e FROM ev WHERE event = 'batch' AND lock_edges IS NOT NULL
        ) GROUP BY ALL ORDER BY run, batches DESC, lock_a, lock_b
        """,
    ),
    "functions": (
        "Model functions of the driver: calls (sum of batch.functions) for every method in "
        "soak_start.driver_functions (0 = never reached) and any other reached one.",
        """
        WITH reached AS (
            SELECT run, fn, sum(k) AS calls FROM (
                SELECT run, unnest(map_keys(functions)) AS fn, unnest(map_values(functions)) AS k
                FROM ev WHERE event = 'batch' AND functions IS NOT NULL
            ) GROUP BY ALL
        ), known AS (
            SELECT DISTINCT run, unnest(driver_functions) AS fn
            FROM ev WHERE event = 'soak_start' AND driver_functions IS NOT NULL
        )
        SELECT run, fn AS function, coalesce(calls, 0) AS calls, coalesce(calls, 0) > 0 AS reached,
               fn IN (SELECT fn FROM known k WHERE k.run = x.run) AS declared
        FROM known x FULL JOIN reached USING (run, fn)
        ORDER BY run, reached, calls DESC, function
        """,
    ),
    "coverage_recorded": (
        "Which coverage fields the log carries (older logs and hunt logs lack some).",
        """
        SELECT run,
               count(*) FILTER (WHERE event = 'batch' AND ops IS NOT NULL) > 0 AS ops,
               count(*) FILTER (WHERE event = 'batch' AND "overlaps" IS NOT NULL) > 0 AS "overlaps",
               count(*) FILTER (WHERE event = 'batch' AND lock_edges IS NOT NULL) > 0 AS lock_edges,
               count(*) FILTER (WHERE event = 'batch' AND functions IS NOT NULL) > 0 AS functions,
               count(*) FILTER (WHERE event = 'soak_start' AND driver_functions IS NOT NULL) > 0 AS driver_functions,
               count(*) FILTER (WHERE event = 'batch' AND interleavings_new IS NOT NULL) > 0 AS interleavings
        FROM ev GROUP BY run ORDER BY run
        """,
    ),
    "coverage_growth": (
        "Distinct op kinds, overlap pairs, lock edges and functions reached against schedules "
        "done: each item counts from the first batch that had it.",
        """
        WITH items AS (
            SELECT run, n, cum_schedules, 'op kinds' AS metric, unnest(map_keys(ops)) AS item
                FROM ev WHERE event = 'batch' AND ops IS NOT NULL
            UNION ALL
            SELECT run, n, cum_schedules, 'overlap pairs', unnest(map_keys("overlaps"))
                FROM ev WHERE event = 'batch' AND "overlaps" IS NOT NULL
            UNION ALL
            SELECT run, n, cum_schedules, 'lock edges', unnest(lock_edges)::VARCHAR
                FROM ev WHERE event = 'batch' AND lock_edges IS NOT NULL
            UNION ALL
            SELECT run, n, cum_schedules, 'functions', unnest(map_keys(functions))
                FROM ev WHERE event = 'batch' AND functions IS NOT NULL
        ), firsts AS (
            SELECT run, metric, item, min(cum_schedules) AS schedules FROM items GROUP BY ALL
        ), steps AS (
            SELECT run, metric, schedules, count(*) AS new FROM firsts GROUP BY ALL
        ), ends AS (
            SELECT run, metric, max(cum_schedules) AS schedules FROM items GROUP BY ALL
        )
        SELECT run, metric, schedules, distinct_items FROM (
            SELECT run, metric, schedules, sum(new) OVER (PARTITION BY run, metric ORDER BY schedules) AS distinct_items
            FROM steps
            UNION ALL
            SELECT e.run, e.metric, e.schedules, (SELECT count(*) FROM firsts f WHERE f.run = e.run AND f.metric = e.metric)
            FROM ends e
        ) GROUP BY ALL ORDER BY run, metric, schedules
        """,
    ),
    "interleavings_growth": (
        "Interleaving coverage (stress.search.coverage) against schedules done: the distinct features "
        "of each kind the soak had reached after each batch (running sum of batch.interleavings_new).",
        """
        WITH news AS (
            SELECT run, n, cum_schedules, unnest(map_keys(interleavings_new)) AS kind,
                   unnest(map_values(interleavings_new)) AS k
            FROM ev WHERE event = 'batch' AND interleavings_new IS NOT NULL
        )
        SELECT run, kind, cum_schedules AS schedules,
               sum(k) OVER (PARTITION BY run, kind ORDER BY n) AS features
        FROM news ORDER BY run, kind, schedules
        """,
    ),
    "interleavings": (
        "Interleaving features reached, by kind: the soak's total (sum of batch.interleavings_new) and the "
        "mean a batch reached (batch.interleavings): a batch far below the total explores a corner.",
        """
        SELECT run, kind, sum(coalesce(map_extract(interleavings_new, kind)[1], 0)) AS features,
               round(avg(k), 1) AS per_batch FROM (
            SELECT run, interleavings_new, unnest(map_keys(interleavings)) AS kind, unnest(map_values(interleavings)) AS k
            FROM ev WHERE event = 'batch' AND interleavings IS NOT NULL
        ) GROUP BY ALL ORDER BY run, kind
        """,
    ),
}
