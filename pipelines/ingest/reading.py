"""Reading a file with DuckDB's readers into a temp table of text columns."""

from __future__ import annotations

from pathlib import Path

import duckdb

from pipelines.ingest.errors import ExportRefused
from pipelines.ingest.folders import ExportFolder
from pipelines.schemas import Table
from pipelines.sql import quote_ident, sql_literal


def is_csv(path: Path) -> bool:
    return not path.name.lower().endswith((".parquet", ".jsonl"))


def reader_sql(path: Path, csv_options: str = "") -> str:
    p = sql_literal(str(path))
    name = path.name.lower()
    if name.endswith(".parquet"):
        return f"read_parquet({p})"
    if name.endswith(".jsonl"):
        return f"read_json({p}, format = 'newline_delimited', records = true, sample_size = -1)"
    return (
        f"read_csv({p}, header = true, all_varchar = true, delim = ',', "
        f"quote = '\"', escape = '\"', strict_mode = true{csv_options})"
    )


def match_columns(
    folder: ExportFolder, path: Path, table: Table, cols: list[str]
) -> dict[str, str]:
    """Contract column -> the file's own column name (matched ignoring case and blanks);
    refuses the export when a required column is missing."""
    mapping: dict[str, str] = {}
    for col in cols:
        norm = col.strip().lower()
        if norm in table.column_names and norm not in mapping:
            mapping[norm] = col
    missing = [c.name for c in table.columns if c.required and c.name not in mapping]
    if missing:
        raise ExportRefused(
            folder.path, path.name, f"required column(s) missing: {', '.join(missing)}"
        )
    return mapping


def load_text_table(
    con: duckdb.DuckDBPyConnection, folder: ExportFolder, path: Path, table: Table
) -> tuple[str, list[str], dict[str, str]]:
    """Read a file into a temp table of text columns; returns (temp name, all columns, map).

    The map goes from contract column to the file's own column name (matched ignoring case
    and surrounding blanks).  Row order is the file's, so rowid gives the line number.
    """
    tmp = f"_src_{table.name}"
    try:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {tmp} AS SELECT * FROM {reader_sql(path)}")
    except duckdb.Error as exc:
        first = str(exc).strip().splitlines()[0]
        raise ExportRefused(folder.path, path.name, f"cannot be parsed: {first}") from exc
    described = con.execute(f"DESCRIBE {tmp}").fetchall()
    for name, typ, *_ in described:
        if typ == "JSON":  # JSON readers leave all-NULL or mixed columns as JSON values
            con.execute(
                f"ALTER TABLE {tmp} ALTER {quote_ident(name)} TYPE VARCHAR "
                f"USING json_extract_string({quote_ident(name)}, '$')"
            )
    cols = [r[0] for r in described]
    return tmp, cols, match_columns(folder, path, table, cols)
