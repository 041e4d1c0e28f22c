"""The night's two jobs, their schedule, and the sensors that start and chain them.

A night is two runs: `nightly_ingest` (the raw assets and their checks, partitioned by
export date) and, once it succeeded, `nightly_refresh` (everything downstream of raw, up
to publishing; latest state, unpartitioned).  A refused or failed ingest ends the night
there: the marts are not planned by any run, so they keep their last good materialisation
and show as overdue at the freshness deadline, not as failed (docs/decisions.md, "Dagster
operations").

The schedule's cron and time zone and the sensor's interval are Dagster definitions, fixed
when the definitions load: pipelines/definitions.py passes them to these factories.  The
folders the sensor watches come from its resources, like the run's.

Every launcher (schedule, sensor, `python -m pipelines.nightly`) makes each export folder a
partition of `export_date` and ingests the newest one, tagged `export_date`: the raw assets'
partitions then read "2026-11-22 failed, 2026-11-21 materialized" night by night.  The
refresh run carries the same tag.

Started by default (docs/decisions.md, "Dagster operations"): the schedule, so a fresh
deploy refreshes every night and a night that does not publish shows as overdue, the sensor
that starts the refresh after an ingest, and the failure alert, so a failed night reaches
someone.  The export sensor starts stopped: on `make dev` it would run the job at once on
whatever export sits in CRM_EXPORTS_DIR.
"""

from datetime import timedelta
from pathlib import Path

from dagster import (
    AssetSelection,
    DagsterInstance,
    DagsterRunStatus,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    FreshnessPolicy,
    RunRequest,
    RunStatusSensorContext,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    define_asset_job,
    in_process_executor,
    run_status_sensor,
    schedule,
    sensor,
)

from pipelines.assets import EXPORT_DATE_TAG, EXPORT_DATES, RAW_KEYS
from pipelines.ingest import discover_exports
from pipelines.resources import PUBLISHES_TAG, ExportsResource, PublishedWarehouse

# One process per run: the run lock and the store (dbt's DuckDB file) are shared by
# every step, and DuckDB allows one writer anyway.
WAREHOUSE_TAGS = {"referral_segments/warehouse": "duckdb"}
RAW = AssetSelection.assets(*RAW_KEYS)

nightly_ingest = define_asset_job(
    name="nightly_ingest",
    selection=RAW,
    executor_def=in_process_executor,
    tags={**WAREHOUSE_TAGS, PUBLISHES_TAG: "no"},
    description="Ingest the CRM exports into the pipeline's store and check the newest with "
    "the raw GX suites: one step, for one export date (partition), the newest export folder. "
    "Publishes nothing; when it succeeds, the sensor nightly_refresh_after_ingest starts "
    "nightly_refresh. A refused export fails this run and its partition only.",
)

nightly_refresh = define_asset_job(
    name="nightly_refresh",
    selection=AssetSelection.all() - RAW,
    executor_def=in_process_executor,
    tags=WAREHOUSE_TAGS,
    description="From what nightly_ingest stored: build features, segment customers, compute "
    "referral ROI, check the marts and publish the warehouse atomically. Started after every "
    "nightly_ingest that succeeded, tagged with its export date.",
)


def export_dates(folder: Path) -> list[str]:
    """The export folders' dates (YYYY-MM-DD), oldest first: the partition keys."""
    return [f.export_date.isoformat() for f in discover_exports(folder)]


def new_export_dates(instance: DagsterInstance, dates: list[str]) -> list[str]:
    """The dates that are not partitions yet."""
    known = set(instance.get_dynamic_partitions(EXPORT_DATES.name))
    return [d for d in dates if d not in known]


def register_export_partitions(instance: DagsterInstance, folder: Path) -> str | None:
    """Make every export folder a partition; the newest one's date (None: no export).

    For launchers that are not sensors (the schedule, `python -m pipelines.nightly`, tests),
    which cannot return a partitions request."""
    dates = export_dates(folder)
    if missing := new_export_dates(instance, dates):
        instance.add_dynamic_partitions(EXPORT_DATES.name, missing)
    return dates[-1] if dates else None


