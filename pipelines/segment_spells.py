"""`history.segment_spells`: the segment history as spells, so it grows with change, not
with nights (docs/decisions.md, "Segment history as spells").

A spell is one customer's unbroken stay in one segment over consecutive segmentation runs,
half-open `[valid_from, valid_to)`: `valid_from` is the first run with that assignment,
`valid_to` the first later run in which the customer is in another segment or absent
(NULL while current). A run writes only what changed: it closes the spells that ended and
opens the ones that began (`write_run`). A store of an earlier release keeps one row per
customer per run in `history.segment_assignments`; `upgrade_assignments` turns it into
spells once.

Plain DuckDB SQL, no scikit-learn: `pipelines.warehouse_tables` runs the upgrade where it
creates the tables, before anything reads them.
"""

from __future__ import annotations

from datetime import date

import duckdb
import pandas as pd
from dagster import get_dagster_logger

from pipelines.sql import transaction

SPELLS = "history.segment_spells"
# Per-run rows of the releases before spells (as_of_date, customer_id, segment_id,
# segment_name); converted by `upgrade_assignments`, then dropped.
OLD_ASSIGNMENTS = "history.segment_assignments"
_RUN = "_segment_run"  # the run's assignments, registered for the statements below

# Newest run the history knows: every run with clustered customers writes centroids, and
# every run's spell boundaries are run dates (a run of prospects only writes no centroid).
LATEST_RUN_SQL = f"""
SELECT max(run) FROM (
    SELECT max(as_of_date) AS run FROM history.segment_centroids
    UNION ALL SELECT max(valid_from) FROM {SPELLS}
    UNION ALL SELECT max(valid_to) FROM {SPELLS}
)"""

# Ids a run other than `as_of` gave out: a new cluster never gets one of them.
USED_IDS_SQL = f"""
SELECT segment_id FROM {SPELLS} WHERE valid_from <> $as_of
UNION
SELECT segment_id FROM history.segment_centroids WHERE as_of_date <> $as_of"""

# Undo an earlier write of the same run (a re-run): drop the spells it opened, reopen the
# ones it closed.  Exact because no later run exists (`check_no_later_run`).
UNDO_SQL = (
    f"DELETE FROM {SPELLS} WHERE valid_from = $as_of",
    f"UPDATE {SPELLS} SET valid_to = NULL WHERE valid_to = $as_of",
)

# An open spell ends at this run when its customer is absent or in another segment.
CLOSE_SQL = f"""
UPDATE {SPELLS} AS spell SET valid_to = $as_of
WHERE spell.valid_to IS NULL AND NOT EXISTS (
    SELECT 1 FROM {_RUN} AS run
    WHERE run.customer_id = spell.customer_id AND run.segment_id = spell.segment_id
)"""

# A customer without an open spell in their segment (new, returning or moved) starts one.
OPEN_SQL = f"""
INSERT INTO {SPELLS} (customer_id, segment_id, valid_from, valid_to)
SELECT run.customer_id, run.segment_id, $as_of, NULL
FROM {_RUN} AS run
WHERE NOT EXISTS (
    SELECT 1 FROM {SPELLS} AS spell
    WHERE spell.valid_to IS NULL
      AND spell.customer_id = run.customer_id AND spell.segment_id = run.segment_id
)
ORDER BY run.customer_id"""

# Gaps and islands over the ordered run list: a customer's consecutive runs in one segment
# share `run_no - row_number()`; a run in another segment or absent starts a new island.
# One row per run and customer first (the least segment_id, as the old mart read it).
UPGRADE_SQL = f"""
INSERT INTO {SPELLS} (customer_id, segment_id, valid_from, valid_to)
WITH runs AS (
    SELECT as_of_date, row_number() OVER (ORDER BY as_of_date) AS run_no
    FROM (
        SELECT as_of_date FROM history.segment_centroids
        UNION SELECT as_of_date FROM {OLD_ASSIGNMENTS}
    )
),
per_run AS (
    SELECT old.customer_id, min(old.segment_id) AS segment_id, runs.run_no
    FROM {OLD_ASSIGNMENTS} AS old JOIN runs USING (as_of_date)
    GROUP BY old.customer_id, runs.run_no
),
islands AS (
    SELECT customer_id, segment_id, run_no,
        run_no - row_number() OVER (PARTITION BY customer_id, segment_id ORDER BY run_no)
            AS island
    FROM per_run
),
spells AS (
    SELECT customer_id, segment_id, min(run_no) AS first_run, max(run_no) AS last_run
    FROM islands GROUP BY customer_id, segment_id, island
)
SELECT spells.customer_id, spells.segment_id, began.as_of_date, ended.as_of_date
FROM spells
JOIN runs AS began ON began.run_no = spells.first_run
LEFT JOIN runs AS ended ON ended.run_no = spells.last_run + 1
ORDER BY spells.customer_id, began.as_of_date"""


