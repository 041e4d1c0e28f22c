"""Ingesting one export in one transaction, with its currency check and result."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date

import duckdb

from pipelines.ingest.errors import ExportRefused
from pipelines.ingest.folders import ExportFolder
from pipelines.ingest.manifest import check_manifest_checksums, read_manifest
from pipelines.ingest.tables import TableResult, ingest_table, refresh_known_customers
from pipelines.schemas import TABLES

# Tables read before the others: later tables check their customer ids against it.
TABLE_ORDER = (
    "customers",
    "fx_rates",
    "orders",
    "referrals",
    "surveys",
    "events",
    "marketing_spend",
    "referral_program_costs",
    "erasure_requests",
)


@dataclass
class ExportResult:
    export_date: date
    folder: str
    mode: str
    tables: dict[str, TableResult] = field(default_factory=dict)

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
                }
                for name, t in self.tables.items()
            },
        }


def _check_currencies(con: duckdb.DuckDBPyConnection, folder: ExportFolder, base: str) -> None:
    """Every non-base currency used so far needs a rate in this or an earlier export."""
    row = con.execute(
        """
        WITH used AS (
            SELECT currency, 'orders' AS tbl FROM raw.orders WHERE _export_date = ?
            UNION ALL
            SELECT reward_currency, 'referrals' FROM raw.referrals WHERE _export_date = ?
        )
        SELECT u.tbl, u.currency FROM used u
        WHERE u.currency IS NOT NULL AND u.currency <> ?
          AND u.currency NOT IN (
              SELECT currency FROM raw.fx_rates WHERE _export_date <= ?)
        ORDER BY 1, 2 LIMIT 1
        """,
        [folder.export_date, folder.export_date, base, folder.export_date],
    ).fetchone()
    if row:
        raise ExportRefused(
            folder.path, f"{row[0]} (fx_rates)", f"no exchange rate for currency {row[1]}"
        )


def ingest_export(
    con: duckdb.DuckDBPyConnection,
    folder: ExportFolder,
    bad_row_threshold: float,
    base_currency: str,
) -> ExportResult:
    """Replace one export's rows in raw, all or nothing."""
    manifest = read_manifest(folder)
    check_manifest_checksums(folder, manifest)
    result = ExportResult(folder.export_date, str(folder.path), manifest["mode"])
    con.execute("BEGIN TRANSACTION")
    try:
        for name in TABLES:
            con.execute(f"DELETE FROM raw.{name} WHERE _export_date = ?", [folder.export_date])
        con.execute("DELETE FROM raw.quarantine WHERE export_date = ?", [folder.export_date])
        con.execute("DELETE FROM raw.exports WHERE export_date = ?", [folder.export_date])
        for name in TABLE_ORDER:
            table = TABLES[name]
            path = folder.table_file(name)
            if path is None:
                if table.required_file:
                    raise ExportRefused(folder.path, f"{name}.csv", "required file missing")
                continue
            expected_rows = (manifest["files"].get(path.name) or {}).get("rows")
            table_result = ingest_table(
                con, folder, table, path, name != "customers", bad_row_threshold
            )
            if expected_rows is not None and int(expected_rows) != table_result.rows_read:
                raise ExportRefused(
                    folder.path,
                    path.name,
                    f"{table_result.rows_read} rows read but manifest.json says {expected_rows}"
                    " (truncated export)",
                )
            result.tables[name] = table_result
            if name == "customers":
                refresh_known_customers(con, folder.export_date)
        _check_currencies(con, folder, base_currency)
        con.execute(
            "INSERT INTO raw.exports VALUES (?, ?, ?, ?)",
            [
                folder.export_date,
                manifest["mode"],
                folder.path.name,
                json.dumps(folder.fingerprint(), sort_keys=True),
            ],
        )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return result
