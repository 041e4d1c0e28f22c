"""Keeping the pipeline's store bounded: retention of superseded raw versions, and
compaction of the DuckDB file.

DuckDB reuses the blocks that deleted data frees, but it does not give them back, and a
deleted row's bytes stay in a block until the block is rewritten.  So the store is
rewritten into a fresh file (`COPY FROM DATABASE`) when an erasure removed rows (the
erased person's bytes must not linger anywhere) or when free blocks pass
`COMPACT_FREE_SHARE` of the file.  Retention (`RAW_RETENTION_DAYS`, default: keep every
version) drops raw versions that a newer version superseded more than that many days
before the as-of date; the latest version of a record is never dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import duckdb

from pipelines.schemas import TABLES
from pipelines.sql import quote_ident, sql_literal

COMPACT_FREE_SHARE = 0.5
REQUESTS_DDL = """
CREATE TABLE IF NOT EXISTS raw.maintenance_requests (reason VARCHAR NOT NULL)"""


@dataclass(frozen=True)
class Compaction:
    reason: str
    bytes_before: int
    bytes_after: int

    def describe(self) -> str:
        mib = 1 << 20
        return (
            f"store compacted ({self.reason}): {self.bytes_before / mib:.1f} MiB -> "
            f"{self.bytes_after / mib:.1f} MiB"
        )


def request_compaction(con: duckdb.DuckDBPyConnection, reason: str) -> None:
    """Ask the publish step to rewrite the store (in the run's build, so a failed run
    forgets the request with everything else)."""
    con.execute("INSERT INTO raw.maintenance_requests VALUES (?)", [reason])


def compaction_reason(con: duckdb.DuckDBPyConnection) -> str | None:
    """Why the store should be rewritten now, if it should."""
    reasons = [r for (r,) in con.execute("SELECT reason FROM raw.maintenance_requests").fetchall()]
    total, free = con.execute(
        "SELECT total_blocks, free_blocks FROM pragma_database_size() "
        "WHERE database_name = current_database()"
    ).fetchone()
    if total and free / total > COMPACT_FREE_SHARE:
        reasons.append(f"{free} of {total} blocks free")
    return "; ".join(sorted(set(reasons))) or None


def compact(con: duckdb.DuckDBPyConnection, database: Path, reason: str) -> Compaction:
    """Rewrite the database `con` is connected to (file `database`) into a fresh file
    next to it (`compacted_path`); returns what to log.  The caller closes `con` and then
    renames the fresh file over `database`."""
    target = compacted_path(database)
    target.unlink(missing_ok=True)
    con.execute("DELETE FROM raw.maintenance_requests")
    con.execute("CHECKPOINT")
    (name,) = con.execute("SELECT current_database()").fetchone()
    con.execute(f"ATTACH {sql_literal(str(target))} AS compacted")
    try:
        con.execute(f"COPY FROM DATABASE {quote_ident(name)} TO compacted")
    finally:
        con.execute("DETACH compacted")
    return Compaction(reason, database.stat().st_size, target.stat().st_size)


def compacted_path(database: Path) -> Path:
    return database.with_name(database.name + ".compact")


def drop_superseded_versions(
    con: duckdb.DuckDBPyConnection, as_of: date, retention_days: int
) -> dict[str, int]:
    """Delete raw versions superseded by a newer version dated before as_of minus
    `retention_days`; returns rows dropped per table.

    A version's next newer one is dated `_superseded_on` (pipelines/ingest/versions.py):
    some newer version is dated before the limit exactly when that one is.  The versions
    dropped of a key are its oldest ones, so the markers of those kept stay true."""
    cutoff = sql_literal((as_of - timedelta(days=retention_days)).isoformat())
    dropped = {}
    for table in TABLES.values():
        if not table.key:
            continue
        raw = f"raw.{quote_ident(table.name)}"
        (n,) = con.execute(f"DELETE FROM {raw} WHERE _superseded_on < DATE {cutoff}").fetchone()
        if n:
            dropped[table.name] = n
    return dropped
