"""One person across systems is one customer: the crosswalk `raw.customer_identities`.

A row of the crosswalk is one identity a system gave a person (its own id, `source_id`,
NULL for a system without ids) under one salted email hash (NULL without an email), and
the customer it belongs to.  Rules (docs/sources.md, "Identity"):

- a contract-layout file's `customer_id` is the customer (system `contract`);
- a known (system, source id) keeps its customer, whatever its email now is;
- otherwise the email links: the customer of the earliest identity with that email hash
  (first seen export, contract first, then system and source id), else of the first row of
  this export with that email (precedence order) that already has a customer;
- otherwise the person is new: the customer id is made from the first of their rows
  (precedence order) by the system's template, `<system>:<source id>` by default, or
  `<system>:<first 24 hex of the email hash>` for a row without a source id.  Both are free
  of personal data and the same for the same exports.

Crosswalk rows are added, never changed by a later export (a re-delivered export does not
move a customer); erasure deletes them.  Hashes are `sha256(salt || lower(trim(email)))`,
the staging hash, so staging can join on them; `salt_md5` says which salt made them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from datetime import date

import duckdb

from pipelines.ingest.casting import typed_expr
from pipelines.schemas import CONTRACT_SOURCE, CUSTOMER_TABLE, TABLES
from pipelines.sources.spec import System
from pipelines.sql import quote_ident, sql_literal

DEFAULT_EMAIL_SALT = "referral-segments-sample-salt"
ID_HASH_CHARS = 24  # hex characters of the email hash in an id made from it

# How several systems' rows of one customer become one row (other columns: the value of
# the row with the highest precedence that has one).
MERGE_RULES = {
    "signup_date": "earliest",
    "updated_at": "latest",
    "marketing_opt_in": "false_wins",  # one system's opt-out is an opt-out
}


def salt_md5(salt: str) -> str:
    return hashlib.md5(salt.encode("utf-8")).hexdigest()


def email_hash_sql(expr: str, salt: str) -> str:
    """Salted hash of a normalised email (NULL when blank): the staging macro hash_email."""
    norm = f"NULLIF(lower(trim({expr})), '')"
    return f"CASE WHEN {norm} IS NOT NULL THEN sha256({sql_literal(salt)} || {norm}) END"


def _template_sql(template: str, system: str, sid: str, eh: str) -> str:
    """SQL of a customer-id template: `{system}`, `{source_id}`, `{email_hash}` (shortened)."""
    parts: list[str] = []
    rest = template
    fields = {
        "{system}": sql_literal(system),
        "{source_id}": sid,
        "{email_hash}": f"left({eh}, {ID_HASH_CHARS})",
    }
    while rest:
        hits = [(rest.find(f), f) for f in fields if rest.find(f) >= 0]
        if not hits:
            parts.append(sql_literal(rest))
            break
        at, name = min(hits)
        if at:
            parts.append(sql_literal(rest[:at]))
        parts.append(fields[name])
        rest = rest[at + len(name) :]
    return " || ".join(parts) if parts else "''"


def new_id_sql(systems: Mapping[str, System], sys: str, sid: str, eh: str) -> str:
    """The id a new person gets from a row of system `sys` (NULL with neither id nor email)."""
    by_id = " ".join(
        f"WHEN {sql_literal(n)} THEN {_template_sql(s.new_customer_id, n, sid, eh)}"
        for n, s in sorted(systems.items())
    )
    by_email = " ".join(
        f"WHEN {sql_literal(n)} THEN {_template_sql(s.new_customer_id_by_email, n, sid, eh)}"
        for n, s in sorted(systems.items())
    )
    default_id = f"{sys} || ':' || {sid}"
    default_email = f"{sys} || ':' || left({eh}, {ID_HASH_CHARS})"
    case_id = f"CASE {sys} {by_id} ELSE {default_id} END" if by_id else default_id
    case_email = f"CASE {sys} {by_email} ELSE {default_email} END" if by_email else default_email
    return f"CASE WHEN {sid} IS NOT NULL THEN {case_id} WHEN {eh} IS NOT NULL THEN {case_email} END"


def check_salt(con: duckdb.DuckDBPyConnection, salt: str) -> int:
    """Forget the email hashes made with another salt (they can no longer be matched); the
    identities with a source id keep their customer.  Returns the rows forgotten."""
    current = salt_md5(salt)
    (stale,) = con.execute(
        "SELECT count(*) FROM raw.customer_identities WHERE salt_md5 <> ?", [current]
    ).fetchone()
    if not stale:
        return 0
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _kept_identities AS "
        "SELECT source_system, source_id, customer_id, CAST(NULL AS VARCHAR) AS email_hash, "
        "min(first_seen_export) AS first_seen_export, ? AS salt_md5 "
        "FROM raw.customer_identities WHERE source_id IS NOT NULL GROUP BY ALL",
        [current],
    )
    con.execute("DELETE FROM raw.customer_identities")
    con.execute(
        "INSERT INTO raw.customer_identities SELECT * FROM _kept_identities "
        "ORDER BY first_seen_export, source_system, source_id"
    )
    con.execute("DROP TABLE _kept_identities")
    return stale


def record_contract_identities(
    con: duckdb.DuckDBPyConnection, export_date: date, salt: str, rows: str | None = None
) -> None:
    """The identities of this export's contract-layout customers not recorded yet.  `rows`:
    the export's customer rows (default: raw.customers of this export date); every row of
    the export counts, re-delivered unchanged ones too (after a salt change their email
    hashes are recorded again)."""
    key = quote_ident(TABLES[CUSTOMER_TABLE].key[0])
    con.execute(
        f"""
        INSERT INTO raw.customer_identities
        SELECT $system, n.cid, n.cid, n.eh, $day, $salt_md5 FROM (
            SELECT DISTINCT {key} AS cid, {email_hash_sql("email", salt)} AS eh
            FROM {rows or f"raw.{CUSTOMER_TABLE}"}
            WHERE _export_date = $day AND _source_system = $system
        ) n
        WHERE NOT EXISTS (
            SELECT 1 FROM raw.customer_identities x
            WHERE x.source_system = $system AND x.source_id = n.cid
              AND x.email_hash IS NOT DISTINCT FROM n.eh)
        ORDER BY n.cid, n.eh
        """,
        {"system": CONTRACT_SOURCE, "day": export_date, "salt_md5": salt_md5(salt)},
    )


def known_by_email_sql() -> str:
    """email hash -> the customer of its earliest identity."""
    return (
        "SELECT email_hash AS eh, arg_min(customer_id, struct_pack("
        "d := first_seen_export, c := source_system <> " + sql_literal(CONTRACT_SOURCE) + ", "
        "s := source_system, i := coalesce(source_id, ''))) AS cid "
        "FROM raw.customer_identities WHERE email_hash IS NOT NULL GROUP BY 1"
    )


def _known_by_source_sql() -> str:
    return (
        "SELECT source_system AS sys, source_id AS sid, min(customer_id) AS cid "
        "FROM raw.customer_identities WHERE source_id IS NOT NULL GROUP BY 1, 2"
    )


def resolve_customers(
    con: duckdb.DuckDBPyConnection,
    tmp: str,
    export_date: date,
    salt: str,
    systems: Mapping[str, System],
) -> dict[str, int]:
    """Give every customer row of `tmp` (mapped rows: `email`, `_source_id`,
    `_source_system`, `_seq`) its customer id, record the new identities, and merge the
    rows of different identities of one customer into one row (MERGE_RULES).  A second row
    of one identity is left as it is (the key check quarantines it as a duplicate).

    Returns rows merged into another system's row, per system.
    """
    table = TABLES[CUSTOMER_TABLE]
    key = table.key[0]
    contract = sql_literal(CONTRACT_SOURCE)
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _ids AS
        WITH rows AS (
            SELECT _seq, _source_system AS sys,
                   CASE WHEN _source_system = {contract}
                        THEN NULLIF(trim({quote_ident(key)}), '')
                        ELSE NULLIF(trim(_source_id), '') END AS sid,
                   {email_hash_sql("email", salt)} AS eh,
                   _source_system = {contract} AS authoritative
            FROM {tmp} WHERE _reject IS NULL
        ),
        by_source AS ({_known_by_source_sql()}),
        a AS (
            SELECT r.*, CASE WHEN r.authoritative THEN r.sid ELSE k.cid END AS a_cid,
                   {new_id_sql(systems, "r.sys", "r.sid", "r.eh")} AS new_id
            FROM rows r LEFT JOIN by_source k ON k.sys = r.sys AND k.sid = r.sid
        ),
        known_email AS ({known_by_email_sql()}),
        in_export AS (
            SELECT eh, arg_min(a_cid, _seq) AS cid FROM a
            WHERE eh IS NOT NULL AND a_cid IS NOT NULL GROUP BY 1
        ),
        first_new AS (
            SELECT eh, arg_min(new_id, _seq) AS cid FROM a WHERE eh IS NOT NULL GROUP BY 1
        )
        SELECT a._seq, a.sys, a.sid, a.eh,
               CASE WHEN a.a_cid IS NOT NULL THEN a.a_cid
                    WHEN a.eh IS NOT NULL THEN coalesce(ke.cid, ie.cid, fn.cid)
                    ELSE a.new_id END AS cid
        FROM a
        LEFT JOIN known_email ke ON ke.eh = a.eh
        LEFT JOIN in_export ie ON ie.eh = a.eh
        LEFT JOIN first_new fn ON fn.eh = a.eh
        """
    )
    con.execute(
        """
        INSERT INTO raw.customer_identities
        SELECT n.sys, n.sid, n.cid, n.eh, $day, $salt_md5 FROM (
            SELECT sys, sid, eh, min(cid) AS cid FROM _ids
            WHERE cid IS NOT NULL AND (sid IS NOT NULL OR eh IS NOT NULL) GROUP BY ALL
        ) n
        WHERE NOT EXISTS (
            SELECT 1 FROM raw.customer_identities x
            WHERE x.source_system = n.sys AND x.source_id IS NOT DISTINCT FROM n.sid
              AND x.email_hash IS NOT DISTINCT FROM n.eh)
        ORDER BY n.sys, n.sid, n.eh
        """,
        {"day": export_date, "salt_md5": salt_md5(salt)},
    )
    return _merge(con, tmp, key)


