"""The nightly job, its schedule, and the sensor that reacts to a new export folder.

The schedule's cron and time zone and the sensor's interval are Dagster definitions, fixed
when the definitions load: pipelines/definitions.py passes them to these factories.  The
folders the sensor watches come from its resources, like the run's.
"""

from dagster import (
    AssetSelection,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    RunRequest,
    ScheduleDefinition,
    SensorDefinition,
    SensorEvaluationContext,
    SkipReason,
    define_asset_job,
    in_process_executor,
    sensor,
)

from pipelines.ingest import discover_exports
from pipelines.resources import ExportsResource, PublishedWarehouse

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


def nightly_schedule(cron: str = "0 2 * * *", timezone: str = "UTC") -> ScheduleDefinition:
    """NIGHTLY_CRON in NIGHTLY_TIMEZONE."""
    return ScheduleDefinition(
        name="nightly_refresh_schedule",
        job=nightly_refresh,
        cron_schedule=cron,
        execution_timezone=timezone,
        default_status=DefaultScheduleStatus.STOPPED,
    )


def new_export_sensor(interval_s: int = 60) -> SensorDefinition:
    """The sensor, looking every EXPORT_SENSOR_INTERVAL_S seconds."""

    @sensor(
        name="new_export_sensor",
        job=nightly_refresh,
        minimum_interval_seconds=interval_s,
        default_status=DefaultSensorStatus.STOPPED,
    )
    def _sensor(
        context: SensorEvaluationContext,
        exports: ExportsResource,
        published: PublishedWarehouse,
    ):
        """Request a run when an export folder newer than the newest ingested one appears.

        The cursor holds the newest export date already requested, so an export that keeps
        failing is not requested again every minute; the run key dedupes across restarts.
        """
        folders = discover_exports(exports.folder)
        if not folders:
            return SkipReason(f"No export folder in {exports.folder}")
        newest = folders[-1].export_date.isoformat()
        ingested = published.as_of_date()
        floor = max(
            filter(None, [context.cursor, ingested.isoformat() if ingested else None]),
            default="",
        )
        if newest <= floor:
            return SkipReason(f"Newest export {newest} already ingested or requested")
        context.update_cursor(newest)
        return RunRequest(run_key=f"export-{newest}", tags={"export_date": newest})

    return _sensor
