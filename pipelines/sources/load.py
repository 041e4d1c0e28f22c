"""Vendor files of one export mapped onto contract tables, ready for the usual checks.

Each vendor file is read as text by DuckDB; its columns get the layout's names (header
spellings matched ignoring case, blanks and punctuation; declared types normalised to the
contract's text forms: ISO dates, UTC timestamps, dot decimals; a value that does not
parse is kept as written, so the checks quarantine it with its value).  A layout's rows
are the union of its files, each row with its file, line, the vendor's row as JSON
(`_raw_row`, for the quarantine) and its undeclared columns (`_extra`), and the reason a
skip rule gives it, if any.

A system's table mapping is a SELECT over its layouts (by name, skipped rows left out,
`_extra` readable), which may also read another system's layout of the same export
(`{{ layout('<system>/<layout>') }}`) and settings of manifest.json
(`{{ option('<name>') }}`: `options.<system>.<name>`; skip rules may use it too),
giving contract columns plus the lineage row (`_source_file`, `_line_number`); customers
are named by `_source_id`/`email` (customers table) or `<column>__source_id`/`__email`
(other tables) and resolved by `identity`.  The rows of every system (and of a contract
file of the same table, when there is one) are then one temp table in a fixed order
(`_seq`: precedence, system, file, line), which `ingest.tables.ingest_mapped_table` checks
and loads.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import duckdb
import jinja2

from pipelines.ingest.errors import ExportRefused
from pipelines.ingest.folders import ExportFolder
from pipelines.ingest.reading import load_text_table, reader_sql
from pipelines.ingest.rules import MAPPED_META_COLUMNS
from pipelines.ingest.sql import line_number_sql, text_expr, text_of
from pipelines.schemas import CONTRACT_SOURCE, CUSTOMER_TABLE, Table
from pipelines.sources.detect import MANIFEST, VendorFile, detect
from pipelines.sources.identity import (
    email_hash_sql,
    known_by_email_sql,
    resolve_customers,
    resolve_references,
)
from pipelines.sources.registry import Registry
from pipelines.sources.spec import (
    LINEAGE_COLUMNS,
    REF_SUFFIXES,
    Layout,
    LayoutColumn,
    SourceSpecError,
    System,
    TableMap,
)
from pipelines.sql import quote_ident, sql_literal

CONTRACT_PRECEDENCE = 0  # a contract-layout file's values win a merge


@dataclass
class SystemCounts:
    """What became of one system's rows in one export (ingest metadata)."""

    files: dict[str, str] = field(default_factory=dict)  # file -> layout
    rows_read: int = 0
    rows_skipped: dict[str, int] = field(default_factory=dict)  # reason -> rows
    tables: dict[str, dict[str, int]] = field(default_factory=dict)

    def as_metadata(self) -> dict:
        return {
            "files": dict(sorted(self.files.items())),
            "rows_read": self.rows_read,
            "rows_skipped": sum(self.rows_skipped.values()),
            "skipped_reasons": dict(sorted(self.rows_skipped.items())),
            "tables": {t: dict(c) for t, c in sorted(self.tables.items())},
        }


def _text(expr: str, strip_apostrophe: bool) -> str:
    if strip_apostrophe:
        # Spreadsheet-safe exports write ids, zips and phones as '0123: the quote is not data.
        expr = f"regexp_replace(CAST({expr} AS VARCHAR), '^\\s*''', '')"
    return text_of(expr)


def _utc_text(ts: str) -> str:
    """A TIMESTAMP as the contract's UTC text (no zone: it is UTC)."""
    return (
        f"CASE WHEN microsecond({ts}) % 1000000 = 0 THEN strftime({ts}, '%Y-%m-%d %H:%M:%S') "
        f"ELSE strftime({ts}, '%Y-%m-%d %H:%M:%S.%f') END"
    )


