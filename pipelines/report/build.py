"""Build the report from the published warehouse: load the marts, export Parquet, write pages."""

import os
import re
import shutil
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb
from dagster import MetadataValue

from pipelines.report.fmt import is_missing
from pipelines.report.page import render_html
from pipelines.sql import quote_ident, sql_literal

# Every mart's extract goes to <out>/latest/; a dated folder keeps the page and the extracts
# without customer rows, so the folder of reports grows by kilobytes a night at any size.
LATEST_EXTRACTS = "latest"
DAY = re.compile(r"\d{4}-\d{2}-\d{2}")

# Extracts are ordered by each table's key (the dbt uniqueness tests); others by every column.
TABLE_KEYS = {
    "customer_features": "customer_id",
    "customer_segments": "customer_id",
    "segment_profiles": "segment_id",
    "referral_roi_by_segment": "segment_id",
    "referral_roi_by_segment_monthly": "segment_id, month",
    "top_referrers": "referrer_rank, customer_id",
    "segment_history": "customer_id, valid_from",
    "segment_migrations": "to_as_of_date, from_as_of_date, from_segment_id, to_segment_id",
}


@dataclass(frozen=True)
class ReportResult:
    """What `build_report` wrote, and the headline numbers for run metadata."""

    as_of_date: date
    report_path: Path
    latest_path: Path
    extracts: dict[str, Path]
    extract_rows: dict[str, int]
    customers: int
    segments: int
    overall_roi: float | None

    def metadata(self) -> dict:
        return {
            "report": MetadataValue.path(str(self.report_path)),
            "latest": MetadataValue.path(str(self.latest_path)),
            "as_of_date": self.as_of_date.isoformat(),
            "customers": self.customers,
            "segments": self.segments,
            "overall_roi": self.overall_roi,
            "extract_rows": MetadataValue.json(self.extract_rows),
        }


def _rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[dict]:
    cur = con.execute(sql)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _load(con: duckdb.DuckDBPyConnection) -> dict:
    return {
        "overall": _rows(
            con, "SELECT * FROM marts.referral_roi_by_segment WHERE segment_id = 'all'"
        )[0],
        "segments": _rows(
            con,
            """
            SELECT p.segment_id, p.segment_name, p.customers, p.share, p.persona,
                   p.recommended_incentive, r.share_rate, r.referral_conversion_rate, r.roi,
                   r.low_confidence, r.clv_12m_referred, r.clv_12m_nonreferred
            FROM marts.segment_profiles p
            LEFT JOIN marts.referral_roi_by_segment r USING (segment_id)
            ORDER BY p.customers DESC, p.segment_id""",
        ),
        "monthly": _rows(
            con,
            """
            WITH m AS (SELECT month, referrals_sent, referrals_converted
                       FROM marts.referral_roi_by_segment_monthly WHERE segment_id = 'all'),
            s AS (SELECT unnest(generate_series(min(month), max(month), INTERVAL 1 MONTH))
                         ::DATE AS month FROM m)
            SELECT s.month, coalesce(m.referrals_sent, 0) AS sent,
                   coalesce(m.referrals_converted, 0) AS converted
            FROM s LEFT JOIN m USING (month) WHERE s.month IS NOT NULL ORDER BY s.month""",
        ),
        "sources": _rows(
            con,
            """
            SELECT s.source_system, s.files, s.rows_read, s.rows_skipped, s.rows_merged,
                   s.rows_quarantined, s.rows_loaded
            FROM audit.export_sources s
            WHERE s.export_date = (SELECT max(export_date) FROM audit.exports)
            ORDER BY s.source_system = 'contract', s.source_system""",
        ),
        "migrations": _rows(
            con,
            """
            SELECT * FROM marts.segment_migrations WHERE is_latest
            ORDER BY from_segment_id, to_segment_id""",
        ),
    }