def _merge_expr(column: str) -> str:
    col = TABLES[CUSTOMER_TABLE].column(column)
    ref = quote_ident(column)
    first = f"arg_min({ref}, _seq) FILTER (WHERE {ref} IS NOT NULL)"
    rule = MERGE_RULES.get(column)
    typed = typed_expr(col, ref)
    if rule == "earliest":
        return f"coalesce(CAST(min({typed}) AS VARCHAR), {first})"
    if rule == "latest":
        return f"coalesce(CAST(max({typed}) AS VARCHAR), {first})"
    if rule == "false_wins":
        return (
            f"CASE WHEN bool_or({typed} = false) THEN 'false' "
            f"WHEN bool_or({typed} = true) THEN 'true' ELSE {first} END"
        )
    return first


def _merge(con: duckdb.DuckDBPyConnection, tmp: str, key: str) -> dict[str, int]:
    """Rows of `tmp` get their customer id from `_ids`; first rows of different identities
    with one customer id become one row (lineage: the row with the highest precedence)."""
    cols = [r[0] for r in con.execute(f"DESCRIBE {tmp}").fetchall()]
    kq = quote_ident(key)
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _resolved AS
        SELECT t.* REPLACE (coalesce(i.cid, t.{kq}) AS {kq}),
               i._seq IS NOT NULL AND i.cid IS NOT NULL
               AND row_number() OVER (
                   PARTITION BY i.sys, coalesce(i.sid, i.eh), i._seq IS NULL ORDER BY t._seq
               ) = 1 AS _primary
        FROM {tmp} t LEFT JOIN _ids i ON i._seq = t._seq
        """
    )
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _groups AS SELECT "
        f"{kq} AS cid, count(*) AS n, arg_min(_source_system, _seq) AS lead_system "
        f"FROM _resolved WHERE _primary GROUP BY 1 HAVING count(*) > 1"
    )
    merged = dict(
        con.execute(
            f"SELECT r._source_system, count(*) FROM _resolved r JOIN _groups g "
            f"ON g.cid = r.{kq} WHERE r._primary AND r._seq <> ("
            f"SELECT min(_seq) FROM _resolved m WHERE m._primary AND m.{kq} = g.cid) "
            "GROUP BY 1 ORDER BY 1"
        ).fetchall()
    )
    contract_cols = set(TABLES[CUSTOMER_TABLE].column_names)
    items = []
    for c in cols:
        if c == key:
            items.append(f"{kq}")
        elif c in contract_cols:
            items.append(f"{_merge_expr(c)} AS {quote_ident(c)}")
        else:  # lineage and helper columns: those of the leading row
            items.append(f"arg_min({quote_ident(c)}, _seq) AS {quote_ident(c)}")
    col_list = ", ".join(quote_ident(c) for c in cols)
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE {tmp} AS
        SELECT {col_list} FROM _resolved
        WHERE NOT (_primary AND {kq} IN (SELECT cid FROM _groups))
        UNION ALL
        SELECT {col_list} FROM (
            SELECT {", ".join(items)} FROM _resolved
            WHERE _primary AND {kq} IN (SELECT cid FROM _groups) GROUP BY {kq}
        )
        """
    )
    for helper in ("_ids", "_resolved", "_groups"):
        con.execute(f"DROP TABLE {helper}")
    return merged