def value_sql(col: LayoutColumn, header: str | None, strip_apostrophe: bool) -> str:
    """The layout column's text, normalised to the contract's form where its type says how
    (a value that does not parse stays as written, for the checks to quarantine)."""
    if header is None:
        return "CAST(NULL AS VARCHAR)"
    t = _text(f"s.{quote_ident(header)}", strip_apostrophe)
    if col.type in ("date", "timestamp") and col.formats:
        parsed = []
        for fmt in col.formats:
            if fmt in ("unix", "unix_ms"):
                scale = "1000000" if fmt == "unix" else "1000"
                ts = f"make_timestamp(CAST(TRY_CAST({t} AS DOUBLE) * {scale} AS BIGINT))"
            elif "%z" in fmt or "%Z" in fmt:
                ts = f"timezone('UTC', try_strptime({t}, {sql_literal(fmt)}))"
            else:
                ts = f"try_strptime({t}, {sql_literal(fmt)})"
            if col.type == "date":
                parsed.append(f"strftime({ts}, '%Y-%m-%d')")
            else:
                parsed.append(_utc_text(ts))
        return f"coalesce({', '.join(parsed)}, {t})"
    if col.type == "decimal":
        bare = f"replace({t}, ' ', '')"
        # 1,234.50: thousands commas go; anything else ambiguous is left for the checks
        thousands = f"regexp_matches({bare}, '^[-+]?[0-9]{{1,3}}(,[0-9]{{3}})+(\\.[0-9]+)?$')"
        plain = f"CASE WHEN {thousands} THEN replace({bare}, ',', '') ELSE {bare} END"
        if not col.decimal_comma:
            return plain
        # 1.234,50 or 12,5: a decimal comma (dots are thousands separators)
        comma = f"regexp_matches({bare}, '^[-+]?[0-9]{{1,3}}(\\.?[0-9]{{3}})*(,[0-9]+)?$')"
        return f"CASE WHEN {comma} THEN replace(replace({bare}, '.', ''), ',', '.') ELSE {bare} END"
    return t


def _first_seen_ctes(system: str) -> str:
    """CTEs `seen_by_id` (this system's source id -> day) and `seen_by_email` (email hash
    -> day): the first export that held any identity of the customer an id or an email
    belongs to, from the crosswalk.  Systems without a signup date derive one from it."""
    return f"""customer_first_seen AS (
    SELECT customer_id, min(first_seen_export) AS day
    FROM raw.customer_identities
    GROUP BY 1
),

seen_by_id AS (
    SELECT i.source_id, min(c.day) AS day
    FROM raw.customer_identities AS i
    INNER JOIN customer_first_seen AS c ON c.customer_id = i.customer_id
    WHERE i.source_system = {sql_literal(system)} AND i.source_id IS NOT NULL
    GROUP BY 1
),

seen_by_email AS (
    SELECT i.email_hash, min(c.day) AS day
    FROM raw.customer_identities AS i
    INNER JOIN customer_first_seen AS c ON c.customer_id = i.customer_id
    WHERE i.email_hash IS NOT NULL
    GROUP BY 1
)"""


def _customer_lookup_ctes() -> str:
    """CTEs `by_merchant_id` (a source id of exactly one customer, under any system ->
    that customer) and `by_email` (email hash -> its customer by the identity rule,
    `identity.known_by_email_sql`): how a referral platform names the shop's customers."""
    return f"""by_merchant_id AS (
    SELECT source_id, min(customer_id) AS customer_id
    FROM raw.customer_identities
    WHERE source_id IS NOT NULL
    GROUP BY source_id
    HAVING count(DISTINCT customer_id) = 1
),

by_email AS (
    SELECT eh AS email_hash, cid AS customer_id FROM ({known_by_email_sql()}) known
)"""


def _map_sql(maps: dict[str, dict[str, str | None]], system: str):
    def value_map(name: str, expr: str, default: str | None = None) -> str:
        if name not in maps:
            raise SourceSpecError(f"source system {system}: unknown value map {name!r}")
        whens = " ".join(
            f"WHEN {sql_literal(k)} THEN "
            + ("CAST(NULL AS VARCHAR)" if v is None else sql_literal(v))
            for k, v in maps[name].items()
        )
        otherwise = expr if default is None else default
        return f"(CASE lower(trim({expr})) {whens} ELSE {otherwise} END)"

    return value_map


def manifest_options(folder: ExportFolder) -> dict[str, dict[str, object]]:
    """`options` of manifest.json: system -> {setting: value}, read by that system's
    mappings through `{{ option('setting') }}` (empty without one)."""
    path = folder.path / MANIFEST
    if not path.exists():
        return {}
    try:
        options = json.loads(path.read_text(encoding="utf-8")).get("options") or {}
    except (OSError, ValueError, AttributeError) as exc:
        raise ExportRefused(folder.path, MANIFEST, f"cannot be parsed ({exc})") from exc
    if not isinstance(options, dict) or not all(isinstance(v, dict) for v in options.values()):
        raise ExportRefused(
            folder.path, MANIFEST, "options must map system names to objects of settings"
        )
    return {str(k): dict(v) for k, v in options.items()}


