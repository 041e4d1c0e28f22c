"""The Dagster asset reports/referral_roi: the report of the night's published warehouse."""

import os

from dagster import AssetKey, MaterializeResult, asset

from pipelines.report.build import build_report
from pipelines.resources import Settings, WarehouseResource, absolute


@asset(
    key=AssetKey(["reports", "referral_roi"]),
    deps=[AssetKey(["warehouse", "published"])],
    group_name="publish",
    kinds={"html", "parquet"},
    description="HTML report with charts and Parquet extracts of every marts table, from the "
    "published warehouse, in REPORTS_DIR/<as_of_date>/ (and REPORTS_DIR/latest.html).",
)
def report_asset(warehouse: WarehouseResource) -> MaterializeResult:
    """Analysts' report of the night's published warehouse."""
    out_dir = absolute(os.getenv("REPORTS_DIR", "data/reports"))  # like WAREHOUSE_PATH
    result = build_report(
        warehouse.published_path, out_dir, currency=Settings.from_env().base_currency
    )
    return MaterializeResult(metadata=result.metadata())
