"""Export discovery, parsing, raw tables and quarantine.

Everything stays inside DuckDB.  A clean CSV file (the usual case) is read typed by
DuckDB's CSV reader, checked in one scan and inserted as read (`clean`); any other file
is read as text, typed and checked with one SQL statement, and split into good rows
(`raw.<table>`) and bad rows (`raw.quarantine`).  Both paths give the same raw rows.  An
export is applied in one transaction, so a refused export leaves no trace in raw.

The modules, in the order an export goes through them: `folders` (discovery, fingerprints),
`manifest` (mode, sha256 checks), `clean` (the fast path), `reading` (files into text temp
tables), `casting` (typing expressions), `rules` (row checks, quarantine), `tables` (one
table), `export` (one export).  Vendor files (Shopify exports, line-item files, ...) are
mapped onto contract tables by `pipelines.sources` first, and their rows then go through
the same text path (`tables.ingest_mapped_table`), keeping their system, file and line.
"""

from pipelines.ingest.casting import BOOL_FALSE, BOOL_TRUE, typed_expr
from pipelines.ingest.errors import ExportRefused
from pipelines.ingest.export import ExportResult, ingest_export
from pipelines.ingest.folders import (
    EXPORT_DIR_RE,
    ExportFolder,
    discover_exports,
    exports_to_ingest,
)
from pipelines.ingest.manifest import check_manifest_checksums, read_manifest, sha256_of
from pipelines.ingest.reading import load_text_table
from pipelines.ingest.tables import TableResult, ingest_mapped_table, ingest_table

__all__ = [
    "BOOL_FALSE",
    "BOOL_TRUE",
    "EXPORT_DIR_RE",
    "ExportFolder",
    "ExportRefused",
    "ExportResult",
    "TableResult",
    "typed_expr",
    "check_manifest_checksums",
    "discover_exports",
    "exports_to_ingest",
    "ingest_export",
    "ingest_mapped_table",
    "ingest_table",
    "load_text_table",
    "read_manifest",
    "sha256_of",
]
