"""Raw keeps versions, not copies.

A nightly full export re-delivers the whole CRM.  Storing every row of every export made
raw grow by the whole customer base each night; now an export's good rows land in a temp
table first and only what is new goes into raw.<table>:

- a key never seen before, or whose contract columns differ from its latest version up to
  this export date (the *effective* version), is a new version, tagged with this export's
  date (`_export_date` = the export that first delivered that content);
- a key delivered with the same contract columns is not stored again (`unchanged`;
  `_extra`, lineage and line numbers of a re-delivery are not compared);
- "the same contract columns" is decided on `_row_hash`, DuckDB's 64-bit `hash()` of
  them, stored with each version: a night compares one narrow column per key instead of
  re-reading every version's columns (a changed record is missed only if its two hashes
  collide: about 1 in 1.8e19).  `raw.row_hashes` records what the stored hashes were
  computed with (DuckDB version, columns); when that changes, the table's hashes are
  computed again before it is compared (`ensure_row_hashes`);
- an incremental export's rows are all kept: they are the changes already;
- a full export's lines that an effective version was read from are not parsed at all
  (`_line_hash`, pipelines/ingest/lines.py): `find_line_changes` is `find_changes` for
  the other lines.

Which version is effective before export date d is kept in each version, so that a night
finds it with a filter scan instead of grouping all of raw by key: `_superseded_on` is the
`_export_date` of the key's next newer version, NULL for its newest
(`mark_superseded`).  The version effective before d is the one with
`_export_date < d AND (_superseded_on IS NULL OR _superseded_on >= d)`: one per key, also
for a late export (an older d) and for a re-ingested d (its versions deleted first).
Whatever adds or deletes versions sets the marker again for the keys it touched, recomputed
over those keys' versions only: storing an export (`store_versions`; a table's first
export touches nothing), deleting an export's versions before it is ingested again
(`ingest.export`), erasure (a key's versions may go only in part).  Retention drops versions
with `_superseded_on` before its limit, never a newest one (pipelines/maintenance.py).  A
store of an older release gets the column and its values once
(`warehouse_tables.create_python_owned_tables`).

"Latest version over all exports" keeps its meaning: the version with the newest
`_export_date` is the content of the newest export that delivered the key.  A late export
(dated before one already ingested) is ingested in date order with every later export
replayed after it (`folders.exports_to_ingest`), so each export is compared with exactly
the exports before it.

A key a full export lacks is **still there** (analyses keep it; CRMs often export active
records only); the change is recorded in `raw.record_presence` (table, key, export date,
present false), and a key that comes back gets present true.  `staging.stg_absent_records`
lists the keys the newest full export lacked.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

import duckdb

from pipelines.schemas import DUCKDB_TYPES, Table
from pipelines.sql import quote_ident, sql_literal

INCOMING = "_incoming_rows"


@dataclass(frozen=True)
class VersionCounts:
    """What one table of one export did to raw."""

    new: int  # keys raw did not have
    changed: int  # keys with a new version
    unchanged: int  # keys delivered as stored: not stored again
    absent: int  # keys of the latest state a full export lacked (presence recorded)
    returned: int  # keys absent before, delivered again

    def as_metadata(self) -> dict[str, int]:
        return {
            "rows_new": self.new,
            "rows_changed": self.changed,
            "rows_unchanged": self.unchanged,
            "keys_absent": self.absent,
            "keys_returned": self.returned,
        }


def key_text(table: Table, alias: str) -> str:
    """The key of a row as one text value (parts joined by U+001F)."""
    parts = [f"CAST({alias}.{quote_ident(k)} AS VARCHAR)" for k in table.key]
    return parts[0] if len(parts) == 1 else f"concat_ws(chr(31), {', '.join(parts)})"


def row_hash_sql(table: Table) -> str:
    """The `_row_hash` of a row: DuckDB's hash of its contract columns."""
    return f"hash({', '.join(quote_ident(c) for c in table.column_names)})"


