"""Which vendor layout each file of an export folder is, by its header row.

Every file of the folder that is not a contract table file (`ExportFolder.table_file`) or
manifest.json, and has a data suffix (.csv, .csv.gz, .parquet, .jsonl), is matched against
every known layout.  `manifest.json` may name a file's layout instead
(`"sources": {"<file name>": "<system>/<layout>"}`); the file must still hold that layout's
required columns.  A file that matches nothing refuses the export, naming the closest
layout and what it lacks.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import duckdb

from pipelines.ingest.errors import ExportRefused
from pipelines.ingest.folders import ExportFolder
from pipelines.ingest.reading import reader_sql
from pipelines.schemas import FILE_SUFFIXES, TABLES
from pipelines.sources.registry import Registry
from pipelines.sources.spec import Layout

MANIFEST = "manifest.json"


@dataclass(frozen=True)
class VendorFile:
    path: Path
    layout: Layout
    headers: tuple[str, ...]
    declared: bool = False  # named in manifest.json rather than detected

    @property
    def name(self) -> str:
        return self.path.name


def manifest_sources(folder: ExportFolder) -> dict[str, str]:
    """`sources` of manifest.json: file name -> "<system>/<layout>" (empty without one)."""
    path = folder.path / MANIFEST
    if not path.exists():
        return {}
    try:
        sources = json.loads(path.read_text(encoding="utf-8")).get("sources") or {}
    except (OSError, ValueError, AttributeError) as exc:
        raise ExportRefused(folder.path, MANIFEST, f"cannot be parsed ({exc})") from exc
    if not isinstance(sources, dict):
        raise ExportRefused(folder.path, MANIFEST, "sources must map file names to layouts")
    return {str(k): str(v) for k, v in sources.items()}


def candidate_files(folder: ExportFolder) -> list[Path]:
    """Data files of the folder that are not contract table files, by name."""
    contract = {p for t in TABLES if (p := folder.table_file(t)) is not None}
    found = []
    for p in sorted(folder.path.iterdir(), key=lambda p: p.name):
        name = p.name.lower()
        if not p.is_file() or p.name.startswith(".") or name == MANIFEST or p in contract:
            continue
        if name.endswith(FILE_SUFFIXES):
            found.append(p)
    return found


def read_headers(con: duckdb.DuckDBPyConnection, folder: ExportFolder, path: Path) -> list[str]:
    try:
        return [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {reader_sql(path)}").fetchall()]
    except duckdb.Error as exc:
        first = str(exc).strip().splitlines()[0]
        raise ExportRefused(folder.path, path.name, f"cannot be parsed: {first}") from exc


def _lacks(layout: Layout, headers: list[str]) -> str:
    return ", ".join(layout.missing(headers))


def detect(
    con: duckdb.DuckDBPyConnection, folder: ExportFolder, registry: Registry
) -> list[VendorFile]:
    """The vendor files of an export and their layouts (refused: a file of no layout)."""
    declared = manifest_sources(folder)
    files = candidate_files(folder)
    names = {p.name for p in files}
    for name, key in sorted(declared.items()):
        if name not in names:
            raise ExportRefused(
                folder.path, MANIFEST, f"sources names {name}, which is not a vendor file here"
            )
        if registry.layout(key) is None:
            known = ", ".join(lay.key for lay in registry.layouts)
            raise ExportRefused(
                folder.path, MANIFEST, f"sources: unknown layout {key!r} (known: {known})"
            )
    found = []
    for path in files:
        headers = read_headers(con, folder, path)
        if path.name in declared:
            layout = registry.layout(declared[path.name])
            assert layout is not None
            if layout.missing(headers):
                raise ExportRefused(
                    folder.path,
                    path.name,
                    f"declared {layout.key} in manifest.json but lacks: {_lacks(layout, headers)}",
                )
            found.append(VendorFile(path, layout, tuple(headers), declared=True))
            continue
        matches = registry.matches(headers)
        if len(matches) > 1:
            keys = ", ".join(lay.key for lay in matches)
            raise ExportRefused(
                folder.path,
                path.name,
                f"matches several layouts equally well ({keys}); name one in manifest.json "
                f'"sources"',
            )
        if not matches:
            closest = registry.closest(headers)
            if closest is None:
                reason = "matches no known layout (no source systems are installed)"
            else:
                layout, missing = closest
                reason = (
                    f"matches no known layout; the closest is {layout.key} "
                    f"({layout.file or layout.title}), which needs the column(s) it lacks: "
                    f"{', '.join(missing)}"
                )
            raise ExportRefused(folder.path, path.name, reason)
        found.append(VendorFile(path, matches[0], tuple(headers)))
    return found
