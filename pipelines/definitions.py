"""The Dagster code location: every asset, check, job, schedule, sensor and resource."""

from __future__ import annotations

from dagster import Definitions
from dagster_dbt import DbtCliResource

from pipelines.assets import (
    customer_segmentation,
    dbt_customer_features,
    dbt_referral_roi,
    ingest_exports,
    published_warehouse,
)
from pipelines.automation import new_export_sensor, nightly_refresh, nightly_schedule
from pipelines.dbt import dbt_project
from pipelines.resources import Settings, WarehouseResource

_settings = Settings.from_env()

defs = Definitions(
    assets=[
        ingest_exports,
        dbt_customer_features,
        customer_segmentation,
        dbt_referral_roi,
        published_warehouse,
    ],
    jobs=[nightly_refresh],
    schedules=[nightly_schedule],
    sensors=[new_export_sensor],
    resources={
        "warehouse": WarehouseResource(
            path=str(_settings.warehouse_path), lock_timeout_s=_settings.lock_timeout_s
        ),
        "dbt": DbtCliResource(project_dir=dbt_project),
    },
)
