"""Export discovery, parsing, raw tables and quarantine.

Everything stays inside DuckDB: files are read with DuckDB's own readers as text, typed
and checked with one SQL statement per table, and split into good rows (`raw.<table>`)
and bad rows (`raw.quarantine`).  An export is applied in one transaction, so a refused
export leaves no trace in raw.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import duckdb

from pipelines.schemas import FILE_SUFFIXES, TABLES, Column, Table

EXPORT_DIR_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
BOOL_TRUE = ("true", "1", "yes", "t", "y")
BOOL_FALSE = ("false", "0", "no", "f", "n")
# Tables read before the others: later tables check their customer ids against it.
TABLE_ORDER = (
    "customers", "fx_rates", "orders", "referrals", "surveys", "events",
    "marketing_spend", "referral_program_costs", "erasure_requests",
)


class ExportRefused(Exception):
    """A whole export is unusable; the message names folder, file and reason."""

    def __init__(self, folder: Path, file: str, reason: str):
        self.folder, self.file, self.reason = folder, file, reason
        super().__init__(f"Export {folder} refused: {file}: {reason}")


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


@dataclass
class TableResult:
    file: str
    rows_read: int
    rows_loaded: int
    rows_quarantined: int
    reasons: dict[str, int] = field(default_factory=dict)


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


def exports_to_ingest(con: duckdb.DuckDBPyConnection, folders: list[ExportFolder]) -> list[
    ExportFolder
]:
    """New exports, and exports whose files changed since they were ingested."""
    seen = dict(con.execute("SELECT export_date, files FROM raw.exports").fetchall())
    todo = []
    for folder in folders:
        recorded = seen.get(folder.export_date)
        if recorded is None or json.loads(recorded) != folder.fingerprint():
            todo.append(folder)
    return todo


# -- manifest ------------------------------------------------------------------------
def read_manifest(folder: ExportFolder) -> dict:
    path = folder.path / "manifest.json"
    if not path.exists():
        return {"mode": "full", "files": {}}
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ExportRefused(folder.path, "manifest.json", f"cannot be parsed ({exc})") from exc
    mode = manifest.get("mode", "full")
    if mode not in ("full", "incremental"):
        raise ExportRefused(folder.path, "manifest.json", f"unknown mode {mode!r}")
    return {"mode": mode, "files": manifest.get("files") or {}}


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_manifest_checksums(folder: ExportFolder, manifest: dict) -> None:
    for name, expected in sorted(manifest["files"].items()):
        path = folder.path / name
        if not path.exists():
            raise ExportRefused(folder.path, name, "listed in manifest.json but missing")
        want = (expected or {}).get("sha256")
        if want and sha256_of(path) != want.lower():
            raise ExportRefused(
                folder.path, name, "sha256 checksum disagrees with manifest.json (corrupt export)"
            )


# -- reading -------------------------------------------------------------------------
def _reader_sql(path: Path) -> str:
    p = str(path).replace("'", "''")
    name = path.name.lower()
    if name.endswith(".parquet"):
        return f"read_parquet('{p}')"
    if name.endswith(".jsonl"):
        return (
            f"read_json('{p}', format = 'newline_delimited', records = true, sample_size = -1)"
        )
    return (
        f"read_csv('{p}', header = true, all_varchar = true, delim = ',', "
        f"quote = '\"', escape = '\"', strict_mode = true)"
    )


def load_text_table(
    con: duckdb.DuckDBPyConnection, folder: ExportFolder, path: Path, table: Table
) -> tuple[str, list[str], dict[str, str]]:
    """Read a file into a temp table of text columns; returns (temp name, all columns, map).

    The map goes from contract column to the file's own column name (matched ignoring case
    and surrounding blanks).  Row order is the file's, so rowid gives the line number.
    """
    tmp = f"_src_{table.name}"
    try:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {tmp} AS SELECT * FROM {_reader_sql(path)}")
    except duckdb.Error as exc:
        first = str(exc).strip().splitlines()[0]
        raise ExportRefused(folder.path, path.name, f"cannot be parsed: {first}") from exc
    described = con.execute(f"DESCRIBE {tmp}").fetchall()
    for name, typ, *_ in described:
        if typ == "JSON":  # JSON readers leave all-NULL or mixed columns as JSON values
            con.execute(
                f"ALTER TABLE {tmp} ALTER {_q(name)} TYPE VARCHAR "
                f"USING json_extract_string({_q(name)}, '$')"
            )
    cols = [r[0] for r in described]
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
    return tmp, cols, mapping


# -- typing and row checks -----------------------------------------------------------
def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _text_expr(src_col: str | None) -> str:
    if src_col is None:
        return "CAST(NULL AS VARCHAR)"
    return f"NULLIF(trim(CAST(s.{_q(src_col)} AS VARCHAR)), '')"


def _typed_expr(col: Column, txt: str) -> str:
    """SQL turning the trimmed text into the raw column's type (NULL when unparseable)."""
    if col.type == "id":
        return txt
    if col.type == "string":
        if col.allowed is not None:
            return f"lower({txt})"
        if col.name == "currency":
            return f"upper({txt})"
        return txt
    if col.type == "date":
        return f"TRY_CAST({txt} AS DATE)"
    if col.type == "timestamp":
        # Fast path (the common case): exactly 'YYYY-MM-DD HH:MM:SS' (or with 'T') leaves no
        # room for an offset or zone name, and TIMESTAMP parses it as TIMESTAMPTZ does in
        # UTC, ~5x faster. Anything else goes through TIMESTAMPTZ (offsets, zones).
        return (
            f"CASE WHEN length({txt}) = 19 AND {txt}[11] IN (' ', 'T') "
            f"AND {txt}[14] = ':' AND {txt}[17] = ':' THEN TRY_CAST({txt} AS TIMESTAMP) "
            f"ELSE CAST(TRY_CAST({txt} AS TIMESTAMPTZ) AS TIMESTAMP) END"
        )
    if col.type == "money":
        return f"TRY_CAST({txt} AS DECIMAL(18,4))"
    if col.type == "decimal":
        return f"TRY_CAST({txt} AS DECIMAL(18,8))"
    if col.type == "int":
        return f"TRY_CAST({txt} AS BIGINT)"
    if col.type == "bool":
        t = ", ".join(_lit(v) for v in BOOL_TRUE)
        f = ", ".join(_lit(v) for v in BOOL_FALSE)
        return (
            f"CASE WHEN lower({txt}) IN ({t}) THEN true "
            f"WHEN lower({txt}) IN ({f}) THEN false END"
        )
    raise ValueError(f"unknown type {col.type}")


