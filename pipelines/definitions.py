"""The Dagster code location: every asset, check, job, schedule, sensor and resource.

The environment is read here and in no other module of the code location.  `defs`, which
Dagster loads lazily (`dg dev`, the daemon, every run), builds each resource from `EnvVar`s
(the pattern of Dagster's own platform, dagster-open-platform): a run resolves its settings
when it starts and the UI shows which variable each comes from, not its value.
`make_definitions` takes the resources themselves, so tests build the code location with
explicit values.  Importing this module reads no setting, starts no process and loads no
dbt manifest (tests/test_definitions.py).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from dagster import (
    AssetKey,
    AssetSpec,
    Definitions,
    EnvVar,
    FreshnessPolicy,
    definitions,
    in_process_executor,
    map_asset_specs,
)

from pipelines.alerts import AlertWebhook, nightly_failure_alert
from pipelines.assets import WAREHOUSE_POOL, nightly_assets
from pipelines.automation import (
    freshness_policy,
    new_export_sensor,
    nightly_ingest,
    nightly_refresh,
    nightly_schedule,
    refresh_after_ingest,
)
from pipelines.catalog import MARTS_OWNERS
from pipelines.dbt import NightlyDbtResource, dbt_project
from pipelines.quality import mart_asset_checks
from pipelines.report import report_asset
from pipelines.resources import (
    ExportsResource,
    PublishedWarehouse,
    ReportsResource,
    SegmentationResource,
    WarehouseResource,
)
from pipelines.spark.engine import SparkResource

# The README's "Configuration" table: every variable the code location reads, with its
# default (Dagster reads DAGSTER_HOME itself, `make run` its own).
SETTINGS: dict[str, str] = {
    "CRM_EXPORTS_DIR": "data/exports",
    "WAREHOUSE_PATH": "data/warehouse.duckdb",
    "PIPELINE_STORE_DIR": "",
    "REPORTS_DIR": "data/reports",
    "WAREHOUSE_LOCK_TIMEOUT_S": "3600",
    "BAD_ROW_THRESHOLD": "0.05",
    "BASE_CURRENCY": "USD",
    "EMAIL_HASH_SALT": "referral-segments-sample-salt",
    "NIGHTLY_CRON": "0 2 * * *",
    "NIGHTLY_TIMEZONE": "UTC",
    "FRESHNESS_DEADLINE_HOURS": "6",
    "SEGMENT_K_MIN": "3",
    "SEGMENT_K_MAX": "8",
    "SEGMENT_MIN_SHARE": "0.03",
    "SEGMENT_SEED": "42",
    "SEGMENT_RESCAN_DAYS": "28",
    "SEGMENT_RESCAN_SILHOUETTE_DROP": "0.05",
    "DBT_VARS": "",
    "WAREHOUSE_MEMORY_LIMIT": "1GB",
    "DBT_DUCKDB_MEMORY_LIMIT": "1GB",
    "GX_COMPACT_MIN_ROWS": "100000",
    "RAW_RETENTION_DAYS": "",
    "EXPORT_SENSOR_INTERVAL_S": "60",
    "ALERT_WEBHOOK_URL": "",
    "WAREHOUSE_ENGINE": "duckdb",
    "SPARK_REMOTE": "",
    "SPARK_LAKE_DIR": "",
    "SPARK_MASTER": "local[2]",
    "SPARK_DRIVER_MEMORY": "3g",
}


@dataclass(frozen=True)
class Automation:
    """When the job starts by itself: part of the definitions, fixed when they load."""

    cron: str = "0 2 * * *"
    timezone: str = "UTC"
    sensor_interval_s: int = 60
    # The published warehouse and the marts are due this many hours after the schedule.
    freshness_deadline_hours: int = 6


PUBLISHED_KEY = AssetKey(["warehouse", "published"])
REPORT_KEY = AssetKey(["reports", "referral_roi"])


def operated_specs(policy: FreshnessPolicy) -> Callable[[AssetSpec], AssetSpec]:
    """What analysts read is due every night: the published warehouse and every mart
    (key prefix `marts`, Python's and dbt's) get the freshness policy, so a night that did
    not publish shows as overdue.  Set here, after dbt's translator, which stays dbt's.
    The report (pipelines/report/asset.py) gets its owners from the catalog here too."""

    def apply(spec: AssetSpec) -> AssetSpec:
        if spec.key == PUBLISHED_KEY or spec.key.path[0] == "marts":
            return spec.replace_attributes(freshness_policy=policy)
        if spec.key == REPORT_KEY:
            return spec.replace_attributes(owners=MARTS_OWNERS)
        return spec

    return apply


def make_definitions(
    exports: ExportsResource,
    warehouse: WarehouseResource,
    reports: ReportsResource,
    *,
    published: PublishedWarehouse | None = None,
    dbt: NightlyDbtResource | None = None,
    segmentation: SegmentationResource | None = None,
    alerts: AlertWebhook | None = None,
    spark: SparkResource | None = None,
    automation: Automation = Automation(),
) -> Definitions:
    """The code location over these resources; the ones left out take their defaults
    (`published`: the warehouse's path).  A base currency other than USD goes to
    `exports`, `reports` and `dbt` alike."""
    project = dbt_project()
    policy = freshness_policy(
        automation.cron, automation.timezone, automation.freshness_deadline_hours
    )
    return Definitions(
        assets=map_asset_specs(operated_specs(policy), [*nightly_assets(project), report_asset]),
        # The raw checks are check specs of the ingest step (pipelines/assets.py).
        asset_checks=mart_asset_checks(pool=WAREHOUSE_POOL),
        jobs=[nightly_ingest, nightly_refresh],
        # Every job in one process, UI materialisations too: the warehouse resource (lock,
        # store, publish) lives for a whole run, not for one step's process.
        executor=in_process_executor,
        schedules=[nightly_schedule(automation.cron, automation.timezone)],
        sensors=[
            new_export_sensor(automation.sensor_interval_s),
            refresh_after_ingest,
            nightly_failure_alert,
        ],
        resources={
            "exports": exports,
            "warehouse": warehouse,
            "published": published or PublishedWarehouse(path=warehouse.path),
            "reports": reports,
            "dbt": dbt or NightlyDbtResource.for_project(project),
            "segmentation": segmentation or SegmentationResource(),
            "alerts": alerts or AlertWebhook(),
            "spark": spark or SparkResource(),
        },
    )


def setting(name: str) -> str:
    """A setting's value now: the environment's when set and not empty, else the default."""
    return os.environ.get(name) or SETTINGS[name]


def _env(name: str) -> str:
    """The variable as an EnvVar when it is set (resolved when a run starts), else its
    default; an empty value counts as unset, as it always has."""
    return EnvVar(name) if os.environ.get(name) else SETTINGS[name]


def _env_int(name: str) -> int:
    return EnvVar.int(name) if os.environ.get(name) else int(SETTINGS[name])


def _float(name: str) -> float:
    # Dagster's config has no float EnvVar: read when the definitions load.
    return float(setting(name))


def definitions_from_env() -> Definitions:
    """The code location configured by the environment (README, "Configuration")."""
    currency = _env("BASE_CURRENCY")
    return make_definitions(
        exports=ExportsResource(
            path=_env("CRM_EXPORTS_DIR"),
            bad_row_threshold=_float("BAD_ROW_THRESHOLD"),
            base_currency=currency,
            email_hash_salt=_env("EMAIL_HASH_SALT"),
        ),
        warehouse=WarehouseResource(
            path=_env("WAREHOUSE_PATH"),
            store_dir=_env("PIPELINE_STORE_DIR"),
            lock_timeout_s=_float("WAREHOUSE_LOCK_TIMEOUT_S"),
            memory_limit=_env("WAREHOUSE_MEMORY_LIMIT"),
            gx_compact_min_rows=_env_int("GX_COMPACT_MIN_ROWS"),
            raw_retention_days=_env("RAW_RETENTION_DAYS"),
        ),
        published=PublishedWarehouse(path=_env("WAREHOUSE_PATH")),
        reports=ReportsResource(
            path=_env("REPORTS_DIR"),
            base_currency=currency,
            memory_limit=_env("WAREHOUSE_MEMORY_LIMIT"),
        ),
        dbt=NightlyDbtResource.for_project(
            dbt_project(),
            base_currency=currency,
            vars_json=_env("DBT_VARS"),
            memory_limit=_env("DBT_DUCKDB_MEMORY_LIMIT"),
        ),
        segmentation=SegmentationResource(
            k_min=_env_int("SEGMENT_K_MIN"),
            k_max=_env_int("SEGMENT_K_MAX"),
            min_share=_float("SEGMENT_MIN_SHARE"),
            seed=_env_int("SEGMENT_SEED"),
            rescan_days=_env_int("SEGMENT_RESCAN_DAYS"),
            rescan_silhouette_drop=_float("SEGMENT_RESCAN_SILHOUETTE_DROP"),
        ),
        alerts=AlertWebhook(url=_env("ALERT_WEBHOOK_URL")),
        spark=SparkResource(
            engine=_env("WAREHOUSE_ENGINE"),
            remote=_env("SPARK_REMOTE"),
            lake_dir=_env("SPARK_LAKE_DIR"),
            master=_env("SPARK_MASTER"),
            driver_memory=_env("SPARK_DRIVER_MEMORY"),
        ),
        automation=Automation(
            cron=setting("NIGHTLY_CRON"),
            timezone=setting("NIGHTLY_TIMEZONE"),
            sensor_interval_s=int(setting("EXPORT_SENSOR_INTERVAL_S")),
            freshness_deadline_hours=int(setting("FRESHNESS_DEADLINE_HOURS")),
        ),
    )


@definitions
def defs() -> Definitions:
    return definitions_from_env()
