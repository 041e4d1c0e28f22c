"""The CRM export contract as data (docs/spec/crm-exports.md).

Ingest, validation, the sample generator and the docs read this one description, so the
contract is written down once.  Raw tables (`raw.<table>`) hold the typed contract columns
below, in this order, followed by the bookkeeping columns in `RAW_META_COLUMNS`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

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

# Columns every raw table carries after its contract columns.
RAW_META_COLUMNS: dict[str, str] = {
    "_export_date": "DATE",  # the export folder's date
    "_line_number": "BIGINT",  # 1-based line in the file (header = line 1)
    "_extra": "JSON",  # unknown columns of the row, kept as {name: text}
}


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    required: bool = False
    allowed: tuple[str, ...] | None = None  # value set, compared lower-cased
    min_value: float | None = None
    max_value: float | None = None
    customer_ref: bool = False  # must exist in customers


@dataclass(frozen=True)
class Table:
    name: str
    key: tuple[str, ...]
    columns: tuple[Column, ...]
    required_file: bool = False
    extra_rules: tuple[str, ...] = field(default=())

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


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
                Column("currency", "string"),
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
                Column("reward_currency", "string"),
                Column("reward_type", "string", allowed=REWARD_TYPES),
                Column("updated_at", "timestamp"),
            ),
            extra_rules=("converted_at required when status = converted",),
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
            extra_rules=("at least one of nps, csat",),
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
                Column("currency", "string", required=True),
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
        ),
    )
}

FILE_SUFFIXES = (".csv", ".csv.gz", ".parquet", ".jsonl")
