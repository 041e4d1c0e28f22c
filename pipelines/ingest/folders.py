"""Export folders: discovery, their table files and fingerprints, which need ingesting."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb

from pipelines.ingest.errors import ExportRefused
from pipelines.schemas import FILE_SUFFIXES

EXPORT_DIR_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class ExportFolder:
    export_date: date
    path: Path

    def table_file(self, table: str) -> Path | None:
        """The file holding `table`, in any supported format (names matched ignoring case)."""
        by_name = {p.name.lower(): p for p in self.path.iterdir() if p.is_file()}
        found = [by_name[table + s] for s in FILE_SUFFIXES if table + s in by_name]
        if len(found) > 1:
            names = ", ".join(p.name for p in found)
            raise ExportRefused(self.path, names, f"table {table} given in several files")
        return found[0] if found else None

    def fingerprint(self) -> dict[str, dict[str, int]]:
        """Name, size and mtime of each file: cheap, and changes when a file is rewritten."""
        return {
            p.name: {"size": p.stat().st_size, "mtime_ns": p.stat().st_mtime_ns}
            for p in sorted(self.path.iterdir())
            if p.is_file()
        }


def discover_exports(root: Path) -> list[ExportFolder]:
    """Export folders under `root` (named YYYY-MM-DD), oldest first."""
    if not root.is_dir():
        return []
    folders = []
    for p in root.iterdir():
        if p.is_dir() and EXPORT_DIR_RE.match(p.name):
            try:
                folders.append(ExportFolder(date.fromisoformat(p.name), p))
            except ValueError:
                continue
    return sorted(folders, key=lambda f: f.export_date)


def exports_to_ingest(
    con: duckdb.DuckDBPyConnection, folders: list[ExportFolder]
) -> list[ExportFolder]:
    """New exports, and exports whose files changed since they were ingested, or since
    they were refused and then superseded or skipped (`raw.refused_exports`,
    pipelines/ingest/backlog.py): an unchanged refused folder is not tried again.

    Raw stores each export's changes against the exports before it (ingest/versions.py),
    so an export older than one already ingested (late, or re-delivered) is followed by
    every later ingested export again, in date order: their folders must still be there."""
    settled = {
        (export_date, json.dumps(json.loads(files), sort_keys=True))
        for table in ("raw.exports", "raw.refused_exports")
        for export_date, files in con.execute(f"SELECT export_date, files FROM {table}").fetchall()
    }
    todo = [
        folder
        for folder in folders
        if (folder.export_date, json.dumps(folder.fingerprint(), sort_keys=True)) not in settled
    ]
    if not todo:
        return todo
    first = todo[0]
    later = [
        d
        for (d,) in con.execute(
            "SELECT export_date FROM raw.exports WHERE export_date > ? ORDER BY 1",
            [first.export_date],
        ).fetchall()
    ]
    by_date = {f.export_date: f for f in folders}
    missing = [d.isoformat() for d in later if d not in by_date]
    if missing:
        raise ExportRefused(
            first.path,
            "(the whole folder)",
            f"is older than exports already ingested ({', '.join(missing)}), which must be "
            "ingested again after it, but their folders are gone from the exports folder: "
            "put them back, or move this export aside",
        )
    return sorted({*todo, *(by_date[d] for d in later)}, key=lambda f: f.export_date)