def latest_run(con: duckdb.DuckDBPyConnection) -> date | None:
    """The newest run recorded in the segment history (None before the first run)."""
    # fetchall, not fetchone: DuckDB refuses to `register` while a result is unfinished.
    return con.execute(LATEST_RUN_SQL).fetchall()[0][0]


def check_no_later_run(con: duckdb.DuckDBPyConnection, as_of: date) -> None:
    """Refuse to write run `as_of` when the history holds a later run: spells are written
    forwards only (undo, close, open), so writing an older run would corrupt them.  Cannot
    happen in normal operation (a run's as-of date is the newest export)."""
    latest = latest_run(con)
    if latest is not None and latest > as_of:
        raise ValueError(
            f"history.segment_spells holds the run of {latest}, later than this run's "
            f"as-of date {as_of}: segment history is written forwards only; "
            f"an older run cannot be recorded without corrupting the spells."
        )


def used_segment_ids(con: duckdb.DuckDBPyConnection, as_of: date) -> set[str]:
    """Segment ids given out by runs other than `as_of` (stable-id allocation never reuses
    one for a new cluster): those of spells begun in another run and of other runs'
    centroids.  A re-run of `as_of` does not see its own earlier ids as used."""
    rows = con.execute(USED_IDS_SQL, {"as_of": as_of}).fetchall()
    return {r[0] for r in rows}


def write_run(con: duckdb.DuckDBPyConnection, assignments: pd.DataFrame, as_of: date) -> None:
    """Record run `as_of` (`assignments`: customer_id, segment_id) as spells, idempotently:
    undo an earlier write of the same run, close the open spells that ended, open the ones
    that began.  Set-based, in proportion to the run's customers and the open spells, not
    to the number of runs.  The caller holds the transaction (run_segmentation's)."""
    check_no_later_run(con, as_of)
    con.register(_RUN, assignments[["customer_id", "segment_id"]])
    try:
        for sql in (*UNDO_SQL, CLOSE_SQL, OPEN_SQL):
            con.execute(sql, {"as_of": as_of})
    finally:
        con.unregister(_RUN)


def _table_exists(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    schema, name = table.split(".")
    return bool(
        con.execute(
            "SELECT count(*) FROM information_schema.tables "
            "WHERE table_schema = ? AND table_name = ?",
            [schema, name],
        ).fetchone()[0]
    )


def upgrade_assignments(con: duckdb.DuckDBPyConnection) -> None:
    """Turn an earlier release's per-run `history.segment_assignments` into spells and
    drop it, in one transaction (a failure leaves the old table as it was, and the next
    start tries again).  A no-op once done.  Needs `history.segment_spells` and
    `history.segment_centroids` to exist."""
    if not _table_exists(con, OLD_ASSIGNMENTS):
        return
    with transaction(con):
        if con.execute(f"SELECT count(*) FROM {SPELLS}").fetchone()[0]:
            raise RuntimeError(
                f"Both {OLD_ASSIGNMENTS} and a non-empty {SPELLS} exist: the upgrade to "
                f"spells would mix two histories. Drop the one that is not current by hand."
            )
        rows, runs = con.execute(
            f"SELECT count(*), count(DISTINCT as_of_date) FROM {OLD_ASSIGNMENTS}"
        ).fetchone()
        con.execute(UPGRADE_SQL)
        spells = con.execute(f"SELECT count(*) FROM {SPELLS}").fetchone()[0]
        con.execute(f"DROP TABLE {OLD_ASSIGNMENTS}")
    get_dagster_logger("segment_spells").info(
        f"Segment history upgraded to spells: {OLD_ASSIGNMENTS} ({rows} rows over {runs} "
        f"runs) became {spells} rows of {SPELLS} and was dropped."
    )
