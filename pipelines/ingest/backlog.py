"""Which exports a night ingests when one of them is refused.

A refused export must not stop every night after it (docs/decisions.md, "Refused exports").
The contract gives the rule: a full export holds every record, so a newer good full export
supersedes an older refused one and nothing is lost by going on. An incremental export
holds only changes, so a refused export (of either mode) blocks the incremental exports
after it until a good full export arrives, or until an operator accepts the loss by
skipping it. What was refused, superseded or skipped is kept in `raw.refused_exports`; an
export recorded there is tried again only when its files change (re-delivery).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import pyarrow as pa

from pipelines.ingest.errors import ExportRefused
from pipelines.ingest.folders import ExportFolder
from pipelines.ingest.manifest import read_manifest
from pipelines.publish import ANALYSTS_STORAGE_VERSION
from pipelines.sql import sql_literal

# Beside the store (owner-only folder): the bad rows of the export that blocks the nights,
# kept while it blocks. A refused export leaves the store as it was (its ingest is rolled
# back whole), so its quarantined rows are nowhere else.
REFUSED_ROWS_FILE = "refused_rows.duckdb"
# Values of these columns are personal data: never in a Dagster event (sample lines).
PERSONAL_COLUMN_PARTS = ("email", "phone", "name")


@dataclass(frozen=True)
class Refusal:
    """One refused export: what, why, and what became of it."""

    folder: ExportFolder
    mode: str
    file: str
    reason: str

    @property
    def export_date(self) -> date:
        return self.folder.export_date

    def describe(self) -> str:
        """The refusal's own words (folder, file, reason), then the export's mode."""
        return f"{ExportRefused(self.folder.path, self.file, self.reason)} ({self.mode} export)"


@dataclass(frozen=True)
class Skip:
    """An operator's decision to accept the loss of one refused export."""

    export_date: date
    by: str
    note: str = ""


@dataclass
class Backlog:
    """The outcome of one night's exports."""

    ingested: list = field(default_factory=list)
    superseded: list[tuple[Refusal, date]] = field(default_factory=list)
    skipped: list[tuple[Refusal, Skip]] = field(default_factory=list)
    blocking: Refusal | None = None
    waiting: list[ExportFolder] = field(default_factory=list)

    def warnings(self) -> list[str]:
        """What the operator should read even though the night published."""
        out = [
            f"{r.describe()}; superseded by the full export {by}, which holds every "
            "record, so nothing of it is lost."
            for r, by in self.superseded
        ]
        out += [
            f"{r.describe()}; skipped by {s.by}"
            + (f" ({s.note})" if s.note else "")
            + ": its records are not in the warehouse."
            for r, s in self.skipped
        ]
        return out

    def blocked_message(self, analysts_as_of: date | None = None) -> str:
        """Why nothing was published, and what the operator can do about it: the whole
        story in one message, because Dagster shows it above its own stack trace and its
        "Not executing" line for every step the refusal stopped."""
        r = self.blocking
        assert r is not None
        waiting = ", ".join(f.export_date.isoformat() for f in self.waiting) or "none yet"
        seen = f" (as of {analysts_as_of})" if analysts_as_of else ""
        return (
            f"{r.describe()}. It blocks every later incremental export until it is "
            f"fixed, superseded or skipped: blocked since {r.export_date}, "
            f"{len(self.waiting)} export(s) waiting behind it ({waiting}). Nothing was "
            f"published; analysts still see the previous night's tables{seen}; the steps "
            "after ingest did not run. To go on: re-deliver "
            "the folder with fixed files (it is retried when its files change), or deliver a "
            "full export, or accept the loss with "
            f"`python -m pipelines.nightly --skip-export {r.export_date} --skip-note '...'` "
            "(or the launchpad config ops.ingest_exports.config.skip_refused_exports: "
            f"['{r.export_date}'])."
        )


