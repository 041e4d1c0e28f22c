"""The Dagster code location: every asset, check, job, schedule, sensor and resource."""

from __future__ import annotations

from dagster import Definitions, in_process_executor
from dagster_dbt import DbtCliResource

from pipelines.alerts import nightly_failure_alert
from pipelines.assets import (
    WAREHOUSE_POOL,
    customer_segmentation,
    dbt_customer_features,
    dbt_referral_roi,
    ingest_exports,
    published_warehouse,
)
from pipelines.automation import new_export_sensor, nightly_refresh, nightly_schedule
from pipelines.dbt import DBT_EXECUTABLE, dbt_project
from pipelines.quality import mart_asset_checks, raw_asset_checks
from pipelines.report import report_asset
from pipelines.resources import Settings, WarehouseResource


def make_definitions(settings: Settings) -> Definitions:
    """Definitions bound to one configuration (tests build their own)."""
    return Definitions(
        assets=[
            ingest_exports,
            dbt_customer_features,
            customer_segmentation,
            dbt_referral_roi,
            published_warehouse,
            report_asset,
        ],
        asset_checks=[
            *raw_asset_checks(pool=WAREHOUSE_POOL),
            *mart_asset_checks(pool=WAREHOUSE_POOL),
        ],
        jobs=[nightly_refresh],
        # Every job in one process, UI materialisations too: the warehouse resource (lock,
        # build copy, publish) lives for a whole run, not for one step's process.
        executor=in_process_executor,
        schedules=[nightly_schedule],
        sensors=[new_export_sensor, nightly_failure_alert],
        resources={
            "warehouse": WarehouseResource(
                path=str(settings.warehouse_path), lock_timeout_s=settings.lock_timeout_s
            ),
            "dbt": DbtCliResource(project_dir=dbt_project, dbt_executable=DBT_EXECUTABLE),
        },
    )


defs = make_definitions(Settings.from_env())
