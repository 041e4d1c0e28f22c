"""Dagster assets of the nightly run: ingest -> dbt features -> segments -> dbt ROI -> publish.

The dbt stages and the publish asset that waits for them are built from the dbt manifest,
so they are made by `nightly_assets(project)` when the definitions load, not at import.
Every setting comes from a resource (pipelines/resources.py, pipelines/dbt.py).
"""

import getpass
import hashlib
from datetime import date
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
from dagster_dbt import DbtProject, dbt_assets
from pydantic import Field

from pipelines.dbt import POST_SEGMENTATION_SELECT, NightlyDbtResource, translator
from pipelines.erasure import apply_erasure
from pipelines.ingest import discover_exports, exports_to_ingest, ingest_export
from pipelines.ingest.backlog import (
    Skip,
    forget_refusals,
    ingest_backlog,
    record_resolutions,
)
from pipelines.maintenance import drop_superseded_versions
from pipelines.resources import (
    DBT_PROJECT_DIR,
    ExportsResource,
    SegmentationResource,
    WarehouseResource,
)
from pipelines.schemas import TABLES
from pipelines.warehouse_tables import latest_export_date

WAREHOUSE_POOL = "duckdb_warehouse"
IO_RETRY = RetryPolicy(max_retries=2, delay=5, backoff=Backoff.EXPONENTIAL)
# Raw tables ingest writes besides the contract's (dbt reads them as sources of `raw`).
RAW_OTHERS = {
    "customer_identities": "The identity crosswalk: one row per source identity and email "
    "hash seen (pipelines/sources/identity.py).",
    "exports": "One row per ingested export; max(export_date) is the run's as-of date.",
    "quarantine": "Rows refused by ingest, with the reason.",
    "refused_exports": "Refused exports superseded by a newer full export or skipped by an "
    "operator; tried again only when their files change (docs/decisions.md).",
    "record_presence": "Keys a full export lacked, or delivered again after that "
    "(pipelines/ingest/versions.py).",
    "export_sources": "What each source system of an export gave: files, rows read, "
    "skipped, merged, quarantined and loaded.",
}
RAW_KEYS = [AssetKey(["raw", t]) for t in [*TABLES, *RAW_OTHERS]]


class IngestConfig(Config):
    """Run config of the ingest step (Dagster launchpad, or `python -m pipelines.nightly
    --skip-export`): how an operator accepts the loss of a refused export."""

    skip_refused_exports: list[str] = Field(
        default_factory=list,
        description="Export dates (YYYY-MM-DD) whose refusal is accepted: the export is "
        "recorded as skipped in raw.refused_exports and no longer blocks later exports. Only "
        "a refused export is skipped; a good one is ingested as usual.",
    )
    skipped_by: str = Field(default="", description="Who accepts the loss (default: OS user).")
    skip_note: str = Field(default="", description="Why, for the record.")

    def skips(self, run_id: str) -> list[Skip]:
        who = self.skipped_by or f"{getpass.getuser()} (run {run_id[:8]})"
        return [Skip(date.fromisoformat(d), who, self.skip_note) for d in self.skip_refused_exports]


