"""Convert the UCI Online Retail line items into one CRM export folder.

    python -m pipelines.online_retail [--source PATH] --out DIR

A nightly run needs no conversion: the file dropped as it is into a dated export folder is
read by the source layer's line-item retail system (pipelines/sources/systems/
line_item_retail, docs/sources.md), which gives the same raw customers and orders
(tests/test_online_retail.py compares them).  This converter stays for a contract-layout
copy of the data (to read, diff or hand to another tool).

The source (`online_retail.csv.gz`: InvoiceNo, StockCode, Description, Quantity,
InvoiceDate, UnitPrice, CustomerID, Country; one row per invoice line) is read by DuckDB
straight from the .gz and turned, in SQL, into `DIR/<export date>/` following the export
contract (`docs/spec/crm-exports.md`): customers.csv, orders.csv, a header-only
referrals.csv and manifest.json (mode full, rows and sha256 per file, written last).
The mapping decisions are in docs/online-retail.md; in short:

- export date = the day after the last invoice (2011-12-10 for the real file);
- one order per InvoiceNo of a customer: amount = round(sum(Quantity * UnitPrice), 2),
  order_date = the invoice's first timestamp (UK wall-clock time, written as is);
- "C" invoices (cancellations / returns) -> status `refunded`, amount = abs(total);
  any other invoice with a negative total (adjustments) -> `cancelled`, amount = abs(total);
  everything else `completed` (a zero-price invoice is a completed order of amount 0);
- no currency column: amounts are GBP, run the pipeline with BASE_CURRENCY=GBP;
- customers: first invoice day as signup_date, country of the latest invoice as ISO
  3166 alpha-2 where one exists ("Unspecified" -> empty; "Channel Islands" and
  "European Community" kept as names);
- lines without CustomerID cannot be attributed to a customer: they stay in the source,
  are counted in the summary, and are not exported.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path

import duckdb
import yaml

from pipelines.schemas import TABLES
from pipelines.sources.registry import SYSTEMS_DIR
from pipelines.sql import sql_literal

DEFAULT_SOURCE = (
    Path(__file__).resolve().parents[1] / "datasets" / "online_retail" / "online_retail.csv.gz"
)
SOURCE_ENV = "ONLINE_RETAIL_PATH"
SOURCE_COLUMNS = (
    "InvoiceNo",
    "StockCode",
    "Description",
    "Quantity",
    "InvoiceDate",
    "UnitPrice",
    "CustomerID",
    "Country",
)
ORDER_COLUMNS = (
    "order_id",
    "customer_id",
    "order_date",
    "amount",
    "status",
    "product_category",
    "discount_amount",
)
CUSTOMER_COLUMNS = (
    "customer_id",
    "signup_date",
    "country",
    "acquisition_channel",
    "marketing_opt_in",
)
EXPORT_FILES = ("customers.csv", "orders.csv", "referrals.csv", "manifest.json")

# The line-item retail system of the source layer reads the same file in a nightly run
# (pipelines/sources/systems/line_item_retail); its folder holds the one country table.
LINE_ITEM_SYSTEM = SYSTEMS_DIR / "line_item_retail" / "system.yaml"


def _country_codes() -> dict[str, str | None]:
    """Country names of the file -> ISO 3166-1 alpha-2 (None: unknown, written empty).
    Names without one code ("Channel Islands" = Jersey + Guernsey, "European Community")
    are not listed and are written as they are, like any name not in the table."""
    spec = yaml.safe_load(LINE_ITEM_SYSTEM.read_text(encoding="utf-8"))
    return {
        str(name): None if code is None else str(code)
        for name, code in spec["maps"]["country_code"].items()
    }


COUNTRY_CODES: dict[str, str | None] = _country_codes()


class ConversionError(Exception):
    """The source cannot be converted without guessing (the message says why)."""


@dataclass
class ConversionSummary:
    source: str
    folder: str
    export_date: str
    lines_read: int
    lines_without_customer: int  # CustomerID empty
    lines_not_exported: int  # lines of invoices without any CustomerID
    invoices: int  # distinct InvoiceNo in the source
    invoices_without_customer: int  # not exported
    cancellation_invoices: int  # InvoiceNo starting with "C", in the source
    cancellation_invoices_exported: int  # of those, with a customer (status refunded)
    orders: int  # rows of orders.csv
    orders_by_status: dict[str, int] = field(default_factory=dict)
    zero_amount_orders: int = 0  # completed orders of amount 0 (zero-price invoices)
    customers: int = 0
    customers_without_completed_order: int = 0  # only refunds: prospects downstream
    countries_kept_as_names: dict[str, int] = field(default_factory=dict)
    files: dict[str, dict] = field(default_factory=dict)
    seconds: float = 0.0


def default_source() -> Path:
    """The converter's own variable, read when it runs: not a setting of the code location."""
    return Path(os.environ.get(SOURCE_ENV) or DEFAULT_SOURCE)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _load_lines(con: duckdb.DuckDBPyConnection, source: Path) -> None:
    """Typed line items in temp table `lines` (a value that does not parse is an error)."""
    try:
        con.execute(
            "CREATE TEMP TABLE src AS SELECT * FROM read_csv("
            f"{sql_literal(str(source))}, header = true, all_varchar = true, delim = ',', "
            "quote = '\"', escape = '\"')"
        )
    except duckdb.Error as exc:
        raise ConversionError(f"{source}: cannot be read: {exc}") from exc
    cols = [r[0] for r in con.execute("DESCRIBE src").fetchall()]
    missing = [c for c in SOURCE_COLUMNS if c not in cols]
    if missing:
        raise ConversionError(f"{source}: column(s) missing: {', '.join(missing)}")
    try:
        con.execute(
            r"""
            CREATE TEMP TABLE lines AS
            SELECT
                trim(InvoiceNo) AS invoice_no,
                CAST(trim(Quantity) AS DECIMAL(18, 3)) AS quantity,
                CAST(trim(UnitPrice) AS DECIMAL(18, 4)) AS unit_price,
                CAST(trim(InvoiceDate) AS TIMESTAMP) AS invoice_ts,
                -- "17850.0" -> "17850": the export wrote the id as a float
                regexp_replace(NULLIF(trim(CustomerID), ''), '\.0*$', '') AS customer_id,
                NULLIF(trim(Country), '') AS country
            FROM src
            """
        )
    except duckdb.Error as exc:
        first = str(exc).strip().splitlines()[0]
        raise ConversionError(f"{source}: a value does not parse: {first}") from exc
    con.execute("DROP TABLE src")
    (bad,) = con.execute(
        "SELECT count(*) FROM lines WHERE invoice_no IS NULL OR invoice_no = '' "
        "OR invoice_ts IS NULL OR quantity IS NULL OR unit_price IS NULL"
    ).fetchone()
    if bad:
        raise ConversionError(
            f"{source}: {bad} line(s) without InvoiceNo, InvoiceDate, Quantity or UnitPrice"
        )


