"""Ingesting one export in one transaction, with its currency check and result.

An export holds contract-layout files (customers.csv, ...) and/or vendor files
(pipelines/sources): a table that some vendor file fills is mapped from them (together
with its contract file, if any) and goes through the same checks as a contract file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date

import duckdb

from pipelines.ingest.errors import ExportRefused
from pipelines.ingest.folders import ExportFolder
from pipelines.ingest.lines import forget_line_hashes
from pipelines.ingest.manifest import check_manifest_checksums, read_manifest
from pipelines.ingest.tables import (
    TableResult,
    ingest_mapped_table,
    ingest_table,
    refresh_known_customers,
)
from pipelines.ingest.versions import (
    INCOMING,
    create_incoming,
    mark_superseded,
    store_versions,
)
from pipelines.schemas import (
    CONTRACT_SOURCE,
    CUSTOMER_TABLE,
    RATE_TABLE,
    TABLES,
    Table,
    load_order,
)
from pipelines.sources.identity import (
    DEFAULT_EMAIL_SALT,
    check_salt,
    record_contract_identities,
)
from pipelines.sources.load import SourceBatch
from pipelines.sources.registry import Registry, load_registry
from pipelines.sql import quote_ident, sql_literal, transaction


@dataclass
class ExportResult:
    export_date: date
    folder: str
    mode: str
    tables: dict[str, TableResult] = field(default_factory=dict)
    # Vendor systems of the export: system -> counts (`sources.load.SystemCounts`).
    sources: dict[str, dict] = field(default_factory=dict)

    @property
    def rows_quarantined(self) -> int:
        return sum(t.rows_quarantined for t in self.tables.values())

    def as_metadata(self) -> dict:
        return {
            "export_date": self.export_date.isoformat(),
            "mode": self.mode,
            "tables": {
                name: {
                    "file": t.file,
                    "rows_read": t.rows_read,
                    "rows_loaded": t.rows_loaded,
                    "rows_quarantined": t.rows_quarantined,
                    "quarantine_reasons": t.reasons,
                    **(t.versions.as_metadata() if t.versions else {}),
                }
                for name, t in self.tables.items()
            },
            "sources": self.sources,
        }


def source_rows(result: ExportResult) -> list[list]:
    """raw.export_sources rows (without the date): one per vendor system, and `contract`
    for the rows of contract-layout files."""
    rows = []
    for system, counts in result.sources.items():
        tables = counts["tables"].values()
        rows.append(
            [
                system,
                json.dumps(counts["files"]),
                counts["rows_read"],
                counts["rows_skipped"],
                sum(t.get("rows_merged", 0) for t in tables),
                sum(t["rows_quarantined"] for t in tables),
                sum(t["rows_loaded"] for t in tables),
                json.dumps(
                    {"skipped_reasons": counts["skipped_reasons"], "tables": counts["tables"]},
                    sort_keys=True,
                ),
            ]
        )
    contract = {}
    for name, table in result.tables.items():
        if name in {t for c in result.sources.values() for t in c["tables"]}:
            own = table.by_system.get(CONTRACT_SOURCE)
            if own:
                contract[name] = (table.file, own["rows"], own["quarantined"])
        else:
            contract[name] = (table.file, table.rows_read, table.rows_quarantined)
    if contract:
        rows.append(
            [
                CONTRACT_SOURCE,
                json.dumps({file: name for name, (file, _, _) in sorted(contract.items())}),
                sum(n for _, n, _ in contract.values()),
                0,
                0,
                sum(q for _, _, q in contract.values()),
                sum(n - q for _, n, q in contract.values()),
                json.dumps(
                    {
                        "skipped_reasons": {},
                        "tables": {
                            name: {"rows_read": n, "rows_quarantined": q, "rows_loaded": n - q}
                            for name, (_, n, q) in sorted(contract.items())
                        },
                    },
                    sort_keys=True,
                ),
            ]
        )
    return rows


def _check_currencies(con: duckdb.DuckDBPyConnection, folder: ExportFolder, base: str) -> None:
    """Every non-base currency of this export (the `needs_rate` columns) needs a rate in
    this or an earlier export."""
    used = [
        f"SELECT {quote_ident(c.name)} AS currency, {sql_literal(t.name)} AS tbl "
        f"FROM raw.{quote_ident(t.name)} WHERE _export_date = $day"
        for t in TABLES.values()
        for c in t.columns
        if c.needs_rate
    ]
    if not used:
        return
    rate_key = quote_ident(TABLES[RATE_TABLE].key[0])
    row = con.execute(
        f"WITH used AS ({' UNION ALL '.join(used)}) "
        "SELECT u.tbl, u.currency FROM used u "
        "WHERE u.currency IS NOT NULL AND u.currency <> $base AND u.currency NOT IN ("
        f"SELECT {rate_key} FROM raw.{quote_ident(RATE_TABLE)} WHERE _export_date <= $day) "
        "ORDER BY 1, 2 LIMIT 1",
        {"day": folder.export_date, "base": base},
    ).fetchone()
    if row:
        raise ExportRefused(
            folder.path, f"{row[0]} ({RATE_TABLE})", f"no exchange rate for currency {row[1]}"
        )


def _check_rows(folder: ExportFolder, manifest: dict, name: str, rows: int) -> None:
    expected = (manifest["files"].get(name) or {}).get("rows")
    if expected is not None and int(expected) != rows:
        raise ExportRefused(
            folder.path,
            name,
            f"{rows} rows read but manifest.json says {expected} (truncated export)",
        )


def _delete_versions(con: duckdb.DuckDBPyConnection, table: Table, export_date: date) -> None:
    """Delete the versions an export stored (it is ingested again); the versions they
    superseded get their `_superseded_on` again (pipelines/ingest/versions.py)."""
    raw = f"raw.{quote_ident(table.name)}"
    (deleted,) = con.execute(f"DELETE FROM {raw} WHERE _export_date = ?", [export_date]).fetchone()
    if deleted and table.key:
        day = f"DATE {sql_literal(export_date.isoformat())}"
        keys = ", ".join(quote_ident(k) for k in table.key)
        mark_superseded(con, table, f"SELECT {keys} FROM {raw} WHERE _superseded_on = {day}")


def ingest_export(
    con: duckdb.DuckDBPyConnection,
    folder: ExportFolder,
    bad_row_threshold: float,
    base_currency: str,
    email_salt: str = DEFAULT_EMAIL_SALT,
    registry: Registry | None = None,
) -> ExportResult:
    """Replace one export's rows in raw, all or nothing (every table of `TABLES`, in
    `load_order`).

    `email_salt` (EMAIL_HASH_SALT) hashes the emails that link systems in the identity
    crosswalk; `registry` holds the known source systems (default: the package's own).
    """
    manifest = read_manifest(folder)
    check_manifest_checksums(folder, manifest)
    registry = registry if registry is not None else load_registry()
    result = ExportResult(folder.export_date, str(folder.path), manifest["mode"])
    with transaction(con):
        for name in TABLES:
            _delete_versions(con, TABLES[name], folder.export_date)
        con.execute("DELETE FROM raw.quarantine WHERE export_date = ?", [folder.export_date])
        con.execute("DELETE FROM raw.exports WHERE export_date = ?", [folder.export_date])
        for bookkeeping in ("export_sources", "record_presence"):
            con.execute(
                f"DELETE FROM raw.{bookkeeping} WHERE export_date = ?", [folder.export_date]
            )
        if check_salt(con, email_salt):
            # A new salt: each customer's line is parsed again when it is next delivered, so
            # that its email hash is recorded with the new salt (the crosswalk reads the
            # parsed rows).
            forget_line_hashes(con, TABLES[CUSTOMER_TABLE])
        batch = SourceBatch(con, folder, registry, email_salt)
        for name, rows in batch.rows_by_file.items():
            _check_rows(folder, manifest, name, rows)
        for name in load_order():
            table = TABLES[name]
            path = folder.table_file(name)
            if not batch.provides(name) and path is None:
                if table.required_file and not (batch.files and table.optional_with_sources):
                    reason = "required file missing"
                    if batch.files:
                        reason += " (and no vendor file of this export fills it)"
                    raise ExportRefused(folder.path, f"{name}.csv", reason)
                continue
            create_incoming(con, table)
            if batch.provides(name):
                mapped = batch.build(table, path, folder.export_date)
                files = batch.files_of(name, path)
                table_result = ingest_mapped_table(
                    con, folder, table, mapped, bad_row_threshold, files
                )
                batch.record(name, table_result.by_system)
                if path is not None:
                    contract = table_result.by_system.get(CONTRACT_SOURCE, {})
                    _check_rows(folder, manifest, path.name, contract.get("rows", 0))
            else:
                # The identity crosswalk reads the customer rows parsed (all but the
                # unchanged lines, whose identities are recorded already).
                changed_only = manifest["mode"] == "full"
                table_result = ingest_table(
                    con,
                    folder,
                    table,
                    path,
                    bad_row_threshold,
                    changed_only,
                    keep_parsed=name == CUSTOMER_TABLE,
                )
                _check_rows(folder, manifest, path.name, table_result.rows_read)
            if name == CUSTOMER_TABLE and not batch.provides(name):
                parsed = table_result.parsed_rows
                record_contract_identities(con, folder.export_date, email_salt, parsed or INCOMING)
                if parsed:
                    con.execute(f"DROP TABLE {parsed}")
            table_result.versions = store_versions(
                con,
                table,
                folder.export_date,
                manifest["mode"],
                table_result.rows_loaded if table_result.compared or table_result.stored else None,
                stored=table_result.stored,
            )
            result.tables[name] = table_result
            if name == CUSTOMER_TABLE:
                refresh_known_customers(con, folder.export_date)
        batch.close()  # (a failure rolls its temp tables back with everything else)
        result.sources = {n: c.as_metadata() for n, c in sorted(batch.counts.items())}
        _check_currencies(con, folder, base_currency)
        con.executemany(
            "INSERT INTO raw.export_sources VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [[folder.export_date, *row] for row in source_rows(result)],
        )
        con.execute(
            "INSERT INTO raw.exports (export_date, mode, folder, files, tables) "
            "VALUES (?, ?, ?, ?, ?)",
            [
                folder.export_date,
                manifest["mode"],
                folder.path.name,
                json.dumps(folder.fingerprint(), sort_keys=True),
                json.dumps(result.as_metadata()["tables"], sort_keys=True),
            ],
        )
    return result
