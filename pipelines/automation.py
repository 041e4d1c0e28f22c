"""The nightly job, its schedule, and the sensor that reacts to a new export folder."""

from __future__ import annotations

import os

from dagster import (
    AssetSelection,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    RunRequest,
    ScheduleDefinition,
    SensorEvaluationContext,
    SkipReason,
    define_asset_job,
    in_process_executor,
    sensor,
)

from pipelines.ingest import discover_exports
from pipelines.resources import Settings, published_as_of

# One process per run: the build database, the run lock and dbt's DuckDB file are shared by
# every step, and DuckDB allows one writer anyway.
nightly_refresh = define_asset_job(
    name="nightly_refresh",
    selection=AssetSelection.all(),
    executor_def=in_process_executor,
    tags={"referral_segments/warehouse": "duckdb"},
    description="Ingest new CRM exports, build features, segment customers, compute referral "
    "ROI and publish the warehouse atomically.",
)

nightly_schedule = ScheduleDefinition(
    name="nightly_refresh_schedule",
    job=nightly_refresh,
    cron_schedule=os.getenv("NIGHTLY_CRON", "0 2 * * *"),
    execution_timezone=os.getenv("NIGHTLY_TIMEZONE", "UTC"),
    default_status=DefaultScheduleStatus.STOPPED,
)


@sensor(
    job=nightly_refresh,
    minimum_interval_seconds=int(os.getenv("EXPORT_SENSOR_INTERVAL_S", "60")),
    default_status=DefaultSensorStatus.STOPPED,
)
def new_export_sensor(context: SensorEvaluationContext):
    """Request a run when an export folder newer than the newest ingested one appears.

    The cursor holds the newest export date already requested, so an export that keeps
    failing is not requested again every minute; the run key dedupes across restarts.
    """
    settings = Settings.from_env()
    folders = discover_exports(settings.exports_dir)
    if not folders:
        return SkipReason(f"No export folder in {settings.exports_dir}")
    newest = folders[-1].export_date.isoformat()
    ingested = published_as_of(settings.warehouse_path)
    floor = max(
        filter(None, [context.cursor, ingested.isoformat() if ingested else None]), default=""
    )
    if newest <= floor:
        return SkipReason(f"Newest export {newest} already ingested or requested")
    context.update_cursor(newest)
    return RunRequest(run_key=f"export-{newest}", tags={"export_date": newest})