def export_mode(folder: ExportFolder) -> str:
    """The export's mode; an unreadable manifest counts as incremental (the cautious side:
    its export blocks later incremental ones)."""
    try:
        return read_manifest(folder)["mode"]
    except ExportRefused:
        return "incremental"


def ingest_backlog(
    folders: Sequence[ExportFolder],
    ingest_one: Callable[[ExportFolder], object],
    skips: Sequence[Skip] = (),
) -> Backlog:
    """Ingest `folders` (oldest first) with `ingest_one`, going on past refused exports
    wherever the contract allows it.

    Incremental exports held back behind a refused one are ingested once a good full export
    clears the block (after it: raw keeps every export, and the newest version of each record
    still wins); one of them that is refused then is superseded by that full export too.
    """
    skip_by_date = {s.export_date: s for s in skips}
    backlog = Backlog()
    pending: list[Refusal] = []  # refused, neither superseded nor skipped; the first blocks

    def attempt(folder: ExportFolder, mode: str) -> tuple[object | None, Refusal | None]:
        try:
            return ingest_one(folder), None
        except ExportRefused as exc:
            refusal = Refusal(folder, mode, exc.file, exc.reason)
            skip = skip_by_date.get(folder.export_date)
            if skip is not None:
                backlog.skipped.append((refusal, skip))
                return None, None
            return None, refusal

    for folder in folders:
        mode = export_mode(folder)
        if pending and mode == "incremental":
            backlog.waiting.append(folder)
            continue
        result, refusal = attempt(folder, mode)
        if refusal is not None:
            pending.append(refusal)
            continue
        if result is None:  # skipped
            continue
        backlog.ingested.append(result)
        if mode == "full" and pending:
            backlog.superseded += [(r, folder.export_date) for r in pending]
            pending.clear()
            held_back, backlog.waiting = backlog.waiting, []
            for late in held_back:
                late_result, late_refusal = attempt(late, "incremental")
                if late_refusal is not None:
                    backlog.superseded.append((late_refusal, folder.export_date))
                elif late_result is not None:
                    backlog.ingested.append(late_result)
    backlog.blocking = pending[0] if pending else None
    behind = set(backlog.waiting) | {r.folder for r in pending[1:]}
    backlog.waiting = [f for f in folders if f in behind]
    return backlog


def record_resolutions(con: duckdb.DuckDBPyConnection, backlog: Backlog, run_id: str) -> None:
    """Keep superseded and skipped refusals, so later nights do not retry them unchanged."""
    now = datetime.now(UTC).replace(tzinfo=None)
    rows = [
        (r, f"superseded by full export {by}", f"run {run_id}", None)
        for r, by in backlog.superseded
    ] + [(r, "skipped by operator", s.by, s.note or None) for r, s in backlog.skipped]
    for refusal, resolution, by, note in rows:
        con.execute(
            "INSERT OR REPLACE INTO raw.refused_exports VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                refusal.export_date,
                refusal.mode,
                str(refusal.folder.path),
                json.dumps(refusal.folder.fingerprint(), sort_keys=True),
                refusal.file,
                refusal.reason,
                resolution,
                by,
                now,
                note,
            ],
        )


def forget_refusals(con: duckdb.DuckDBPyConnection, export_dates: Sequence[date]) -> None:
    """An export ingested after all (a fixed re-delivery) is no longer a refused one."""
    for export_date in export_dates:
        con.execute("DELETE FROM raw.refused_exports WHERE export_date = ?", [export_date])


@dataclass(frozen=True)
class RefusalDetail:
    """What the refused file's bad rows were: the counts and rules behind a refusal's
    one-line reason, for the operator's failure view."""

    rows_read: int | None  # rows of the refused file (None: not one contract/vendor file)
    bad_rows: int
    rules: list[tuple[str | None, str, int]]  # (column, rule, rows), most rows first
    sample: list[tuple[int | None, str | None, str | None, str]]  # (line, column, value, rule)

    @property
    def share(self) -> float | None:
        return self.bad_rows / self.rows_read if self.rows_read else None