def hash_signature(table: Table) -> str:
    """What a stored `_row_hash` depends on: the hash function and the hashed columns."""
    columns = ", ".join(f"{c.name} {DUCKDB_TYPES[c.type]}" for c in table.columns)
    return f"duckdb {duckdb.__version__}: hash({columns})"


def ensure_row_hashes(con: duckdb.DuckDBPyConnection, table: Table) -> int:
    """Give every stored version of the table a `_row_hash` of the current signature.

    Rows of an older release have none; a new DuckDB (whose `hash` may differ) or a changed
    column list makes every stored hash stale.  Returns the rows hashed (0 on a usual night).
    """
    raw = f"raw.{quote_ident(table.name)}"
    signature = hash_signature(table)
    stored = con.execute(
        "SELECT signature FROM raw.row_hashes WHERE table_name = ?", [table.name]
    ).fetchone()
    stale = "" if stored is not None and stored[0] == signature else None
    where = " WHERE _row_hash IS NULL" if stale is not None else ""
    (rows,) = con.execute(f"UPDATE {raw} SET _row_hash = {row_hash_sql(table)}{where}").fetchone()
    if stale is None:
        con.execute("INSERT OR REPLACE INTO raw.row_hashes VALUES (?, ?)", [table.name, signature])
    return rows


def create_incoming(con: duckdb.DuckDBPyConnection, table: Table) -> str:
    """An empty temp table shaped like raw.<table>, for this export's good rows."""
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {INCOMING} AS "
        f"SELECT * FROM raw.{quote_ident(table.name)} LIMIT 0"
    )
    return INCOMING


def _as_stored(table: Table, value: Callable[[str], str]) -> dict[str, str]:
    """Each contract column's expression (`value` of its name) in raw's type."""
    return {c.name: f"CAST({value(c.name)} AS {DUCKDB_TYPES[c.type]})" for c in table.columns}


def row_hash_of(table: Table, value: Callable[[str], str]) -> str:
    """`row_hash_sql` of values not stored yet: ``value`` gives a contract column's
    expression from its name (ingest's typed values are `v_<col>`)."""
    return f"hash({', '.join(_as_stored(table, value).values())})"


def delivered_sql(
    table: Table, source: str, value: Callable[[str], str] = quote_ident, extra: str = ""
) -> str:
    """The keys and `_row_hash` of the rows of `source`, typed as raw stores them (and the
    columns `extra` of `source`)."""
    typed = _as_stored(table, value)
    keys = ", ".join(f"{typed[k]} AS {quote_ident(k)}" for k in table.key)
    more = f", {extra}" if extra else ""
    return f"SELECT {keys}, {row_hash_of(table, value)} AS _row_hash{more} FROM {source}"


def effective_filter(export_date: date, alias: str = "") -> str:
    """Whether a version of `alias` is its key's effective one before export date d: its
    version before d that no version before d superseded (`mark_superseded`)."""
    day = f"DATE {sql_literal(export_date.isoformat())}"
    v = f"{alias}." if alias else ""
    return f"{v}_export_date < {day} AND ({v}_superseded_on IS NULL OR {v}_superseded_on >= {day})"


