"""Dagster assets of the nightly run: ingest -> dbt features -> segments -> dbt ROI -> publish."""

import hashlib
from pathlib import Path

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    AssetSpec,
    Backoff,
    Config,
    Failure,
    MaterializeResult,
    MetadataValue,
    RetryPolicy,
    asset,
    multi_asset,
)
from dagster_dbt import DbtCliResource, dbt_assets, get_asset_key_for_model
from pydantic import Field

from pipelines.dbt import (
    BUILD_ARGS,
    FEATURES_SELECT,
    POST_SEGMENTATION_SELECT,
    dbt_project,
    dbt_vars,
    translator,
)
from pipelines.erasure import apply_erasure
from pipelines.ingest import ExportRefused, discover_exports, exports_to_ingest, ingest_export
from pipelines.resources import DBT_PROJECT_DIR, Settings, WarehouseResource
from pipelines.schemas import TABLES
from pipelines.segmentation import SegmentationConfig, run_segmentation
from pipelines.warehouse_tables import latest_export_date

WAREHOUSE_POOL = "duckdb_warehouse"
IO_RETRY = RetryPolicy(max_retries=2, delay=5, backoff=Backoff.EXPONENTIAL)
RAW_KEYS = [AssetKey(["raw", t]) for t in TABLES] + [
    AssetKey(["raw", "exports"]),
    AssetKey(["raw", "quarantine"]),
]


@multi_asset(
    specs=[
        AssetSpec(
            k,
            group_name="raw",
            kinds={"duckdb", "python"},
            description=f"Append-only raw copy of every export's `{k.path[-1]}`.",
        )
        for k in RAW_KEYS
    ],
    name="ingest_exports",
    retry_policy=IO_RETRY,
    pool=WAREHOUSE_POOL,
)
def ingest_exports(context: AssetExecutionContext, warehouse: WarehouseResource):
    """Load new or changed export folders from CRM_EXPORTS_DIR into raw, quarantining bad rows."""
    settings = Settings.from_env()
    folders = discover_exports(settings.exports_dir)
    if not folders:
        raise Failure(
            description=f"No export folder (named YYYY-MM-DD) in {settings.exports_dir}; "
            "set CRM_EXPORTS_DIR or run `make sample`.",
            allow_retries=False,
        )
    results = []
    with warehouse.connect() as con:
        for folder in exports_to_ingest(con, folders):
            try:
                result = ingest_export(
                    con, folder, settings.bad_row_threshold, settings.base_currency
                )
            except ExportRefused as exc:
                raise Failure(description=str(exc), allow_retries=False) from None
            context.log.info(
                f"Ingested export {folder.export_date}: "
                + ", ".join(f"{n}={t.rows_loaded}" for n, t in result.tables.items())
                + f"; quarantined {result.rows_quarantined} rows"
            )
            results.append(result)
        erasure = apply_erasure(con)
        if erasure["customers_erased"]:
            context.log.info(f"Erasure requests applied: {erasure}")
        counts = {t: con.execute(f"SELECT count(*) FROM raw.{t}").fetchone()[0] for t in TABLES}
        quarantined = con.execute("SELECT count(*) FROM raw.quarantine").fetchone()[0]
        as_of = latest_export_date(con)
    summary = {
        "as_of_date": as_of.isoformat() if as_of else None,
        "exports_ingested": MetadataValue.json([r.as_metadata() for r in results]),
        "rows_quarantined_this_run": sum(r.rows_quarantined for r in results),
        "customers_erased": erasure["customers_erased"],
        "erasure_rows_removed": MetadataValue.json(erasure),
    }
    for key in RAW_KEYS:
        name = key.path[-1]
        rows = counts.get(name, quarantined if name == "quarantine" else None)
        metadata = dict(summary)
        if rows is not None:
            metadata["dagster/row_count"] = rows
        yield MaterializeResult(asset_key=key, metadata=metadata)


def _dbt_target(warehouse: WarehouseResource, stage: str) -> Path:
    """dbt artifacts of the last run of a stage, one folder per warehouse.

    dagster-dbt's default is a new folder per invocation (~6 MB a night, never removed);
    runs on one warehouse are serialised by its lock, so one folder per stage suffices.
    """
    published = warehouse.published_path
    tag = hashlib.sha1(str(published).encode()).hexdigest()[:8]
    return DBT_PROJECT_DIR / "target" / "nightly" / f"{published.stem}-{tag}" / stage


class DbtBuildConfig(Config):
    """Run config of a dbt stage (Dagster launchpad)."""

    full_refresh: bool = Field(
        default=False,
        description="Rebuild the incremental staging models from all of raw (dbt "
        "--full-refresh). They rebuild by themselves when what they staged changed; this is "
        "for a changed macro they use (docs/decisions.md, 'Incremental staging').",
    )