def _row_checks(
    table: Table, has_known_customers: bool, unknown: dict[str, str] | None = None
) -> list[tuple[str, str, str]]:
    """(condition, column, reason) in the order they are tried; the first match wins.

    ``unknown``: customer-reference column -> temp table of the lines whose customer is
    unknown (`_unknown_customer_lines`); a column left out has no unknown customer, so its
    check can never match and is left out too.
    """
    checks: list[tuple[str, str, str]] = []
    for col in table.columns:
        t, v = f"t_{col.name}", f"v_{col.name}"
        if col.required:
            checks.append((f"{t} IS NULL", col.name, "missing required value"))
        checks.append((f"{t} IS NOT NULL AND {v} IS NULL", col.name, f"unparseable {col.type}"))
        if col.allowed is not None:
            allowed = ", ".join(_lit(a) for a in col.allowed)
            checks.append(
                (f"{v} IS NOT NULL AND {v} NOT IN ({allowed})", col.name, "value not allowed")
            )
        if col.min_value is not None:
            op = ">" if col.type == "decimal" else ">="
            checks.append(
                (f"{v} IS NOT NULL AND NOT ({v} {op} {col.min_value})", col.name,
                 f"out of range (must be {op} {col.min_value:g})")
            )
        if col.max_value is not None:
            checks.append(
                (f"{v} IS NOT NULL AND {v} > {col.max_value}", col.name,
                 f"out of range (must be <= {col.max_value:g})")
            )
    if table.name == "referrals":
        checks.append(
            ("v_status = 'converted' AND v_converted_at IS NULL", "converted_at",
             "converted_at required when status = converted")
        )
    if table.name == "surveys":
        checks.append(("v_nps IS NULL AND v_csat IS NULL", "nps", "nps or csat required"))
    if table.name == "erasure_requests":
        checks.append(
            ("v_customer_id IS NULL AND v_email IS NULL", "customer_id",
             "customer_id or email required")
        )
    if has_known_customers:
        for col in table.columns:
            if col.customer_ref and (unknown is None or col.name in unknown):
                checks.append(
                    (f"v_{col.name} IS NOT NULL AND kc_{col.name}_id IS NULL",
                     col.name, "unknown customer")
                )
    if table.key:
        checks.append(("_dup_rank > 1", table.key[0], "duplicate key within export"))
    return checks