def find_changes(
    con: duckdb.DuckDBPyConnection, table: Table, export_date: date, mode: str, delivered: str
) -> bool:
    """Temp table `_diff` of the keys a keyed table's export does not deliver as stored:
    new, changed, or (a full export) lacking; `_returned`, the keys absent before that it
    delivers again.  `delivered` is a query of its keys and `_row_hash` (`delivered_sql`).

    Returns False (nothing created) when raw holds no version before this export: the
    table's first export, where every row is new."""
    raw = f"raw.{quote_ident(table.name)}"
    ensure_row_hashes(con, table)
    day = f"DATE {sql_literal(export_date.isoformat())}"
    keys = [quote_ident(k) for k in table.key]
    key_list = ", ".join(keys)
    on = " AND ".join(f"e.{k} = i.{k}" for k in keys)
    # A full export delivers (nearly) every key: no need to narrow raw to its keys first.
    narrow = (
        ""
        if mode == "full"
        else f"SEMI JOIN ({delivered}) i ON {' AND '.join(f'v.{k} = i.{k}' for k in keys)}"
    )
    effective = f"""
        SELECT {", ".join(f"v.{k}" for k in keys)}, v._row_hash
        FROM {raw} v {narrow}
        WHERE {effective_filter(export_date, "v")}
        """
    # A full export: (nearly) every stored key, joined as it is read (a view); else the
    # few keys delivered, narrowed once (a table).
    kind = "VIEW" if mode == "full" else "TABLE"
    if mode == "full":
        (stored,) = con.execute(
            f"SELECT count(*) FROM (SELECT 1 FROM {raw} WHERE _export_date < {day} LIMIT 1)"
        ).fetchone()
        if stored == 0:
            return False
    con.execute(f"CREATE OR REPLACE TEMP {kind} _effective AS {effective}")
    if mode != "full":
        (stored,) = con.execute("SELECT count(*) FROM _effective").fetchone()
        if stored == 0:
            con.execute(f"DROP {kind} _effective")
            return False
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _diff AS
        SELECT {", ".join(f"coalesce(i.{k}, e.{k}) AS {k}" for k in keys)},
               CASE WHEN e.{keys[0]} IS NULL THEN 'new'
                    WHEN i.{keys[0]} IS NULL THEN 'lacking'
                    ELSE 'changed' END AS change
        FROM (SELECT {key_list}, _row_hash FROM ({delivered}) d) i
        FULL JOIN _effective e ON {on}
        WHERE i._row_hash IS DISTINCT FROM e._row_hash
        """
    )
    con.execute(f"DROP {kind} _effective")
    _find_returned(con, table, export_date, delivered)
    return True


def find_line_changes(
    con: duckdb.DuckDBPyConnection, table: Table, export_date: date, parsed: str, lines: str
) -> None:
    """`find_changes` of a full export whose unchanged lines were not parsed
    (pipelines/ingest/lines.py): temp tables `_diff` and `_returned`, the same as for
    every row parsed.  `parsed` is `delivered_sql` of the changed lines' rows; `lines` a
    table of the hashes (h) of every line of the file.

    A key is delivered unchanged when its effective version holds the hash of one of the
    lines; new or changed when a parsed row differs from its effective version; lacking
    when neither."""
    raw = f"raw.{quote_ident(table.name)}"
    ensure_row_hashes(con, table)
    keys = [quote_ident(k) for k in table.key]
    on = " AND ".join(f"e.{k} = i.{k}" for k in keys)
    effective = f"SELECT * FROM {raw} e WHERE {effective_filter(export_date, 'e')}"
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _diff AS
        SELECT {", ".join(f"i.{k}" for k in keys)},
               CASE WHEN e.{keys[0]} IS NULL THEN 'new' ELSE 'changed' END AS change
        FROM ({parsed}) i
        LEFT JOIN ({effective}) e ON {on}
        WHERE i._row_hash IS DISTINCT FROM e._row_hash
        UNION ALL
        SELECT {", ".join(f"e.{k}" for k in keys)}, 'lacking'
        FROM ({effective}) e
        ANTI JOIN ({parsed}) i ON {on}
        WHERE NOT coalesce(e._line_hash IN (SELECT h FROM {lines}), false)
        """
    )
    unchanged = (
        f"SELECT {', '.join(f'e.{k}' for k in keys)} FROM ({effective}) e "
        f"WHERE e._line_hash IN (SELECT h FROM {lines})"
    )
    delivered = f"SELECT {', '.join(keys)} FROM ({parsed}) UNION ALL {unchanged}"
    _find_returned(con, table, export_date, delivered)