def resolve_references(
    con: duckdb.DuckDBPyConnection,
    tmp: str,
    columns: Iterable[str],
    salt: str,
    systems: Mapping[str, System],
) -> None:
    """Fill each customer column `c` of mapped rows that gave `c__source_id` and/or
    `c__email` instead: the identity's customer, else the email's, else the id a new
    person would get (not a customer: the row is quarantined as an unknown customer)."""
    cols = {r[0] for r in con.execute(f"DESCRIBE {tmp}").fetchall()}
    replace = []
    joins = []
    for i, column in enumerate(columns):
        sid_col, email_col = f"{column}__source_id", f"{column}__email"
        sid = f"NULLIF(trim(t.{quote_ident(sid_col)}), '')" if sid_col in cols else "NULL"
        eh = email_hash_sql(f"t.{quote_ident(email_col)}", salt) if email_col in cols else "NULL"
        if sid == "NULL" and eh == "NULL":
            continue
        joins.append(
            f"LEFT JOIN ({_known_by_source_sql()}) ks{i} "
            f"ON ks{i}.sys = t._source_system AND ks{i}.sid = {sid} "
            f"LEFT JOIN ({known_by_email_sql()}) ke{i} ON ke{i}.eh = {eh}"
        )
        fallback = new_id_sql(systems, "t._source_system", sid, eh)
        ref = quote_ident(column)
        replace.append(
            f"coalesce(NULLIF(trim(t.{ref}), ''), ks{i}.cid, ke{i}.cid, {fallback}) AS {ref}"
        )
    if not replace:
        return
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {tmp} AS SELECT t.* REPLACE ({', '.join(replace)}) "
        f"FROM {tmp} t {' '.join(joins)} ORDER BY t._seq"
    )
