"""The Dagster asset reports/referral_roi: the report of the night's published warehouse."""

from dagster import AssetKey, MaterializeResult, asset

from pipelines.report.build import build_report
from pipelines.resources import PublishedWarehouse, ReportsResource


@asset(
    key=AssetKey(["reports", "referral_roi"]),
    deps=[AssetKey(["warehouse", "published"])],
    group_name="publish",
    kinds={"html", "parquet"},
    description="HTML report with charts and Parquet extracts of every marts table, from the "
    "published warehouse, in REPORTS_DIR/<as_of_date>/ (and REPORTS_DIR/latest.html).",
)
def report_asset(published: PublishedWarehouse, reports: ReportsResource) -> MaterializeResult:
    """Analysts' report of the night's published warehouse.

    It reads only the published file, so it needs neither the run's lock nor the pipeline's store:
    materialised on its own it leaves the warehouse as it found it."""
    result = build_report(
        published.published_path,
        reports.folder,
        currency=reports.currency,
        memory_limit=reports.memory_limit,
    )
    return MaterializeResult(metadata=result.metadata())
