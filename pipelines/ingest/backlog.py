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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import duckdb

from pipelines.ingest.errors import ExportRefused
from pipelines.ingest.folders import ExportFolder
from pipelines.ingest.manifest import read_manifest


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

    def blocked_message(self) -> str:
        """Why nothing was published, and what the operator can do about it."""
        r = self.blocking
        assert r is not None
        waiting = ", ".join(f.export_date.isoformat() for f in self.waiting) or "none yet"
        return (
            f"{r.describe()}. It blocks every later incremental export until it is "
            f"fixed, superseded or skipped: blocked since {r.export_date}, "
            f"{len(self.waiting)} export(s) waiting behind it ({waiting}). Nothing was "
            "published; analysts still see the previous night's tables. To go on: re-deliver "
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