class SourceBatch:
    """The vendor files of one export, read and ready to map (temp tables of `con`)."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        folder: ExportFolder,
        registry: Registry,
        salt: str,
    ) -> None:
        self.con, self.folder, self.registry, self.salt = con, folder, registry, salt
        self.files: list[VendorFile] = detect(con, folder, registry)
        self.rows_by_file: dict[str, int] = {}
        self.counts: dict[str, SystemCounts] = {}
        self._temps: list[str] = []
        self._layout_tables: dict[str, str] = {}  # layout key -> temp table
        self.options = manifest_options(folder)  # system -> {name: value}
        if self.files:
            # Mappings may look a person up in the crosswalk by `email_hash(email)`.
            con.execute(
                f"CREATE OR REPLACE TEMP MACRO email_hash(x) AS {email_hash_sql('x', salt)}"
            )
            self._read()

    # -- reading -------------------------------------------------------------------------

    @property
    def systems(self) -> dict[str, System]:
        return self.registry.systems

    def _read(self) -> None:
        by_layout: dict[str, list[tuple[VendorFile, str]]] = {}
        for i, vf in enumerate(self.files):
            tmp = f"_vf{i}"
            try:
                self.con.execute(
                    f"CREATE OR REPLACE TEMP TABLE {tmp} AS SELECT * FROM {reader_sql(vf.path)}"
                )
            except duckdb.Error as exc:
                first = str(exc).strip().splitlines()[0]
                raise ExportRefused(
                    self.folder.path, vf.name, f"cannot be parsed: {first}"
                ) from exc
            self._temps.append(tmp)
            for name, typ, *_ in self.con.execute(f"DESCRIBE {tmp}").fetchall():
                if typ == "JSON":
                    self.con.execute(
                        f"ALTER TABLE {tmp} ALTER {quote_ident(name)} TYPE VARCHAR "
                        f"USING json_extract_string({quote_ident(name)}, '$')"
                    )
            (rows,) = self.con.execute(f"SELECT count(*) FROM {tmp}").fetchone()
            self.rows_by_file[vf.name] = rows
            counts = self.counts.setdefault(vf.layout.system, SystemCounts())
            counts.files[vf.name] = vf.layout.key
            counts.rows_read += rows
            by_layout.setdefault(vf.layout.key, []).append((vf, tmp))
        for _key, files in sorted(by_layout.items()):
            self._layout_table(files[0][0].layout, files)

    def _file_rows_sql(self, layout: Layout, vf: VendorFile, tmp: str) -> str:
        headers = list(vf.headers)
        column_of = layout.column_for(headers)
        items = [
            f"{value_sql(c, column_of.get(c.name), layout.strip_leading_apostrophe)} "
            f"AS {quote_ident(c.name)}"
            for c in layout.columns
        ]
        raw = ", ".join(
            f"{quote_ident(h.strip())} := CAST(s.{quote_ident(h)} AS VARCHAR)" for h in headers
        )
        used = set(column_of.values())
        extra_cols = [h for h in headers if h not in used]
        extra = (
            "to_json(struct_pack("
            + ", ".join(
                f"{quote_ident(h.strip())} := CAST(s.{quote_ident(h)} AS VARCHAR)"
                for h in extra_cols
            )
            + "))"
            if extra_cols
            else "CAST(NULL AS JSON)"
        )
        return (
            f"SELECT {', '.join(items)}, {line_number_sql(tmp)} AS _line_number, "
            f"{sql_literal(vf.name)} AS _source_file, to_json(struct_pack({raw})) AS _raw_row, "
            f"{extra} AS _extra FROM {tmp} s"
        )

    def _skip_when(self, layout: Layout, when: str) -> str:
        """A skip rule's condition; one using Jinja gets `option`, `map`, `system` and
        `export_date`, as a mapping does (e.g. a column named in manifest.json)."""
        if "{{" not in when and "{%" not in when:
            return when
        system = self.systems[layout.system]
        env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)
        try:
            return env.from_string(when).render(
                map=_map_sql(system.maps, system.name),
                system=system.name,
                export_date=f"DATE {sql_literal(self.folder.export_date.isoformat())}",
                option=self._option_sql(system.name),
            )
        except jinja2.TemplateError as exc:
            raise SourceSpecError(
                f"source system {system.name}, layout {layout.name}: skip rule: {exc}"
            ) from exc

    def _layout_table(self, layout: Layout, files: list[tuple[VendorFile, str]]) -> None:
        name = f"_layout_{layout.system}__{layout.name}"
        union = " UNION ALL ".join(self._file_rows_sql(layout, vf, tmp) for vf, tmp in files)
        skip = " ".join(
            f"WHEN {self._skip_when(layout, r.when)} THEN {sql_literal(r.reason)}"
            for r in layout.skip
        )
        skip_sql = f"CASE {skip} END" if skip else "CAST(NULL AS VARCHAR)"
        try:
            self.con.execute(
                f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT *, {skip_sql} AS _skip "
                f"FROM ({union}) u ORDER BY _source_file, _line_number"
            )
        except duckdb.Error as exc:
            raise SourceSpecError(
                f"source system {layout.system}, layout {layout.name}: skip rules fail: {exc}"
            ) from exc
        self._temps.append(name)
        self._layout_tables[layout.key] = name
        counts = self.counts[layout.system]
        for reason, n in self.con.execute(
            f"SELECT _skip, count(*) FROM {name} WHERE _skip IS NOT NULL GROUP BY 1 ORDER BY 1"
        ).fetchall():
            counts.rows_skipped[reason] = counts.rows_skipped.get(reason, 0) + n

    # -- mapping -------------------------------------------------------------------------

    def _present(self, system: System, table_map: TableMap) -> bool:
        return any(f"{system.name}/{n}" in self._layout_tables for n in table_map.needs)

    def provides(self, table: str) -> bool:
        """Whether a system of this export fills `table`."""
        return any(table in s.tables and self._present(s, s.tables[table]) for s in self._active())

    def _active(self) -> list[System]:
        names = {vf.layout.system for vf in self.files}
        return [self.systems[n] for n in sorted(names)]

    def _layout_body(self, layout: Layout, with_skipped: bool = False) -> str:
        """The SELECT of a layout's rows in this export, skipped rows left out; `_extra`
        (the row's undeclared columns as JSON) is kept, so a mapping can read a column
        whose header is not known in advance (a survey's question text).  `with_skipped`:
        every row, the skipped ones too, with their reason in `_skip` (NULL: not skipped)."""
        tmp = self._layout_tables.get(layout.key)
        if tmp is not None:
            if with_skipped:
                return f"SELECT * EXCLUDE (_raw_row) FROM {tmp}"
            return f"SELECT * EXCLUDE (_raw_row, _skip) FROM {tmp} WHERE _skip IS NULL"
        # absent from this export: no rows, same columns
        cols = [f"CAST(NULL AS VARCHAR) AS {quote_ident(c.name)}" for c in layout.columns]
        cols += [
            "CAST(NULL AS BIGINT) AS _line_number",
            "CAST(NULL AS VARCHAR) AS _source_file",
            "CAST(NULL AS JSON) AS _extra",
        ]
        if with_skipped:
            cols.append("CAST(NULL AS VARCHAR) AS _skip")
        return f"SELECT {', '.join(cols)} WHERE false"

    def _layout_ctes(self, system: System) -> str:
        ctes = [
            f"{quote_ident(lname)} AS ({self._layout_body(layout)})"
            for lname, layout in system.layouts.items()
        ]
        # `<layout>__all`: the skipped rows too (`_skip` = reason), e.g. merged records
        # that say which record they were merged into
        ctes += [
            f"{quote_ident(lname + '__all')} AS ({self._layout_body(layout, with_skipped=True)})"
            for lname, layout in system.layouts.items()
        ]
        return "WITH " + ", ".join(ctes)

    def _other_layout(self, key: str) -> str:
        """`{{ layout('<system>/<layout>') }}` in a mapping: another system's layout rows
        of this export as a subquery (no rows when absent), e.g. rewards of one system
        completing the referrals of another."""
        layout = self.registry.layout(key)
        if layout is None:
            raise SourceSpecError(f"layout({key!r}): no such layout")
        return f"({self._layout_body(layout)})"

    def _option_sql(self, system: str):
        """`{{ option('name') }}`: the SQL literal of manifest.json's
        `options.<system>.<name>` (NULL when not given)."""
        given = self.options.get(system, {})

        def option(name: str) -> str:
            value = given.get(name)
            return "CAST(NULL AS VARCHAR)" if value is None else sql_literal(str(value))

        return option

    def _select(self, system: System, table_map: TableMap) -> str:
        if table_map.python is not None:
            spec = importlib.util.spec_from_file_location(
                f"_source_hook_{system.name}_{table_map.table}", table_map.python
            )
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            return module.select(self.con, sorted(system.layouts))
        env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)
        try:
            return env.from_string(table_map.sql).render(
                map=_map_sql(system.maps, system.name),
                system=system.name,
                export_date=f"DATE {sql_literal(self.folder.export_date.isoformat())}",
                layout=self._other_layout,
                option=self._option_sql(system.name),
                first_seen_ctes=_first_seen_ctes(system.name),
                customer_lookup_ctes=_customer_lookup_ctes(),
            )
        except jinja2.TemplateError as exc:
            raise SourceSpecError(
                f"source system {system.name}, table {table_map.table}: {exc}"
            ) from exc

    def _system_rows(self, system: System, table: Table) -> str | None:
        """Temp table of one system's rows of `table` (None: not in this export)."""
        table_map = system.tables.get(table.name)
        if table_map is None or not self._present(system, table_map):
            return None
        out = f"_out_{system.name}__{table.name}"
        sql = f"{self._layout_ctes(system)} SELECT * FROM ({self._select(system, table_map)}) q"
        try:
            self.con.execute(f"CREATE OR REPLACE TEMP TABLE {out} AS {sql}")
        except duckdb.Error as exc:
            raise SourceSpecError(
                f"source system {system.name}, table {table.name}: mapping fails: {exc}"
            ) from exc
        self._temps.append(out)
        got = [r[0] for r in self.con.execute(f"DESCRIBE {out}").fetchall()]
        allowed = set(table.column_names) | set(LINEAGE_COLUMNS) | {"_source_id", "_reject"}
        allowed |= {c + s for c in table.column_names for s in REF_SUFFIXES}
        wrong = [c for c in got if c not in allowed]
        lacking = [c for c in LINEAGE_COLUMNS if c not in got]
        if wrong or lacking:
            raise SourceSpecError(
                f"source system {system.name}, table {table.name}: mapping gives "
                f"unknown column(s) {wrong}, lacks {lacking}"
            )
        return out

    def _contract_rows(self, table: Table, path: Path) -> str:
        """A contract-layout file of a table vendor rows also fill, as mapped rows."""
        tmp, cols, mapping = load_text_table(self.con, self.folder, path, table)
        used = set(mapping.values())
        extra_cols = [c for c in cols if c not in used]
        pack = ", ".join(
            f"{quote_ident(c.strip())} := CAST(s.{quote_ident(c)} AS VARCHAR)" for c in extra_cols
        )
        raw = ", ".join(f"{quote_ident(c)} := CAST(s.{quote_ident(c)} AS VARCHAR)" for c in cols)
        items = [f"{text_expr(mapping.get(c))} AS {quote_ident(c)}" for c in table.column_names]
        out = f"_out_{CONTRACT_SOURCE}__{table.name}"
        self.con.execute(
            f"CREATE OR REPLACE TEMP TABLE {out} AS SELECT {', '.join(items)}, "
            f"{sql_literal(path.name)} AS _source_file, {line_number_sql(tmp)} AS _line_number, "
            f"to_json(struct_pack({raw})) AS _raw_row, "
            + (f"to_json(struct_pack({pack}))" if extra_cols else "CAST(NULL AS JSON)")
            + f" AS _extra FROM {tmp} s"
        )
        self.con.execute(f"DROP TABLE {tmp}")
        self._temps.append(out)
        return out

    def build(self, table: Table, contract_path: Path | None, export_date: date) -> str:
        """The mapped rows of `table` (every system's, plus `contract_path`'s) in one temp
        table ready for `ingest_mapped_table`, customers resolved."""
        parts: list[tuple[str, str, int]] = []  # (temp, system, precedence)
        if contract_path is not None:
            contract = self._contract_rows(table, contract_path)
            parts.append((contract, CONTRACT_SOURCE, CONTRACT_PRECEDENCE))
        for system in self._active():
            out = self._system_rows(system, table)
            if out is not None:
                parts.append((out, system.name, system.precedence))
                (n,) = self.con.execute(f"SELECT count(*) FROM {out}").fetchone()
                self.counts[system.name].tables.setdefault(table.name, {})["rows_mapped"] = n
        helpers = sorted(
            {
                c
                for out, _, _ in parts
                for (c,) in self.con.execute(f"SELECT column_name FROM (DESCRIBE {out})").fetchall()
                if c.endswith(REF_SUFFIXES)
            }
        )
        columns = [*table.column_names, *helpers, "_source_id", "_reject"]
        selects = []
        for out, system, prec in parts:
            have = {r[0] for r in self.con.execute(f"DESCRIBE {out}").fetchall()}
            items = [
                f"CAST({quote_ident(c)} AS VARCHAR) AS {quote_ident(c)}"
                if c in have
                else f"CAST(NULL AS VARCHAR) AS {quote_ident(c)}"
                for c in columns
            ]
            lineage = (
                "_raw_row, _extra"
                if system == CONTRACT_SOURCE
                else "CAST(NULL AS JSON) AS _raw_row, CAST(NULL AS JSON) AS _extra"
            )
            selects.append(
                f"SELECT {', '.join(items)}, {sql_literal(system)} AS _source_system, "
                f"{prec} AS _prec, CAST(_source_file AS VARCHAR) AS _source_file, "
                f"CAST(_line_number AS BIGINT) AS _line_number, {lineage} FROM {out}"
            )
        lines = " UNION ALL ".join(
            f"SELECT {sql_literal(key.split('/')[0])} AS sys, _source_file, _line_number, "
            f"_raw_row, _extra FROM {tmp}"
            for key, tmp in sorted(self._layout_tables.items())
        )
        key_order = ", ".join(f"m.{quote_ident(k)}" for k in table.key)
        mapped = f"_mapped_{table.name}"
        self.con.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE {mapped} AS
            WITH m AS ({" UNION ALL ".join(selects)}),
            lines AS ({lines})
            SELECT m.* REPLACE (
                       coalesce(m._raw_row, l._raw_row) AS _raw_row,
                       coalesce(m._extra, l._extra) AS _extra),
                   row_number() OVER (ORDER BY m._prec, m._source_system, m._source_file,
                                      m._line_number{", " + key_order if key_order else ""}) AS _seq
            FROM m LEFT JOIN lines l
              ON l.sys = m._source_system AND l._source_file = m._source_file
             AND l._line_number = m._line_number
            ORDER BY _seq
            """
        )
        self._temps.append(mapped)
        systems = self.systems
        if table.name == CUSTOMER_TABLE:
            merged = resolve_customers(self.con, mapped, export_date, self.salt, systems)
            for system, n in merged.items():
                if system in self.counts:
                    self.counts[system].tables[table.name]["rows_merged"] = n
        else:
            refs = [h[: -len(s)] for h in helpers for s in REF_SUFFIXES if h.endswith(s)]
            resolve_references(self.con, mapped, sorted(set(refs)), self.salt, systems)
        final = f"_ready_{table.name}"
        keep = ", ".join(quote_ident(c) for c in [*table.column_names, *MAPPED_META_COLUMNS])
        self.con.execute(
            f"CREATE OR REPLACE TEMP TABLE {final} AS SELECT {keep} FROM {mapped} ORDER BY _seq"
        )
        return final

    def files_of(self, table: str, contract_path: Path | None = None) -> str:
        """The files `table` is mapped from, for messages and metadata."""
        names = {contract_path.name} if contract_path is not None else set()
        for system in self._active():
            table_map = system.tables.get(table)
            if table_map is None:
                continue
            names |= {
                vf.name
                for vf in self.files
                if vf.layout.system == system.name and vf.layout.name in table_map.needs
            }
        return ", ".join(sorted(names))

    def record(self, table: str, by_system: dict[str, dict[str, int]]) -> None:
        """Quarantined and loaded rows of `table` per system, from the checked rows."""
        for system, counts in self.counts.items():
            entry = counts.tables.get(table)
            if entry is None:
                continue
            n = by_system.get(system, {"rows": 0, "quarantined": 0})
            entry["rows_quarantined"] = n["quarantined"]
            entry["rows_loaded"] = n["rows"] - n["quarantined"]

    def close(self) -> None:
        for tmp in reversed(self._temps):
            self.con.execute(f"DROP TABLE IF EXISTS {tmp}")
        self._temps.clear()
        if self.files:
            self.con.execute("DROP MACRO IF EXISTS temp.email_hash")