def _line_number_sql(tmp: str) -> str:
    # Temp-table rowids start at an offset; subtracting the first gives the data row number.
    return f"s.rowid - (SELECT min(rowid) FROM {tmp}) + 2"


def _duplicate_ranks(
    con: duckdb.DuckDBPyConnection, table: Table, tmp: str, mapping: dict[str, str]
) -> str | None:
    """Temp table (_line_number, _dup_rank) of the rows whose key occurs more than once,
    ranked by line number; None when the key is unique (the usual case, no window at all).

    Ranking only the duplicated keys keeps the window (a sort) off the other rows.
    """
    if not table.key:
        return None
    keys = [f"{_text_expr(mapping.get(k))} AS k{i}" for i, k in enumerate(table.key)]
    knames = [f"k{i}" for i in range(len(table.key))]
    name = f"_dups_{table.name}"
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {name} AS "
        f"WITH k AS (SELECT {_line_number_sql(tmp)} AS _line_number, {', '.join(keys)} "
        f"FROM {tmp} s), "
        f"d AS (SELECT {', '.join(knames)} FROM k "
        f"WHERE {' AND '.join(k + ' IS NOT NULL' for k in knames)} "
        f"GROUP BY ALL HAVING count(*) > 1) "
        f"SELECT _line_number, row_number() OVER (PARTITION BY {', '.join(knames)} "
        f"ORDER BY _line_number) AS _dup_rank FROM k SEMI JOIN d USING ({', '.join(knames)})"
    )
    if con.execute(f"SELECT count(*) FROM {name}").fetchone()[0] == 0:
        con.execute(f"DROP TABLE {name}")
        return None
    return name


def _unknown_customer_lines(
    con: duckdb.DuckDBPyConnection, table: Table, tmp: str, mapping: dict[str, str]
) -> dict[str, str]:
    """Customer-reference column -> temp table (_line_number) of the lines whose customer id
    is not a known customer, for the columns that have any (usually none).

    Found with one narrow anti-join, so the checked query joins nothing in the usual case
    and keeps the file's row order (the raw insert then needs no sort).
    """
    found: dict[str, str] = {}
    for col in table.columns:
        if not col.customer_ref:
            continue
        name = f"_unknown_{table.name}_{col.name}"
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT k._line_number FROM ("
            f"SELECT {_line_number_sql(tmp)} AS _line_number, "
            f"{_text_expr(mapping.get(col.name))} AS cid FROM {tmp} s) k "
            "ANTI JOIN _known_customers c ON c.customer_id = k.cid WHERE k.cid IS NOT NULL"
        )
        if con.execute(f"SELECT count(*) FROM {name}").fetchone()[0]:
            found[col.name] = name
        else:
            con.execute(f"DROP TABLE {name}")
    return found