@multi_asset(
    specs=[
        AssetSpec(
            k,
            group_name="raw",
            kinds={"duckdb", "python"},
            description=RAW_OTHERS.get(
                k.path[-1],
                f"Every version of each `{k.path[-1]}` record: what an export delivered new "
                "or changed (pipelines/ingest/versions.py).",
            ),
        )
        for k in RAW_KEYS
    ],
    name="ingest_exports",
    retry_policy=IO_RETRY,
    pool=WAREHOUSE_POOL,
)
def ingest_exports(
    context: AssetExecutionContext,
    warehouse: WarehouseResource,
    exports: ExportsResource,
    config: IngestConfig,
):
    """Load new or changed export folders from CRM_EXPORTS_DIR into raw, quarantining bad rows."""
    folders = discover_exports(exports.folder)
    if not folders:
        raise Failure(
            description=f"No export folder (named YYYY-MM-DD) in {exports.folder}; "
            "set CRM_EXPORTS_DIR or run `make sample`.",
            allow_retries=False,
        )
    with warehouse.connect() as con:
        todo = exports_to_ingest(con, folders)

        def ingest_one(folder):
            result = ingest_export(
                con,
                folder,
                exports.bad_row_threshold,
                exports.currency,
                email_salt=exports.email_hash_salt,
            )
            context.log.info(
                f"Ingested export {folder.export_date}: "
                + ", ".join(f"{n}={t.rows_loaded}" for n, t in result.tables.items())
                + f"; quarantined {result.rows_quarantined} rows"
            )
            return result

        backlog = ingest_backlog(todo, ingest_one, config.skips(context.run_id))
        if backlog.blocking is not None:
            raise Failure(
                description=backlog.blocked_message(),
                metadata={
                    "refused_export": backlog.blocking.export_date.isoformat(),
                    "folder": str(backlog.blocking.folder.path),
                    "file": backlog.blocking.file,
                    "reason": backlog.blocking.reason,
                    "exports_waiting": [f.export_date.isoformat() for f in backlog.waiting],
                },
                allow_retries=False,
            )
        for warning in backlog.warnings():
            context.log.warning(warning)
        results = backlog.ingested
        record_resolutions(con, backlog, context.run_id)
        forget_refusals(con, [r.export_date for r in results])
        erasure = apply_erasure(con)
        if erasure["customers_erased"]:
            context.log.info(f"Erasure requests applied: {erasure}")
        retention = warehouse.retention_days()
        dropped = {}
        if retention is not None and (as_of_now := latest_export_date(con)) is not None:
            dropped = drop_superseded_versions(con, as_of_now, retention)
            context.log.info(
                f"Retention ({retention} days): dropped superseded raw versions {dropped or 'none'}"
            )
        counts = {
            t: con.execute(f"SELECT count(*) FROM raw.{t}").fetchone()[0]
            for t in [*TABLES, "customer_identities", "refused_exports", "record_presence"]
        }
        quarantined = con.execute("SELECT count(*) FROM raw.quarantine").fetchone()[0]
        as_of = latest_export_date(con)
    summary = {
        "as_of_date": as_of.isoformat() if as_of else None,
        "exports_ingested": MetadataValue.json([r.as_metadata() for r in results]),
        "rows_quarantined_this_run": sum(r.rows_quarantined for r in results),
        "refused_exports_settled": MetadataValue.md(
            "\n".join(f"- {w}" for w in backlog.warnings()) or "none"
        ),
        "customers_erased": erasure["customers_erased"],
        "superseded_versions_dropped": MetadataValue.json(dropped),
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


def dbt_stage(
    project: DbtProject, name: str, select: str, exclude: str, doc: str
) -> AssetsDefinition:
    """One `dbt build` over a slice of the project, in the run's build database.

    `warehouse` is requested so the run's lock and build copy exist before dbt starts.
    """

    def build(
        context: AssetExecutionContext,
        dbt: NightlyDbtResource,
        warehouse: WarehouseResource,
        config: DbtBuildConfig,
    ):
        yield from dbt.cli(
            dbt.build_args(warehouse.build_path, config.full_refresh),
            context=context,
            target_path=_dbt_target(warehouse, name),
        ).stream()

    build.__doc__ = doc
    return dbt_assets(
        manifest=project.manifest_path,
        select=select,
        exclude=exclude,
        dagster_dbt_translator=translator,
        name=name,
        project=project,
        pool=WAREHOUSE_POOL,
    )(build)


def dbt_stages(project: DbtProject) -> tuple[AssetsDefinition, AssetsDefinition]:
    """Every model in exactly one stage: the second is the models that read the
    segmentation (tag post_segmentation, given by folder in dbt_project.yml), the first
    everything else."""
    features = dbt_stage(
        project,
        "dbt_customer_features",
        "fqn:*",
        POST_SEGMENTATION_SELECT,
        "Staging models, intermediate features and marts.customer_features (with their data "
        "tests): every model that does not read the segmentation.",
    )
    roi = dbt_stage(
        project,
        "dbt_referral_roi",
        POST_SEGMENTATION_SELECT,
        "",
        "Referral ROI by segment (overall and monthly), top referrers, segment history.",
    )
    return features, roi


# dagster-dbt's key of the model marts.customer_features (its schema and name).
CUSTOMER_FEATURES_KEY = AssetKey(["marts", "customer_features"])
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
def customer_segmentation(
    context: AssetExecutionContext,
    warehouse: WarehouseResource,
    segmentation: SegmentationResource,
):
    """Cluster customers with stable segment ids (see pipelines/segmentation/)."""
    # Imported here: scikit-learn sets KMP_* environment variables when imported.
    from pipelines.segmentation import run_segmentation

    with warehouse.connect() as con:
        meta = run_segmentation(con, segmentation.config())
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


def publish_asset(roi: AssetsDefinition) -> AssetsDefinition:
    """The asset that swaps the build in, after the last dbt stage and the segmentation."""

    @asset(
        key=AssetKey(["warehouse", "published"]),
        deps=[*roi.keys, *SEGMENT_KEYS, *HISTORY_KEYS],
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
        compaction = warehouse.publish()
        path = warehouse.published_path
        context.log.info(f"Published {path} (as of {as_of}); data quality: {quality}")
        if compaction is not None:
            context.log.info(compaction.describe())
        return MaterializeResult(
            metadata={
                "path": str(path),
                "store_bytes": warehouse.store_path.stat().st_size,
                "analysts_file_bytes": path.stat().st_size,
                "store_compacted": compaction.describe() if compaction else "no",
                "as_of_date": as_of.isoformat() if as_of else None,
                **quality,
            }
        )

    return published_warehouse


def nightly_assets(project: DbtProject) -> list[AssetsDefinition]:
    """Every asset of the run except the report, in run order."""
    features, roi = dbt_stages(project)
    return [ingest_exports, features, customer_segmentation, roi, publish_asset(roi)]


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