def _export(con: duckdb.DuckDBPyConnection, table: str, folder: Path) -> tuple[Path, int]:
    """COPY marts.<table> ordered by its key to <table>.parquet (via a temporary name)."""
    path, tmp = folder / f"{table}.parquet", folder / f".{table}.parquet.tmp"
    order = TABLE_KEYS.get(table, "ALL")
    rows = con.execute(
        f"COPY (SELECT * FROM marts.{quote_ident(table)} ORDER BY {order}) "
        f"TO {sql_literal(str(tmp))} (FORMAT parquet)"
    ).fetchone()[0]
    os.replace(tmp, path)
    return path, int(rows)


def _copy(path: Path, folder: Path) -> None:
    """A written extract into another folder, via a temporary name as every write here."""
    tmp = folder / f".{path.name}.tmp"
    shutil.copyfile(path, tmp)
    os.replace(tmp, folder / path.name)


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _mart_tables(con: duckdb.DuckDBPyConnection) -> tuple[list[str], set[str]]:
    """Every marts table, and those with a row per customer (a `customer_id` column)."""
    cols = con.execute(
        "SELECT table_name, bool_or(column_name = 'customer_id') FROM information_schema.columns "
        "WHERE table_schema = 'marts' GROUP BY table_name ORDER BY table_name"
    ).fetchall()
    return [t for t, _ in cols], {t for t, per_customer in cols if per_customer}


def _prune_customer_rows(out_dir: Path, per_customer: set[str]) -> None:
    """Remove per-customer extracts from every dated folder (a release before this one wrote
    them there): customer rows live only in latest/, rewritten each night after erasure."""
    for folder in out_dir.iterdir():
        if folder.is_dir() and DAY.fullmatch(folder.name):
            for table in per_customer:
                (folder / f"{table}.parquet").unlink(missing_ok=True)


def build_report(
    warehouse_path: Path, out_dir: Path, currency: str = "", memory_limit: str = "1GB"
) -> ReportResult:
    """Write the dated report, the Parquet extracts and latest.html; see the package doc.

    `memory_limit`: DuckDB's buffer pool for the sorted copies (larger sorts spill to disk);
    DuckDB's own default, 80% of RAM, let the report take ~1 GB per million customers."""
    warehouse_path, out_dir = Path(warehouse_path), Path(out_dir)
    if not warehouse_path.exists():
        raise FileNotFoundError(f"No published warehouse at {warehouse_path}")
    con = duckdb.connect(str(warehouse_path), read_only=True, config={"memory_limit": memory_limit})
    try:
        con.execute("SET TimeZone = 'UTC'")
        as_of = con.execute("SELECT max(as_of_date) FROM marts.segment_profiles").fetchone()[0]
        if as_of is None:
            raise ValueError(f"{warehouse_path}: marts.segment_profiles is empty")
        folder, latest_dir = out_dir / as_of.isoformat(), out_dir / LATEST_EXTRACTS
        folder.mkdir(parents=True, exist_ok=True)
        latest_dir.mkdir(exist_ok=True)
        tables, per_customer = _mart_tables(con)
        written = {t: _export(con, t, latest_dir) for t in tables}
        for t in tables:
            if t not in per_customer:
                _copy(written[t][0], folder)
        data = _load(con)
    finally:
        con.close()
    _prune_customer_rows(out_dir, per_customer)
    rows = {t: n for t, (_, n) in written.items()}
    report, latest = folder / "report.html", out_dir / "latest.html"
    page = render_html(data, as_of, rows, currency)
    _write_text(report, page)
    _write_text(latest, page)  # the same bytes: the newest report at a fixed address
    roi = data["overall"]["roi"]
    return ReportResult(
        as_of_date=as_of,
        report_path=report,
        latest_path=latest,
        extracts={t: p for t, (p, _) in written.items()},
        extract_rows=rows,
        customers=int(data["overall"]["customers"]),
        segments=len(data["segments"]),
        overall_roi=None if is_missing(roi) else round(float(roi), 6),
    )