def dbt_stage(name: str, select: str, exclude: str, doc: str) -> AssetsDefinition:
    """One `dbt build` over a slice of the project, in the run's build database.

    `warehouse` is requested so the run's lock and build copy exist before dbt starts.
    """

    def build(
        context: AssetExecutionContext,
        dbt: DbtCliResource,
        warehouse: WarehouseResource,
        config: DbtBuildConfig,
    ):
        refresh = ["--full-refresh"] if config.full_refresh else []
        yield from dbt.cli(
            [*BUILD_ARGS, *refresh, *dbt_vars()],
            context=context,
            target_path=_dbt_target(warehouse, name),
        ).stream()

    build.__doc__ = doc
    return dbt_assets(
        manifest=dbt_project.manifest_path,
        select=select,
        exclude=exclude,
        dagster_dbt_translator=translator,
        name=name,
        project=dbt_project,
        pool=WAREHOUSE_POOL,
    )(build)


dbt_customer_features = dbt_stage(
    "dbt_customer_features",
    FEATURES_SELECT,
    POST_SEGMENTATION_SELECT,
    "Staging models and marts.customer_features (with their data tests).",
)


CUSTOMER_FEATURES_KEY = get_asset_key_for_model([dbt_customer_features], "customer_features")
SEGMENT_KEYS = [AssetKey(["marts", "customer_segments"]), AssetKey(["marts", "segment_profiles"])]
HISTORY_KEYS = [
    AssetKey(["history", "segment_assignments"]),
    AssetKey(["history", "segment_centroids"]),
]


@multi_asset(
    specs=[
        AssetSpec(
            SEGMENT_KEYS[0],
            deps=[CUSTOMER_FEATURES_KEY],
            group_name="marts",
            kinds={"scikitlearn", "duckdb"},
            description="One row per customer: segment_id and segment_name of the latest run.",
        ),
        AssetSpec(
            SEGMENT_KEYS[1],
            deps=[CUSTOMER_FEATURES_KEY],
            group_name="marts",
            kinds={"scikitlearn", "duckdb"},
            description="One row per segment: size, share, mean features, persona, incentive.",
        ),
        AssetSpec(
            HISTORY_KEYS[0],
            deps=[CUSTOMER_FEATURES_KEY],
            group_name="history",
            kinds={"duckdb"},
            description="Every run's segment assignment (as_of_date x customer).",
        ),
        AssetSpec(
            HISTORY_KEYS[1],
            deps=[CUSTOMER_FEATURES_KEY],
            group_name="history",
            kinds={"duckdb"},
            description="Every run's centroids in original feature units, for stable ids.",
        ),
    ],
    name="customer_segmentation",
    pool=WAREHOUSE_POOL,
)
def customer_segmentation(context: AssetExecutionContext, warehouse: WarehouseResource):
    """Cluster customers with stable segment ids (see pipelines/segmentation/)."""
    with warehouse.connect() as con:
        meta = run_segmentation(con, SegmentationConfig.from_env())
    context.log.info(f"Segmentation: k={meta.get('k')} silhouette={meta.get('silhouette')}")
    for key in [*SEGMENT_KEYS, *HISTORY_KEYS]:
        yield MaterializeResult(
            asset_key=key,
            metadata={
                k: MetadataValue.json(v) if isinstance(v, dict | list) else v
                for k, v in meta.items()
                if v is not None
            },
        )


dbt_referral_roi = dbt_stage(
    "dbt_referral_roi",
    POST_SEGMENTATION_SELECT,
    "",
    "Referral ROI by segment (overall and monthly), top referrers, segment history.",
)


@asset(
    key=AssetKey(["warehouse", "published"]),
    deps=[*dbt_referral_roi.keys, *SEGMENT_KEYS, *HISTORY_KEYS],
    group_name="publish",
    kinds={"duckdb"},
    pool=WAREHOUSE_POOL,
    description="Swaps the run's build database in place of WAREHOUSE_PATH in one rename.",
)
def published_warehouse(context: AssetExecutionContext, warehouse: WarehouseResource):
    """Analysts see the night's tables only from here on, all at once."""
    with warehouse.connect(read_only=True) as con:
        quality = data_quality_summary(con)
    as_of = warehouse.as_of_date()
    path = warehouse.publish()
    context.log.info(f"Published {path} (as of {as_of}); data quality: {quality}")
    return MaterializeResult(
        metadata={
            "path": str(path),
            "as_of_date": as_of.isoformat() if as_of else None,
            **quality,
        }
    )


def data_quality_summary(con) -> dict[str, int]:
    """Counts a data engineer looks at after a night: what was set aside, and why."""
    quarantined, exports = con.execute(
        "SELECT count(*), count(DISTINCT export_date) FROM raw.quarantine"
    ).fetchone()
    self_refs, duplicates, counted = con.execute(
        "SELECT count(*) FILTER (WHERE is_self_referral), "
        "count(*) FILTER (WHERE is_duplicate_conversion), count(*) FILTER (WHERE is_counted) "
        "FROM intermediate.int_referral_attribution"
    ).fetchone()
    return {
        "rows_in_quarantine": quarantined,
        "exports_with_quarantined_rows": exports,
        "self_referrals_excluded": self_refs,
        "duplicate_conversions_excluded": duplicates,
        "referrals_counted": counted,
    }