def _build_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Temp tables `invoices`, `orders_out` and `customers_out` from `lines`."""
    con.execute(
        """
        CREATE TEMP TABLE invoices AS
        SELECT
            invoice_no,
            count(DISTINCT customer_id) AS n_customers,
            min(customer_id) AS customer_id,
            min(invoice_ts) AS order_ts,
            round(sum(quantity * unit_price), 2) AS total,
            upper(invoice_no) LIKE 'C%' AS is_cancellation
        FROM lines
        GROUP BY invoice_no
        """
    )
    shared = con.execute(
        "SELECT invoice_no FROM invoices WHERE n_customers > 1 ORDER BY 1 LIMIT 5"
    ).fetchall()
    if shared:
        raise ConversionError(
            "invoice(s) with more than one CustomerID cannot be one order: "
            + ", ".join(r[0] for r in shared)
        )
    con.execute(
        """
        CREATE TEMP TABLE orders_out AS
        SELECT
            invoice_no AS order_id,
            customer_id,
            strftime(order_ts, '%Y-%m-%dT%H:%M:%S') AS order_date,
            CAST(abs(total) AS DECIMAL(18, 2)) AS amount,
            CASE WHEN is_cancellation THEN 'refunded'
                 WHEN total < 0 THEN 'cancelled'
                 ELSE 'completed' END AS status,
            CAST(NULL AS VARCHAR) AS product_category,
            CAST(NULL AS DECIMAL(18, 2)) AS discount_amount,
            order_ts,
            total
        FROM invoices
        WHERE customer_id IS NOT NULL
        """
    )
    con.execute("CREATE TEMP TABLE country_codes (name VARCHAR, code VARCHAR)")
    con.executemany("INSERT INTO country_codes VALUES (?, ?)", list(COUNTRY_CODES.items()))
    con.execute(
        """
        CREATE TEMP TABLE customers_out AS
        WITH per_customer AS (
            SELECT
                customer_id,
                CAST(min(invoice_ts) AS DATE) AS signup_date,
                -- the country of the latest line (ties: latest invoice, then name)
                arg_max(country, struct_pack(t := invoice_ts, i := invoice_no,
                                             c := coalesce(country, ''))) AS country_name
            FROM lines
            WHERE customer_id IS NOT NULL
            GROUP BY customer_id
        )
        SELECT
            p.customer_id,
            p.signup_date,
            CASE WHEN cc.name IS NOT NULL THEN cc.code ELSE p.country_name END AS country,
            CAST(NULL AS VARCHAR) AS acquisition_channel,
            CAST(NULL AS BOOLEAN) AS marketing_opt_in,
            p.country_name,
            cc.name IS NULL AND p.country_name IS NOT NULL AS country_kept_as_name
        FROM per_customer p
        LEFT JOIN country_codes cc ON cc.name = p.country_name
        """
    )


def _copy_csv(
    con: duckdb.DuckDBPyConnection, query: str, columns: tuple[str, ...], path: Path
) -> dict:
    con.execute(
        f"COPY (SELECT {', '.join(columns)} FROM ({query})) TO {sql_literal(str(path))} "
        "(FORMAT csv, HEADER true, DELIMITER ',')"
    )
    (rows,) = con.execute(f"SELECT count(*) FROM ({query})").fetchone()
    return {"rows": rows, "sha256": _sha256(path)}


def _write_referrals_header(path: Path) -> dict:
    path.write_text(",".join(TABLES["referrals"].column_names) + "\n", encoding="utf-8")
    return {"rows": 0, "sha256": _sha256(path)}


def convert(source: Path, out_dir: Path) -> ConversionSummary:
    """Write `out_dir/<export date>/` from the line-item file `source`; return the counts."""
    started = time.perf_counter()
    source = Path(source)
    if not source.is_file():
        raise ConversionError(f"source file not found: {source}")
    con = duckdb.connect()
    try:
        _load_lines(con, source)
        (last_ts,) = con.execute("SELECT max(invoice_ts) FROM lines").fetchone()
        if last_ts is None:
            raise ConversionError(f"{source}: no invoice lines")
        export_date = date.fromordinal(last_ts.date().toordinal() + 1)
        _build_tables(con)

        folder = Path(out_dir) / export_date.isoformat()
        folder.mkdir(parents=True, exist_ok=True)
        others = sorted(p.name for p in folder.iterdir() if p.name not in EXPORT_FILES)
        if others:
            raise ConversionError(
                f"{folder} already holds other files ({', '.join(others)}); "
                "refusing to mix them into this export"
            )
        manifest_path = folder / "manifest.json"
        manifest_path.unlink(missing_ok=True)  # the export is complete once this exists
        files = {
            "customers.csv": _copy_csv(
                con,
                "SELECT * FROM customers_out ORDER BY length(customer_id), customer_id",
                CUSTOMER_COLUMNS,
                folder / "customers.csv",
            ),
            "orders.csv": _copy_csv(
                con,
                "SELECT * FROM orders_out ORDER BY order_ts, order_id",
                ORDER_COLUMNS,
                folder / "orders.csv",
            ),
            "referrals.csv": _write_referrals_header(folder / "referrals.csv"),
        }
        tmp = folder / "manifest.json.tmp"
        tmp.write_text(
            json.dumps({"mode": "full", "files": files}, indent=2) + "\n", encoding="utf-8"
        )
        tmp.replace(manifest_path)

        line_counts = con.execute(
            """
            SELECT count(*),
                   count(*) FILTER (WHERE customer_id IS NULL),
                   count(*) FILTER (WHERE invoice_no IN (
                       SELECT invoice_no FROM invoices WHERE customer_id IS NULL))
            FROM lines
            """
        ).fetchone()
        invoice_counts = con.execute(
            """
            SELECT count(*),
                   count(*) FILTER (WHERE customer_id IS NULL),
                   count(*) FILTER (WHERE is_cancellation),
                   count(*) FILTER (WHERE is_cancellation AND customer_id IS NOT NULL)
            FROM invoices
            """
        ).fetchone()
        by_status = dict(
            con.execute("SELECT status, count(*) FROM orders_out GROUP BY 1 ORDER BY 1").fetchall()
        )
        (zero_orders,) = con.execute(
            "SELECT count(*) FROM orders_out WHERE status = 'completed' AND amount = 0"
        ).fetchone()
        (no_completed,) = con.execute(
            "SELECT count(*) FROM customers_out c WHERE NOT EXISTS (SELECT 1 FROM orders_out o "
            "WHERE o.customer_id = c.customer_id AND o.status = 'completed')"
        ).fetchone()
        kept = dict(
            con.execute(
                "SELECT country_name, count(*) FROM customers_out WHERE country_kept_as_name "
                "GROUP BY 1 ORDER BY 1"
            ).fetchall()
        )
    finally:
        con.close()
    return ConversionSummary(
        source=str(source),
        folder=str(folder),
        export_date=export_date.isoformat(),
        lines_read=line_counts[0],
        lines_without_customer=line_counts[1],
        lines_not_exported=line_counts[2],
        invoices=invoice_counts[0],
        invoices_without_customer=invoice_counts[1],
        cancellation_invoices=invoice_counts[2],
        cancellation_invoices_exported=invoice_counts[3],
        orders=files["orders.csv"]["rows"],
        orders_by_status=by_status,
        zero_amount_orders=zero_orders,
        customers=files["customers.csv"]["rows"],
        customers_without_completed_order=no_completed,
        countries_kept_as_names=kept,
        files=files,
        seconds=round(time.perf_counter() - started, 2),
    )


def format_summary(s: ConversionSummary) -> str:
    statuses = ", ".join(f"{k} {v:,}" for k, v in s.orders_by_status.items()) or "none"
    kept = ", ".join(f"{k} ({v})" for k, v in s.countries_kept_as_names.items()) or "none"
    lines = [
        f"Online Retail -> export {s.folder}  ({s.seconds:.1f} s)",
        f"  source                       {s.source}",
        f"  export date                  {s.export_date} (day after the last invoice)",
        f"  lines read                   {s.lines_read:>9,}",
        f"  lines without CustomerID     {s.lines_without_customer:>9,}",
        f"    not exported               {s.lines_not_exported:>9,}  (no customer to attribute "
        "them to; they stay in the source, counted here, not silently dropped)",
        f"  invoices                     {s.invoices:>9,}",
        f"    without CustomerID         {s.invoices_without_customer:>9,}  (not exported)",
        f"  cancellation invoices (C…)   {s.cancellation_invoices:>9,}",
        f"    exported as refunded       {s.cancellation_invoices_exported:>9,}",
        f"  orders.csv rows              {s.orders:>9,}  ({statuses})",
        f"    completed with amount 0    {s.zero_amount_orders:>9,}  (zero-price invoices)",
        f"  customers.csv rows           {s.customers:>9,}",
        f"    without a completed order  {s.customers_without_completed_order:>9,}  "
        "(only refunds: prospects downstream)",
        f"  countries kept as names      {kept}",
        "  referrals.csv                header only (no referral programme in the data)",
        "  amounts are GBP (no currency column): run the pipeline with BASE_CURRENCY=GBP",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.online_retail",
        description="Convert the UCI Online Retail line items into one CRM export folder.",
    )
    parser.add_argument(
        "--source",
        type=Path,
        default=None,
        help=f"line-item CSV (.csv or .csv.gz); default ${SOURCE_ENV} or {DEFAULT_SOURCE}",
    )
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        help="exports directory; the export goes to OUT/<export date>/",
    )
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = parser.parse_args(argv)
    try:
        summary = convert(args.source or default_source(), args.out)
    except ConversionError as exc:
        print(f"online_retail: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(asdict(summary), indent=2) if args.json else format_summary(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