def keys_delivered_twice(
    con: duckdb.DuckDBPyConnection, table: Table, export_date: date, parsed: str, lines: str
) -> int:
    """Keys of parsed rows whose effective version also holds the hash of a line of the
    file: delivered twice, by an unchanged line and by a changed one."""
    raw = f"raw.{quote_ident(table.name)}"
    on = " AND ".join(f"e.{k} = i.{k}" for k in (quote_ident(k) for k in table.key))
    (count,) = con.execute(
        f"SELECT count(*) FROM ({parsed}) i JOIN {raw} e ON {on} "
        f"WHERE {effective_filter(export_date, 'e')} "
        f"AND e._line_hash IN (SELECT h FROM {lines})"
    ).fetchone()
    return count


def _find_returned(
    con: duckdb.DuckDBPyConnection, table: Table, export_date: date, delivered: str
) -> None:
    """Temp table `_returned` (key text) of the keys whose presence was last recorded as
    absent and that this export delivers; the delivered keys are read only when there are
    such keys (usually none)."""
    name = sql_literal(table.name)
    day = f"DATE {sql_literal(export_date.isoformat())}"
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _returned AS
        SELECT key FROM raw.record_presence
        WHERE table_name = {name} AND export_date < {day}
        GROUP BY key HAVING NOT arg_max(present, export_date)
        """
    )
    if con.execute("SELECT count(*) FROM _returned").fetchone()[0]:
        con.execute(
            f"DELETE FROM _returned WHERE key NOT IN "
            f"(SELECT {key_text(table, 'd')} FROM ({delivered}) d)"
        )


CHANGED_ROWS = "(SELECT * FROM _diff WHERE change <> 'lacking')"


def mark_superseded(con: duckdb.DuckDBPyConnection, table: Table, keys: str | None) -> int:
    """Set `_superseded_on` of every stored version of the keys that `keys` selects (a
    query of the key columns, duplicates allowed; None: every key of the table) to the
    `_export_date` of the key's next newer version, NULL for its newest.  Only the rows
    whose value changes are written.  Returns their number."""
    raw = f"raw.{quote_ident(table.name)}"
    key_cols = [quote_ident(k) for k in table.key]
    narrow = (
        ""
        if keys is None
        else f" SEMI JOIN ({keys}) k ON {' AND '.join(f'v.{k} = k.{k}' for k in key_cols)}"
    )
    (rows,) = con.execute(
        f"""
        UPDATE {raw} SET _superseded_on = m.next
        FROM (
            SELECT v.rowid AS rid, v._superseded_on AS was,
                   lead(v._export_date) OVER (
                       PARTITION BY {", ".join(f"v.{k}" for k in key_cols)}
                       ORDER BY v._export_date) AS next
            FROM {raw} v{narrow}
        ) m
        WHERE {raw}.rowid = m.rid AND m.next IS DISTINCT FROM m.was
        """
    ).fetchone()
    return rows


def store_versions(
    con: duckdb.DuckDBPyConnection,
    table: Table,
    export_date: date,
    mode: str,
    delivered: int | None = None,
    stored: bool = False,
) -> VersionCounts:
    """Move the rows of the incoming temp table into raw.<table> as versions; record the
    presence changes of a full export.  Drops the temp tables.

    ``delivered``: the rows the export delivered, when `find_changes` has already run and
    the incoming table holds only the new and changed rows (the clean path of a full
    export, `clean.ingest_clean_csv`); None: it holds every good row, compared here.
    ``stored``: the `delivered` rows went to raw.<table> directly, all new (its first
    export, which holds no row yet); nothing is incoming."""
    raw = f"raw.{quote_ident(table.name)}"
    rows = delivered
    if stored and rows is not None:
        con.execute(f"DROP TABLE {INCOMING}")
        return VersionCounts(rows, 0, 0, 0, 0)
    if rows is None:
        (rows,) = con.execute(f"SELECT count(*) FROM {INCOMING}").fetchone()
        first = not table.key or not find_changes(
            con, table, export_date, mode, delivered_sql(table, INCOMING)
        )
        if first:  # no key to compare, or the table's first export: every row is new
            con.execute(f"INSERT INTO {raw} SELECT * FROM {INCOMING}")
            if table.key and has_later_versions(con, table, export_date):
                # an export older than every stored one: its versions are superseded
                mark_superseded(con, table, _keys_of(table, INCOMING))
            con.execute(f"DROP TABLE {INCOMING}")
            return VersionCounts(rows, 0, 0, 0, 0)
    new, changed = con.execute(
        "SELECT count(*) FILTER (WHERE change = 'new'), "
        "count(*) FILTER (WHERE change = 'changed') FROM _diff"
    ).fetchone()
    if mode == "incremental":
        con.execute(f"INSERT INTO {raw} SELECT * FROM {INCOMING}")
    else:
        on = " AND ".join(f"d.{k} = i.{k}" for k in (quote_ident(k) for k in table.key))
        con.execute(
            f"INSERT INTO {raw} SELECT i.* FROM {INCOMING} i SEMI JOIN {CHANGED_ROWS} d ON {on}"
        )
    # the versions these keys had before are superseded now (by the new ones or, for a
    # late export, the new ones by later ones)
    written = INCOMING if mode == "incremental" else CHANGED_ROWS
    mark_superseded(con, table, _keys_of(table, written))
    absent = returned = 0
    if mode == "full":
        absent, returned = _record_presence(con, table, export_date)
    for temp in (INCOMING, "_diff", "_returned"):
        con.execute(f"DROP TABLE {temp}")
    unchanged = rows - new - changed if mode == "full" else 0
    return VersionCounts(new, changed, unchanged, absent, returned)


def _keys_of(table: Table, source: str) -> str:
    """A query of the key columns of the rows of `source`."""
    return f"SELECT {', '.join(quote_ident(k) for k in table.key)} FROM {source}"


def has_later_versions(con: duckdb.DuckDBPyConnection, table: Table, export_date: date) -> bool:
    """Whether raw holds a version of the table dated after this export (a late export)."""
    day = f"DATE {sql_literal(export_date.isoformat())}"
    return bool(
        con.execute(
            f"SELECT count(*) FROM (SELECT 1 FROM raw.{quote_ident(table.name)} "
            f"WHERE _export_date > {day} LIMIT 1)"
        ).fetchone()[0]
    )


def _record_presence(
    con: duckdb.DuckDBPyConnection, table: Table, export_date: date
) -> tuple[int, int]:
    """Keys of the state before this full export that it lacks (present false), and keys
    absent before that it delivers again (present true).

    The keys it lacks are in `_diff`, those it delivers again in `_returned`
    (`find_changes`); only the few keys that changed presence are turned into text."""
    name = sql_literal(table.name)
    day = f"DATE {sql_literal(export_date.isoformat())}"
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _presence AS
        WITH last_change AS (
            SELECT key, arg_max(present, export_date) AS present
            FROM raw.record_presence
            WHERE table_name = {name} AND export_date < {day}
            GROUP BY key
        ),
        lacking AS (SELECT {key_text(table, "d")} AS key FROM _diff d WHERE change = 'lacking')
        SELECT l.key, false AS present FROM lacking l
        LEFT JOIN last_change c USING (key)
        WHERE coalesce(c.present, true)
        UNION ALL
        SELECT key, true FROM _returned
        """
    )
    con.execute(
        f"INSERT INTO raw.record_presence SELECT {name}, key, {day}, present "
        "FROM _presence ORDER BY key"
    )
    absent, returned = con.execute(
        "SELECT count(*) FILTER (WHERE NOT present), count(*) FILTER (WHERE present) FROM _presence"
    ).fetchone()
    con.execute("DROP TABLE _presence")
    return absent, returned