def _shown_value(column: str | None, value: str | None) -> str | None:
    if column and any(part in column.lower() for part in PERSONAL_COLUMN_PARTS):
        return None if value is None else "(personal data: see the refused rows file)"
    return value


def refusal_detail(
    con: duckdb.DuckDBPyConnection,
    refusal: Refusal,
    recheck: Callable[[ExportFolder], object],
    sample_size: int = 10,
) -> RefusalDetail:
    """Re-check the refused export with `recheck` (ingest with the bad-row threshold off)
    and read what it quarantined from the refused file.

    Call it inside `sql.rolled_back`: the recheck writes raw, and a refused export must
    leave no row there. A refusal that is not about bad rows (missing file, manifest,
    layout) refuses again and has no rows."""
    try:
        result = recheck(refusal.folder)
    except ExportRefused:
        return RefusalDetail(None, 0, [], [])
    read = [t.rows_read for t in getattr(result, "tables", {}).values() if t.file == refusal.file]
    where = "export_date = ? AND file = ?"
    args = [refusal.export_date, refusal.file]
    rules = [
        (column, reason, n)
        for column, reason, n in con.execute(
            f"SELECT column_name, reason, count(*) n FROM raw.quarantine WHERE {where} "
            "GROUP BY ALL ORDER BY n DESC, 1, 2",
            args,
        ).fetchall()
    ]
    sample = [
        (line, column, _shown_value(column, value), reason)
        for line, column, value, reason in con.execute(
            f"SELECT line_number, column_name, value, reason FROM raw.quarantine WHERE {where} "
            "ORDER BY line_number LIMIT ?",
            [*args, sample_size],
        ).fetchall()
    ]
    return RefusalDetail(sum(read) if read else None, sum(n for *_, n in rules), rules, sample)


def bad_rows_of(con: duckdb.DuckDBPyConnection, refusal: Refusal) -> pa.Table:
    """The refused file's quarantined rows after `refusal_detail`, original rows included,
    taken out of the trial (`rolled_back`) before it is rolled back."""
    return con.sql(
        "SELECT export_date, file, line_number, column_name, value, reason, raw_row, "
        "source_system FROM raw.quarantine "
        f"WHERE export_date = DATE {sql_literal(refusal.export_date.isoformat())} "
        f"AND file = {sql_literal(refusal.file)} ORDER BY line_number"
    ).to_arrow_table()


def keep_refused_rows(con: duckdb.DuckDBPyConnection, rows: pa.Table, path: Path) -> None:
    """Write the refused file's bad rows to `path`, an owner-only DuckDB file beside the
    store, replacing the previous refusal's."""
    fresh = path.with_name(path.name + ".new")
    fresh.unlink(missing_ok=True)
    # in the analysts' file's storage format, which the CLI of `make sql` reads
    con.execute(
        f"ATTACH {sql_literal(str(fresh))} AS refused_rows_file "
        f"(STORAGE_VERSION {sql_literal(ANALYSTS_STORAGE_VERSION)})"
    )
    try:
        con.register("_refused_rows", rows)
        con.execute(
            "CREATE TABLE refused_rows_file.refused_rows AS "
            "SELECT * REPLACE (CAST(raw_row AS JSON) AS raw_row) FROM _refused_rows"
        )
        con.unregister("_refused_rows")
    finally:
        con.execute("DETACH refused_rows_file")
    os.chmod(fresh, 0o600)
    os.replace(fresh, path)


def refused_rows_query(path: Path, refusal: Refusal) -> str:
    """The operator's command that lists the refused file's bad rows, original rows included.

    The DuckDB CLI beside this Python (`make install` puts it in the venv), by its absolute
    path: the command works from any directory."""
    cli = Path(sys.executable).parent / "duckdb"
    return (
        f'{cli} -readonly {path} "SELECT line_number, column_name, value, reason, '
        f"raw_row FROM refused_rows WHERE export_date = DATE '{refusal.export_date}' AND file = "
        f'{sql_literal(refusal.file)} ORDER BY line_number"'
    )
