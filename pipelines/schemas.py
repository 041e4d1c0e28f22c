"""The CRM export contract as data (docs/spec/crm-exports.md).

Ingest, validation, erasure, the sample generator and the docs read this one description,
so the contract is written down once: a table added to `TABLES` gets its raw table, is
loaded (`load_order`), its row rules are enforced and it is checked by its GX suite without
a second list anywhere.  Raw tables (`raw.<table>`) hold the typed contract columns below,
in this order, followed by the bookkeeping columns in `RAW_META_COLUMNS`.

What a table needs loaded before it is derived from its columns, not typed again: a
`customer_ref` column is checked against the customers loaded so far (`CUSTOMER_TABLE`),
a `needs_rate` column against the exchange rates (`RATE_TABLE`).  Rules about several
columns of a row (`RequiredWhen`, `OneOfRequired`) are data too: ingest quarantines a row
that breaks one, and a GX suite can check the same rule through its derived column.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from pipelines.sql import sql_literal

# Logical type -> DuckDB type of the raw column.
DUCKDB_TYPES: dict[str, str] = {
    "id": "VARCHAR",
    "string": "VARCHAR",
    "date": "DATE",
    "timestamp": "TIMESTAMP",  # normalised to UTC, no zone
    "money": "DECIMAL(18,4)",
    "decimal": "DECIMAL(18,8)",
    "int": "BIGINT",
    "bool": "BOOLEAN",
}

# Columns every raw table carries after its contract columns.  The lineage columns come
# last so that a warehouse created before them gets them by ALTER TABLE in the same order.
RAW_META_COLUMNS: dict[str, str] = {
    "_export_date": "DATE",  # the export folder's date
    "_line_number": "BIGINT",  # 1-based line in the file (header = line 1)
    "_extra": "JSON",  # unknown columns of the row, kept as {name: text}
    "_source_system": "VARCHAR",  # `CONTRACT_SOURCE`, or the vendor system (pipelines/sources)
    "_source_file": "VARCHAR",  # the file of the export the row comes from
    # hash of the contract columns: how a re-delivered record is found unchanged
    # (pipelines/ingest/versions.py)
    "_row_hash": "UBIGINT",
    # the `_export_date` of the key's next newer version, NULL for its newest: how a night
    # finds each key's version before its export without grouping all of raw
    # (pipelines/ingest/versions.py); set again when versions come or go, so left out of
    # the Spark lake (pipelines/spark/lake.py).  NULL in a table without a key.
    "_superseded_on": "DATE",
    # hash of the line the version was read from, with its file's header and the reading
    # code: how a full export's unchanged lines are found without parsing them
    # (pipelines/ingest/lines.py); NULL where no such line is known.  Given again when a
    # line re-delivers the version unchanged, so left out of the Spark lake too.
    "_line_hash": "UBIGINT",
}

# `_source_system` of rows read from a contract-layout file (customers.csv, ...).
CONTRACT_SOURCE = "contract"


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    required: bool = False
    allowed: tuple[str, ...] | None = None  # value set, compared lower-cased
    min_value: float | None = None
    max_value: float | None = None
    customer_ref: bool = False  # must exist in customers
    upper_case: bool = False  # a code stored upper-cased (currencies)
    needs_rate: bool = False  # a currency: other than the base one it needs a rate in fx_rates


# Rows of this table are the known customers; customer_ref columns are checked against it.
CUSTOMER_TABLE = "customers"
# Exchange rates, keyed by currency code; needs_rate columns are checked against it.
RATE_TABLE = "fx_rates"

# A rule's SQL is built over column references: `ref(column)` is the SQL of the column's
# typed value (`v_status` in ingest, `t."status"` in a GX frame).
ColumnRef = Callable[[str], str]


@dataclass(frozen=True)
class RequiredWhen:
    """`column` must have a value when `when` equals `value`."""

    column: str
    when: str
    value: str
    check_column: str | None = None  # the GX suites' derived column of this rule, if any

    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.when, self.column)

    @property
    def reason(self) -> str:
        return f"{self.column} required when {self.when} = {self.value}"

    def broken_sql(self, ref: ColumnRef) -> str:
        """True when the row breaks the rule (NULL, never true, when `when` is NULL)."""
        return f"{ref(self.when)} = {sql_literal(self.value)} AND {ref(self.column)} IS NULL"


@dataclass(frozen=True)
class OneOfRequired:
    """At least one of `inputs` must have a value (reported on the first of them)."""

    inputs: tuple[str, ...]
    check_column: str | None = None  # the GX suites' derived column of this rule, if any

    @property
    def column(self) -> str:
        return self.inputs[0]

    @property
    def reason(self) -> str:
        return f"{' or '.join(self.inputs)} required"

    def broken_sql(self, ref: ColumnRef) -> str:
        return " AND ".join(f"{ref(c)} IS NULL" for c in self.inputs)


RowRule = RequiredWhen | OneOfRequired


@dataclass(frozen=True)
class Table:
    name: str
    key: tuple[str, ...]
    columns: tuple[Column, ...]
    required_file: bool = False
    # A required file an export of vendor files may lack (its systems hold no such data,
    # e.g. a shop export has no referrals): the table then simply gets no rows.
    optional_with_sources: bool = False
    rules: tuple[RowRule, ...] = ()  # tried after the column rules, in this order
    # False: no GX suite expectations/raw_<name>.json, on purpose (tests check the others).
    raw_suite: bool = True

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)

    @property
    def checks_customers(self) -> bool:
        return any(c.customer_ref for c in self.columns)

    @property
    def customer_column(self) -> str | None:
        """The column naming the customer a row is about (its key for customers): what
        erasure finds a quarantined row by."""
        if self.name == CUSTOMER_TABLE:
            return self.key[0]
        return next((c.name for c in self.columns if c.customer_ref), None)

    @property
    def depends_on(self) -> tuple[str, ...]:
        """Tables whose rows this one is checked against, so they are loaded before it."""
        deps = [CUSTOMER_TABLE] if self.checks_customers else []
        deps += [RATE_TABLE] if any(c.needs_rate for c in self.columns) else []
        return tuple(d for d in deps if d != self.name)


ACQUISITION_CHANNELS = (
    "organic",
    "paid_search",
    "paid_social",
    "social",
    "email",
    "referral",
    "partner",
    "affiliate",
    "other",
)
ORDER_STATUSES = ("completed", "refunded", "cancelled", "pending")
REFERRAL_CHANNELS = ("email", "social", "link", "sms", "app", "in_store", "other")
REFERRAL_STATUSES = ("sent", "signed_up", "converted", "expired", "rejected")
REWARD_TYPES = ("discount", "credit", "cash", "gift", "upgrade", "points", "other")
EVENT_TYPES = (
    "review_posted",
    "social_share",
    "email_open",
    "email_click",
    "site_visit",
    "support_ticket",
    "other",
)

TABLES: dict[str, Table] = {
    t.name: t
    for t in (
        Table(
            "customers",
            key=("customer_id",),
            required_file=True,
            columns=(
                Column("customer_id", "id", required=True),
                Column("email", "string"),
                Column("first_name", "string"),
                Column("last_name", "string"),
                Column("phone", "string"),
                Column("signup_date", "date", required=True),
                Column("country", "string"),
                Column("city", "string"),
                Column("birth_year", "int", min_value=1900, max_value=2100),
                Column("gender", "string"),
                Column("industry", "string"),
                Column("company_size", "string"),
                Column("acquisition_channel", "string", allowed=ACQUISITION_CHANNELS),
                Column("marketing_opt_in", "bool"),
                Column("updated_at", "timestamp"),
            ),
        ),
        Table(
            "orders",
            key=("order_id",),
            required_file=True,
            columns=(
                Column("order_id", "id", required=True),
                Column("customer_id", "id", required=True, customer_ref=True),
                Column("order_date", "timestamp", required=True),
                Column("amount", "money", required=True, min_value=0),
                Column("currency", "string", upper_case=True, needs_rate=True),
                Column("status", "string", allowed=ORDER_STATUSES),
                Column("product_category", "string"),
                Column("discount_amount", "money", min_value=0),
                Column("updated_at", "timestamp"),
            ),
        ),
        Table(
            "referrals",
            key=("referral_id",),
            required_file=True,
            optional_with_sources=True,
            columns=(
                Column("referral_id", "id", required=True),
                Column("referrer_customer_id", "id", required=True, customer_ref=True),
                Column("referee_email", "string"),
                Column("referee_customer_id", "id"),
                Column("sent_at", "timestamp", required=True),
                Column("channel", "string", allowed=REFERRAL_CHANNELS),
                Column("status", "string", required=True, allowed=REFERRAL_STATUSES),
                Column("converted_at", "timestamp"),
                Column("reward_referrer_amount", "money", min_value=0),
                Column("reward_referee_amount", "money", min_value=0),
                # Kept as written, unlike orders.currency: raw stays as ingested so far.
                Column("reward_currency", "string", upper_case=True, needs_rate=True),
                Column("reward_type", "string", allowed=REWARD_TYPES),
                Column("updated_at", "timestamp"),
            ),
            rules=(
                RequiredWhen(
                    "converted_at",
                    when="status",
                    value="converted",
                    check_column="_converted_without_converted_at",
                ),
            ),
        ),
        Table(
            "surveys",
            key=("response_id",),
            columns=(
                Column("response_id", "id", required=True),
                Column("customer_id", "id", required=True, customer_ref=True),
                Column("responded_at", "timestamp", required=True),
                Column("nps", "int", min_value=0, max_value=10),
                Column("csat", "int", min_value=1, max_value=5),
            ),
            rules=(OneOfRequired(("nps", "csat"), check_column="_no_score"),),
        ),
        Table(
            "events",
            key=("event_id",),
            columns=(
                Column("event_id", "id", required=True),
                Column("customer_id", "id", required=True, customer_ref=True),
                Column("occurred_at", "timestamp", required=True),
                Column("event_type", "string", required=True, allowed=EVENT_TYPES),
            ),
        ),
        Table(
            "marketing_spend",
            key=("month", "channel"),
            columns=(
                Column("month", "date", required=True),
                Column("channel", "string", required=True),
                Column("spend", "money", required=True, min_value=0),
                Column("new_customers", "int", required=True, min_value=0),
            ),
        ),
        Table(
            "referral_program_costs",
            key=("month",),
            columns=(
                Column("month", "date", required=True),
                Column("cost", "money", required=True, min_value=0),
            ),
        ),
        Table(
            "fx_rates",
            key=("currency",),
            columns=(
                Column("currency", "string", required=True, upper_case=True),
                Column("rate_to_base", "decimal", required=True, min_value=0),
            ),
        ),
        Table(
            "erasure_requests",
            key=(),
            columns=(
                Column("customer_id", "id"),
                Column("email", "string"),
            ),
            rules=(OneOfRequired(("customer_id", "email")),),
            # Operator requests, not CRM data: the rule above is all they are checked by.
            raw_suite=False,
        ),
    )
}

FILE_SUFFIXES = (".csv", ".csv.gz", ".parquet", ".jsonl")


def load_order(tables: Mapping[str, Table] | None = None) -> tuple[str, ...]:
    """Every table once (default: `TABLES`), each after the tables it depends on, otherwise
    in contract order.

    Computed, not listed: a hand-kept list silently skips a table left out of it.
    """
    tables = TABLES if tables is None else tables
    order: list[str] = []

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in order:
            return
        if name in path:
            raise ValueError(f"tables depend on each other: {' -> '.join((*path, name))}")
        if name not in tables:
            raise ValueError(f"table {path[-1]} depends on {name}, which is not a table")
        for dep in tables[name].depends_on:
            visit(dep, (*path, name))
        order.append(name)

    for name in tables:
        visit(name, ())
    return tuple(order)