def _checked_sql(
    table: Table, tmp: str, all_cols: list[str], mapping: dict[str, str], has_known: bool,
    dups: str | None = None, unknown: dict[str, str] | None = None,
) -> str:
    """One SELECT giving typed values, the first problem of each row, and the raw row.

    Only what the inserts need is selected (typed values, line number, problem, _extra);
    the raw row's JSON is built for bad rows only.  `dups` is the table of
    `_duplicate_ranks` (None: every key is unique); `unknown` the tables of
    `_unknown_customer_lines` (None: join _known_customers here instead).
    """
    txt = {c.name: _text_expr(mapping.get(c.name)) for c in table.columns}
    select = [f"{_line_number_sql(tmp)} AS _line_number"]
    for c in table.columns:
        select.append(f"{txt[c.name]} AS t_{c.name}")
        select.append(f"{_typed_expr(c, txt[c.name])} AS v_{c.name}")
    raw = [f"s.{_q(c)} AS _r{i}" for i, c in enumerate(all_cols)]
    select.extend(raw)
    raw_pack = ", ".join(
        f"{_q(c)} := CAST(_r{i} AS VARCHAR)" for i, c in enumerate(all_cols)
    )
    known = set(mapping.values())
    extra = [c for c in all_cols if c not in known]
    if extra:
        pack = ", ".join(f"{_q(c.strip())} := CAST(s.{_q(c)} AS VARCHAR)" for c in extra)
        select.append(f"to_json(struct_pack({pack})) AS _extra")
    else:
        select.append("CAST(NULL AS JSON) AS _extra")
    joins = ""
    if has_known:
        for c in table.columns:
            if not c.customer_ref:
                continue
            if unknown is None:
                joins += (
                    f" LEFT JOIN _known_customers kc_{c.name}"
                    f" ON kc_{c.name}.customer_id = {txt[c.name]}"
                )
                select.append(f"kc_{c.name}.customer_id AS kc_{c.name}_id")
            elif c.name in unknown:
                # NULL for the unknown lines, the id otherwise (what the join would give)
                joins += (
                    f" LEFT JOIN {unknown[c.name]} u_{c.name}"
                    f" ON u_{c.name}._line_number = {_line_number_sql(tmp)}"
                )
                select.append(
                    f"CASE WHEN u_{c.name}._line_number IS NULL THEN {txt[c.name]} END"
                    f" AS kc_{c.name}_id"
                )
    typed = f"SELECT {', '.join(select)} FROM {tmp} s{joins}"
    checks = _row_checks(table, has_known, unknown)
    if dups is None:
        ranked = "SELECT *, 1 AS _dup_rank FROM typed"
    else:
        ranked = (
            "SELECT typed.*, coalesce(d._dup_rank, 1) AS _dup_rank FROM typed "
            f"LEFT JOIN {dups} d USING (_line_number)"
        )
    cases = " ".join(
        f"WHEN {cond} THEN "
        f"{{'column_name': {_lit(col)}, 'value': t_{col}, 'reason': {_lit(reason)}}}"
        for cond, col, reason in checks
    )
    vals = ", ".join(f"v_{c.name}" for c in table.columns)
    return (
        f"WITH typed AS ({typed}), ranked AS ({ranked}), "
        f"checked AS (SELECT *, CASE {cases} END AS _problem FROM ranked) "
        f"SELECT _line_number, {vals}, _extra, _problem, "
        f"CASE WHEN _problem IS NOT NULL THEN to_json(struct_pack({raw_pack})) END AS _raw_row "
        "FROM checked"
    )