def freshness_policy(cron: str, timezone: str, deadline_hours: int) -> FreshnessPolicy:
    """Due `deadline_hours` after each scheduled night: materialised since the schedule's
    time, by that hour, else the asset is overdue (FAIL) until the next publish.

    A cron at one fixed minute and hour (the usual nightly one) gives a cron policy with
    the same days; where the deadline would cross midnight on restricted days, or the cron
    is not one time a day, the policy is a window: materialised in the last 24 h plus the
    deadline."""
    if not 1 <= deadline_hours <= 23:
        raise ValueError(f"FRESHNESS_DEADLINE_HOURS must be 1..23, not {deadline_hours}")
    fields = cron.split()
    if len(fields) == 5 and fields[0].isdigit() and fields[1].isdigit():
        minute, hour, dom, month, dow = fields
        due = int(hour) + deadline_hours
        if due < 24 or (dom, month, dow) == ("*", "*", "*"):
            return FreshnessPolicy.cron(
                deadline_cron=f"{minute} {due % 24} {dom} {month} {dow}",
                lower_bound_delta=timedelta(hours=deadline_hours),
                timezone=timezone,
            )
    return FreshnessPolicy.time_window(fail_window=timedelta(hours=24 + deadline_hours))


def nightly_schedule(cron: str = "0 2 * * *", timezone: str = "UTC") -> ScheduleDefinition:
    """NIGHTLY_CRON in NIGHTLY_TIMEZONE: ingest the newest export (the refresh follows)."""

    @schedule(
        name="nightly_schedule",
        job=nightly_ingest,
        cron_schedule=cron,
        execution_timezone=timezone,
        default_status=DefaultScheduleStatus.RUNNING,
        description="Every night (NIGHTLY_CRON, NIGHTLY_TIMEZONE): runs nightly_ingest for "
        "the newest export folder (partition export_date), then nightly_refresh follows, "
        "whether or not the export sensor already did: a night that failed is tried again, "
        "and one with no new export republishes the same data. Running by default; the "
        "freshness policies on the marts expect it.",
    )
    def _schedule(context: ScheduleEvaluationContext, exports: ExportsResource):
        newest = register_export_partitions(context.instance, exports.folder)
        if newest is None:
            return SkipReason(f"No export folder in {exports.folder}")
        return RunRequest(partition_key=newest, tags={EXPORT_DATE_TAG: newest})

    return _schedule


def new_export_sensor(interval_s: int = 60) -> SensorDefinition:
    """The sensor, looking every EXPORT_SENSOR_INTERVAL_S seconds."""

    @sensor(
        name="new_export_sensor",
        job=nightly_ingest,
        minimum_interval_seconds=interval_s,
        default_status=DefaultSensorStatus.STOPPED,
        description="Every EXPORT_SENSOR_INTERVAL_S seconds: makes each new export folder a "
        "partition of export_date, and runs nightly_ingest (then nightly_refresh follows) once for "
        "an export newer than both the published one and the last it requested. Stopped by "
        "default: started, it runs the night at once for an export nobody has published yet.",
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
        dates = export_dates(exports.folder)
        if not dates:
            return SkipReason(f"No export folder in {exports.folder}")
        partitions = []
        if missing := new_export_dates(context.instance, dates):
            partitions = [EXPORT_DATES.build_add_request(missing)]
        newest = dates[-1]
        ingested = published.as_of_date()
        floor = max(
            filter(None, [context.cursor, ingested.isoformat() if ingested else None]),
            default="",
        )
        if newest <= floor:
            return SensorResult(
                skip_reason=f"Newest export {newest} already ingested or requested",
                dynamic_partitions_requests=partitions,
            )
        return SensorResult(
            run_requests=[
                RunRequest(
                    run_key=f"export-{newest}",
                    partition_key=newest,
                    tags={EXPORT_DATE_TAG: newest},
                )
            ],
            dynamic_partitions_requests=partitions,
            cursor=newest,
        )

    return _sensor


def refresh_request(ingest_run) -> RunRequest:
    """The refresh that follows a successful ingest run: one per ingest run (run key), with
    its export date."""
    tags = {k: v for k, v in ingest_run.tags.items() if k == EXPORT_DATE_TAG}
    return RunRequest(run_key=f"after-{ingest_run.run_id}", tags=tags)


@run_status_sensor(
    name="nightly_refresh_after_ingest",
    run_status=DagsterRunStatus.SUCCESS,
    monitored_jobs=[nightly_ingest],
    request_job=nightly_refresh,
    default_status=DefaultSensorStatus.RUNNING,
    description="Starts nightly_refresh when a nightly_ingest run succeeds, tagged with its "
    "export date. Running by default: without it, a night ingests and never publishes.",
)
def refresh_after_ingest(context: RunStatusSensorContext) -> RunRequest:
    return refresh_request(context.dagster_run)
