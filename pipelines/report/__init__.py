"""The analysts' report: `<out>/<as_of_date>/report.html` (inline CSS and SVG, no script) with
the Parquet extracts of the marts that hold no customer rows, `<out>/latest/<table>.parquet`
per marts table (replaced each night) and `<out>/latest.html`, from the marts of the published
warehouse only.  Rows per customer exist only in latest/: the dated folders grow by kilobytes a
night whatever the customer count, and an erased customer leaves them with the next report.
Same warehouse, same bytes: no clock, fixed orderings and number formats.  The page shows
aggregates only, never a customer's row.

Modules: `fmt` (value formatting and escaping), `charts` (SVG charts and palette), `page`
(CSS, metric definitions, `render_html`), `build` (marts loading, Parquet extracts,
`build_report`), `asset` (the Dagster asset `report_asset`).
"""

from pipelines.report.asset import report_asset
from pipelines.report.build import TABLE_KEYS, ReportResult, build_report
from pipelines.report.charts import PALETTE, hbar_chart, line_chart, migration_chart
from pipelines.report.page import CSS, DEFINITIONS, render_html

__all__ = [
    "CSS",
    "DEFINITIONS",
    "PALETTE",
    "TABLE_KEYS",
    "ReportResult",
    "build_report",
    "hbar_chart",
    "line_chart",
    "migration_chart",
    "render_html",
    "report_asset",
]