def _in_line_order(con: duckdb.DuckDBPyConnection, checked: str) -> bool:
    """Whether the table's rows are stored in line order (then inserts need no sort)."""
    (misplaced,) = con.execute(
        f"SELECT count(*) FROM {checked} "
        f"WHERE _line_number <> rowid - (SELECT min(rowid) FROM {checked}) + 2"
    ).fetchone()
    return misplaced == 0


def ingest_table(
    con: duckdb.DuckDBPyConnection,
    folder: ExportFolder,
    table: Table,
    path: Path,
    has_known: bool,
    bad_row_threshold: float,
) -> TableResult:
    tmp, all_cols, mapping = load_text_table(con, folder, path, table)
    checked = f"_checked_{table.name}"
    dups = _duplicate_ranks(con, table, tmp, mapping)
    unknown = _unknown_customer_lines(con, table, tmp, mapping) if has_known else {}
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {checked} AS "
        f"{_checked_sql(table, tmp, all_cols, mapping, has_known, dups, unknown)}"
    )
    for helper in [dups, *unknown.values()]:
        if helper is not None:
            con.execute(f"DROP TABLE {helper}")
    con.execute(f"DROP TABLE {tmp}")
    rows_read, bad = con.execute(
        f"SELECT count(*), count(_problem) FROM {checked}"
    ).fetchone()
    if rows_read and bad / rows_read > bad_row_threshold:
        top = con.execute(
            f"SELECT _problem.reason, _problem.column_name, count(*) n FROM {checked} "
            "WHERE _problem IS NOT NULL GROUP BY ALL ORDER BY n DESC, 1, 2 LIMIT 1"
        ).fetchone()
        raise ExportRefused(
            folder.path,
            path.name,
            f"{bad} of {rows_read} rows are bad ({bad / rows_read:.1%} > "
            f"{bad_row_threshold:.0%} threshold); most common: {top[0]} in column {top[1]}",
        )
    export_date = folder.export_date.isoformat()
    cols = ", ".join(_q(c.name) for c in table.columns)
    vals = ", ".join(f"v_{c.name}" for c in table.columns)
    # Rows are normally stored in line order already; sort only when they are not.
    order = "" if _in_line_order(con, checked) else " ORDER BY _line_number"
    con.execute(
        f"INSERT INTO raw.{table.name} ({cols}, _export_date, _line_number, _extra) "
        f"SELECT {vals}, DATE {_lit(export_date)}, _line_number, _extra FROM {checked} "
        f"WHERE _problem IS NULL{order}"
    )
    if bad:
        con.execute(
            "INSERT INTO raw.quarantine SELECT "
            f"DATE {_lit(export_date)}, {_lit(path.name)}, _line_number, "
            f"_problem.column_name, _problem.value, _problem.reason, _raw_row FROM {checked} "
            "WHERE _problem IS NOT NULL ORDER BY _line_number"
        )
    reasons = dict(
        con.execute(
            f"SELECT _problem.reason, count(*) FROM {checked} WHERE _problem IS NOT NULL "
            "GROUP BY 1 ORDER BY 1"
        ).fetchall()
    ) if bad else {}
    con.execute(f"DROP TABLE {checked}")
    return TableResult(path.name, rows_read, rows_read - bad, bad, reasons)


def _refresh_known_customers(con: duckdb.DuckDBPyConnection, export_date: date) -> None:
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _known_customers AS "
        "SELECT DISTINCT customer_id FROM raw.customers WHERE _export_date <= ?",
        [export_date],
    )


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
                    folder.path, path.name,
                    f"{table_result.rows_read} rows read but manifest.json says {expected_rows}"
                    " (truncated export)",
                )
            result.tables[name] = table_result
            if name == "customers":
                _refresh_known_customers(con, folder.export_date)
        _check_currencies(con, folder, base_currency)
        con.execute(
            "INSERT INTO raw.exports VALUES (?, ?, ?, ?)",
            [folder.export_date, manifest["mode"], folder.path.name,
             json.dumps(folder.fingerprint(), sort_keys=True)],
        )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return result
