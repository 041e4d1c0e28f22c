"""Dagster assets of the nightly run: ingest -> dbt features -> segments -> dbt ROI -> publish.

The dbt stages and the publish asset that waits for them are built from the dbt manifest,
so they are made by `nightly_assets(project)` when the definitions load, not at import.
Every setting comes from a resource (pipelines/resources.py, pipelines/dbt.py).
"""

import getpass
import hashlib
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Any

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetMaterialization,
    AssetObservation,
    AssetsDefinition,
    AssetSpec,
    Backoff,
    Config,
    DynamicPartitionsDefinition,
    Failure,
    MaterializeResult,
    MetadataValue,
    RetryPolicy,
    TableColumn,
    TableRecord,
    TableSchema,
    asset,
    multi_asset,
)
from dagster_dbt import DbtProject, dbt_assets
from pydantic import Field

from pipelines.catalog import MARTS_OWNERS, PIPELINE_OWNERS
from pipelines.dbt import (
    POST_SEGMENTATION_SELECT,
    POST_SEGMENTATION_TAG,
    NightlyDbtResource,
    SparkTarget,
    dbt_manifest,
    translator,
)
from pipelines.dbt_metadata import with_table_metadata
from pipelines.erasure import apply_erasure
from pipelines.ingest import discover_exports, exports_to_ingest, ingest_export
from pipelines.ingest.backlog import (
    REFUSED_ROWS_FILE,
    Backlog,
    Skip,
    bad_rows_of,
    forget_refusals,
    ingest_backlog,
    keep_refused_rows,
    record_resolutions,
    refusal_detail,
    refused_rows_query,
)
from pipelines.maintenance import drop_superseded_versions
from pipelines.publish import published_as_of
from pipelines.quality import raw_check_results, raw_check_specs, refused_check_results
from pipelines.resources import (
    DBT_PROJECT_DIR,
    ExportsResource,
    SegmentationResource,
    WarehouseResource,
)
from pipelines.schemas import TABLES
from pipelines.spark.engine import (
    SparkResource,
    land_sources,
    mirror_models,
    publish_views,
    stage_sources,
)
from pipelines.sql import rolled_back
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


# One partition per export folder (its YYYY-MM-DD name), for what is per export: the raw
# tables ingest writes. The export sensor, the schedule and `python -m pipelines.nightly`
# add them (pipelines/automation.py); the latest-state assets stay unpartitioned.
EXPORT_DATES = DynamicPartitionsDefinition(name="export_date")
EXPORT_DATE_TAG = "export_date"
# The ingest step logs how long its raw checks took (`make bench` splits the step by it).
RAW_CHECKS_TIME = "raw_checks_s"

# Columns (name -> Dagster type, in row order) of the tables in the assets' metadata.
REASONS_COLUMNS = {"reason": "string", "column": "string", "rows": "int"}
QUARANTINE_COLUMNS = {"file": "string", **REASONS_COLUMNS}
EXPORTS_COLUMNS = {
    "export_date": "string",
    "mode": "string",
    "rows_read": "int",
    "rows_loaded": "int",
    "rows_quarantined": "int",
}
RULES_COLUMNS = {"column": "string", "rule": "string", "rows": "int"}
SAMPLE_COLUMNS = {"line": "int", "column": "string", "value": "string", "rule": "string"}


def metadata_table(columns: dict[str, str], rows: Iterable[Sequence]) -> MetadataValue:
    """Rows (tuples in `columns`' order) as a table the Dagster UI shows."""
    return MetadataValue.table(
        [TableRecord(dict(zip(columns, row, strict=True))) for row in rows],
        schema=TableSchema(columns=[TableColumn(n, t) for n, t in columns.items()]),
    )


@multi_asset(
    specs=[
        AssetSpec(
            k,
            group_name="ingest",
            kinds={"duckdb", "python"},
            owners=PIPELINE_OWNERS,
            description=RAW_OTHERS.get(
                k.path[-1],
                f"Every version of each `{k.path[-1]}` record: what an export delivered new "
                "or changed (pipelines/ingest/versions.py).",
            ),
        )
        for k in RAW_KEYS
    ],
    check_specs=raw_check_specs(partitions_def=EXPORT_DATES),
    name="ingest_exports",
    partitions_def=EXPORT_DATES,
    retry_policy=IO_RETRY,
    pool=WAREHOUSE_POOL,
)
def ingest_exports(
    context: AssetExecutionContext,
    warehouse: WarehouseResource,
    exports: ExportsResource,
    config: IngestConfig,
):
    """Load new or changed export folders from CRM_EXPORTS_DIR into raw, quarantining bad rows,
    then check the newest export's rows with the raw GX suites.

    The run's partition names the export the night is for (the newest one, or the one an
    operator materialises from the UI); ingest still brings raw up to date with every
    pending folder, as the backlog rules say (pipelines/ingest/backlog.py).  The checks run
    in this step, not as steps of their own, so a refused export is one failed step and
    nothing else (docs/decisions.md, "Dagster operations")."""
    folders = discover_exports(exports.folder)
    if not folders:
        raise Failure(
            description=f"No export folder (named YYYY-MM-DD) in {exports.folder}; "
            "set CRM_EXPORTS_DIR or run `make sample`.",
            allow_retries=False,
        )
    night = _night_of_run(context, exports, folders)
    refused_rows = warehouse.store_path.parent / REFUSED_ROWS_FILE
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
            failure = _refusal_failure(con, backlog, exports, warehouse, refused_rows)
            _mark_still_current(context, failure)
            yield from refused_check_results(
                {k: getattr(v, "value", v) for k, v in failure.metadata.items()}
            )
            raise failure
        refused_rows.unlink(missing_ok=True)  # nothing blocks any more
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
        metadata = {
            key: _raw_table_metadata(con, key.path[-1], results)
            for key in RAW_KEYS
            if key.path[-1] not in ("exports", "quarantine")
        }
        metadata[AssetKey(["raw", "quarantine"])] = _quarantine_metadata(con, results)
        metadata[AssetKey(["raw", "exports"])] = {
            "dagster/row_count": _count(con, "exports"),
            "as_of_date": (as_of := latest_export_date(con)) and as_of.isoformat(),
            "exports_ingested": _exports_table(results),
            "refused_exports_settled": MetadataValue.md(
                "\n".join(f"- {w}" for w in backlog.warnings()) or "none"
            ),
        }
    customers = metadata[AssetKey(["raw", "customers"])]
    customers["customers_erased"] = erasure["customers_erased"]
    customers["erasure_rows_removed"] = MetadataValue.json(erasure)
    for table, rows in dropped.items():
        if AssetKey(["raw", table]) in metadata:
            metadata[AssetKey(["raw", table])]["superseded_versions_dropped"] = rows
    _report_other_exports(context, night, results, backlog)
    for key in RAW_KEYS:
        yield MaterializeResult(asset_key=key, metadata=metadata[key])
    started = time.monotonic()
    yield from raw_check_results(context.run_id, warehouse)
    context.log.info(f"{RAW_CHECKS_TIME}={time.monotonic() - started:.3f}")


def _night_of_run(
    context: AssetExecutionContext, exports: ExportsResource, folders: list
) -> str | None:
    """The run's export date (its partition), checked against the folders and put on the
    run as the tag `export_date` when the launcher did not (a UI materialisation)."""
    if not context.has_partition_key:
        return None
    night = context.partition_key
    if night not in {f.export_date.isoformat() for f in folders}:
        raise Failure(
            description=f"No export folder {night} in {exports.folder}: the partition "
            f"{night} names an export that is not there (moved or removed?). Put the folder "
            "back, or materialise the partition of an export that is.",
            metadata={"folder": str(exports.folder / night)},
            allow_retries=False,
        )
    if context.run.tags.get(EXPORT_DATE_TAG) != night:
        context.instance.add_run_tags(context.run_id, {EXPORT_DATE_TAG: night})
    return night


def _count(con, table: str) -> int:
    return con.execute(f"SELECT count(*) FROM raw.{table}").fetchone()[0]


def _tonight(results: list) -> list[date]:
    return [r.export_date for r in results]


def _raw_table_metadata(con, name: str, results: list) -> dict:
    """One raw table's own numbers: its rows, and what tonight's exports gave it."""
    metadata: dict = {"dagster/row_count": _count(con, name)}
    if name not in TABLES:
        return metadata
    mine = [r.tables[name] for r in results if name in r.tables]
    metadata["rows_loaded_this_run"] = sum(t.rows_loaded for t in mine)
    metadata["rows_quarantined_this_run"] = sum(t.rows_quarantined for t in mine)
    files = sorted({f for t in mine for f in t.file.split(", ") if f})
    rows = []
    if files and metadata["rows_quarantined_this_run"]:
        # A vendor file mapped onto several tables shows its quarantined rows under each.
        rows = con.execute(
            "SELECT reason, column_name, count(*) n FROM raw.quarantine "
            "WHERE list_contains(?, export_date) AND list_contains(?, file) "
            "GROUP BY ALL ORDER BY n DESC, 1, 2",
            [_tonight(results), files],
        ).fetchall()
    metadata["quarantine_reasons"] = metadata_table(
        REASONS_COLUMNS, [(r, c or "", n) for r, c, n in rows]
    )
    return metadata


def _quarantine_metadata(con, results: list) -> dict:
    rows = con.execute(
        "SELECT file, reason, column_name, count(*) n FROM raw.quarantine "
        "WHERE list_contains(?, export_date) GROUP BY ALL ORDER BY n DESC, 1, 2, 3",
        [_tonight(results)],
    ).fetchall()
    return {
        "dagster/row_count": _count(con, "quarantine"),
        "rows_quarantined_this_run": sum(r.rows_quarantined for r in results),
        "quarantine_reasons": metadata_table(
            QUARANTINE_COLUMNS, [(f, r, c or "", n) for f, r, c, n in rows]
        ),
    }


def _exports_table(results: list) -> MetadataValue:
    return metadata_table(
        EXPORTS_COLUMNS,
        [
            (
                r.export_date.isoformat(),
                r.mode,
                sum(t.rows_read for t in r.tables.values()),
                sum(t.rows_loaded for t in r.tables.values()),
                r.rows_quarantined,
            )
            for r in results
        ],
    )


def _report_other_exports(
    context: AssetExecutionContext, night: str | None, results: list, backlog: Backlog
) -> None:
    """Exports this run settled besides its own partition (late, held back, superseded)
    show on their own partitions: materialised, or observed as superseded/skipped."""
    known = {
        d
        for d in [r.export_date.isoformat() for r in results]
        + [r.export_date.isoformat() for r, _ in backlog.superseded + backlog.skipped]
        if d != night and context.instance.has_dynamic_partition(EXPORT_DATES.name, d)
    }
    for result in results:
        day = result.export_date.isoformat()
        if day not in known:
            continue
        for key in RAW_KEYS:
            table = result.tables.get(key.path[-1])
            context.log_event(
                AssetMaterialization(
                    asset_key=key,
                    partition=day,
                    metadata={
                        "ingested_by_run_for": night or "(no partition)",
                        **(
                            {
                                "rows_loaded": table.rows_loaded,
                                "rows_quarantined": table.rows_quarantined,
                            }
                            if table is not None
                            else {}
                        ),
                    },
                )
            )
    settled = [(r, f"superseded by full export {by}") for r, by in backlog.superseded]
    settled += [(r, f"skipped by {s.by}") for r, s in backlog.skipped]
    for refusal, what in settled:
        day = refusal.export_date.isoformat()
        if day in known:
            context.log_event(
                AssetObservation(
                    asset_key=AssetKey(["raw", "exports"]),
                    partition=day,
                    metadata={"refused": refusal.describe(), "resolution": what},
                )
            )


def _mark_still_current(context: AssetExecutionContext, failure: Failure) -> None:
    """Say on the assets analysts read that what they see is still the last published
    night's.  The refused ingest run does not plan them (the refresh runs only after an
    ingest that succeeded), so they keep their last materialisation; this observation
    says why there is none tonight, and from which date analysts' data is."""
    meta = failure.metadata
    for key in (PUBLISHED_KEY, ROI_KEY):
        context.log_event(
            AssetObservation(
                asset_key=key,
                metadata={
                    "status": "still current: tonight's export was refused, nothing published",
                    "analysts_see_as_of": meta["analysts_see_as_of"],
                    "refused_export": meta["refused_export"],
                    "refusal": failure.description or "",
                },
            )
        )


def _refusal_failure(
    con,
    backlog: Backlog,
    exports: ExportsResource,
    warehouse: WarehouseResource,
    refused_rows: Path,
) -> Failure:
    """The refusal as a Failure whose description tells the whole story and whose metadata
    (shown by the UI above the stack trace) gives folder, file, column, rule, counts,
    sample lines and the query for the refused rows.

    The detail comes from ingesting the refused export again with the threshold off, in a
    transaction rolled back afterwards; the bad rows are kept beside the store."""
    refusal = backlog.blocking
    assert refusal is not None
    with rolled_back(con):
        detail = refusal_detail(
            con,
            refusal,
            lambda folder: ingest_export(
                con, folder, 1.0, exports.currency, email_salt=exports.email_hash_salt
            ),
        )
        bad_rows = bad_rows_of(con, refusal) if detail.bad_rows else None
    if bad_rows is not None:
        keep_refused_rows(con, bad_rows, refused_rows)
    analysts_as_of = published_as_of(warehouse.published_path)
    column, rule = (detail.rules[0][0] or "", detail.rules[0][1]) if detail.rules else ("", "")
    metadata = {
        "refused_export": refusal.export_date.isoformat(),
        "mode": refusal.mode,
        "folder": str(refusal.folder.path),
        "file": refusal.file,
        "column": column,
        "rule": rule or refusal.reason,
        "reason": refusal.reason,
        "bad_rows": detail.bad_rows,
        "rows_read": detail.rows_read,
        "bad_share": round(detail.share, 4) if detail.share is not None else None,
        "threshold": exports.bad_row_threshold,
        "rules": metadata_table(RULES_COLUMNS, [(c or "", r, n) for c, r, n in detail.rules]),
        "sample_lines": metadata_table(
            SAMPLE_COLUMNS, [(line, c or "", v or "", r) for line, c, v, r in detail.sample]
        ),
        "refused_rows_query": MetadataValue.md(
            f"```\n{refused_rows_query(refused_rows, refusal)}\n```"
            if detail.bad_rows
            else "no bad rows: the export is refused as a whole (see reason)"
        ),
        "exports_waiting": ", ".join(f.export_date.isoformat() for f in backlog.waiting) or "none",
        "analysts_see_as_of": analysts_as_of.isoformat() if analysts_as_of else "nothing yet",
    }
    return Failure(
        description=backlog.blocked_message(analysts_as_of),
        metadata={k: v for k, v in metadata.items() if v is not None},
        allow_retries=False,
    )


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


def _stage_models(post_segmentation: bool) -> dict[str, Mapping[str, Any]]:
    """The models of a stage, by unique id (the stage's tag, as its selection says)."""
    nodes = dbt_manifest()["nodes"]
    return {
        unique_id: node
        for unique_id, node in nodes.items()
        if node["resource_type"] == "model"
        and (POST_SEGMENTATION_TAG in node.get("tags", [])) == post_segmentation
    }


def on_spark(
    context: AssetExecutionContext,
    spark: SparkResource,
    warehouse: WarehouseResource,
    post_segmentation: bool,
) -> SparkTarget:
    """Before a stage on Spark: the sources its models read, landed from the store and
    registered under the night's prefix (pipelines/spark/engine.py)."""
    store = warehouse.store_path.parent
    started = time.monotonic()
    session = spark.session(store)
    context.log.info(
        f"Spark Connect at {spark.url(store)} ready in {time.monotonic() - started:.1f} s"
        + ("" if spark.remote else " (a local server for this run)")
    )
    sources = stage_sources(dbt_manifest()["nodes"], _stage_models(post_segmentation))
    started = time.monotonic()
    with warehouse.connect(read_only=True) as con:
        landed = land_sources(session, con, spark.lake(store), spark.night_prefix, sources)
    context.log.info(
        f"Landed {len(landed)} tables for Spark ({sum(landed.values()):,} rows) under "
        f"{spark.night_prefix}* in {time.monotonic() - started:.1f} s"
    )
    return SparkTarget(url=spark.url(store), schema_prefix=spark.night_prefix)


def mirror_stage(
    context: AssetExecutionContext,
    spark: SparkResource,
    warehouse: WarehouseResource,
    post_segmentation: bool,
) -> None:
    """After a stage on Spark: the models it built, mirrored into the store (marts as
    tables, the others as views on Spark's files) for the steps that read them."""
    session = spark.session(warehouse.store_path.parent)
    prefix = spark.night_prefix
    built = [
        (node["schema"], node.get("alias") or node["name"])
        for node in _stage_models(post_segmentation).values()
    ]
    built = [(s, t) for s, t in built if session.catalog.tableExists(f"{prefix}{s}.{t}")]
    started = time.monotonic()
    with warehouse.connect() as con:
        mirror_models(session, con, built, prefix)
    context.log.info(
        f"Mirrored {len(built)} Spark tables into the store in {time.monotonic() - started:.1f} s"
    )


def dbt_stage(
    project: DbtProject,
    name: str,
    select: str,
    exclude: str,
    doc: str,
    post_segmentation: bool,
) -> AssetsDefinition:
    """One `dbt build` over a slice of the project, in the pipeline's store.

    `warehouse` is requested so the run holds the lock and the store exists before dbt starts.
    Each table's materialization carries its row count and columns, measured once dbt has
    exited (pipelines/dbt_metadata.py).  No `project=` for dbt_assets: it only puts the
    DbtProject object in every asset's metadata, where the UI shows "(unserializable)"; the
    resource knows the project's folder.
    """

    def build(
        context: AssetExecutionContext,
        dbt: NightlyDbtResource,
        warehouse: WarehouseResource,
        spark: SparkResource,
        config: DbtBuildConfig,
    ):
        target = None
        if spark.enabled:
            target = on_spark(context, spark, warehouse, post_segmentation)
            dbt = dbt.on_spark()
        invocation = dbt.cli(
            dbt.build_args(warehouse.store_path, config.full_refresh, target),
            context=context,
            target_path=_dbt_target(warehouse, name),
        )

        def finish() -> None:
            invocation.process.wait()
            if target is not None:
                mirror_stage(context, spark, warehouse, post_segmentation)

        yield from with_table_metadata(
            invocation.stream(),
            invocation.manifest["nodes"],
            lambda: warehouse.connect(read_only=True),
            finish,
            context.log,
            stop_dbt=invocation.process.terminate,
        )

    build.__doc__ = doc
    return dbt_assets(
        manifest=project.manifest_path,
        select=select,
        exclude=exclude,
        dagster_dbt_translator=translator,
        name=name,
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
        post_segmentation=False,
    )
    roi = dbt_stage(
        project,
        "dbt_referral_roi",
        POST_SEGMENTATION_SELECT,
        "",
        "Referral ROI by segment (overall and monthly), top referrers, segment history.",
        post_segmentation=True,
    )
    return features, roi


# dagster-dbt's key of the model marts.customer_features (its schema and name).
CUSTOMER_FEATURES_KEY = AssetKey(["marts", "customer_features"])
SEGMENT_KEYS = [AssetKey(["marts", "customer_segments"]), AssetKey(["marts", "segment_profiles"])]
HISTORY_KEYS = [
    AssetKey(["history", "segment_spells"]),
    AssetKey(["history", "segment_centroids"]),
    AssetKey(["history", "segment_runs"]),
]


def _segmentation_spec(key: AssetKey, owners: list[str], kinds: set[str], about: str) -> AssetSpec:
    """A table the segmentation step writes, from customer_features."""
    return AssetSpec(
        key,
        deps=[CUSTOMER_FEATURES_KEY],
        owners=owners,
        group_name="segments",
        kinds=kinds,
        description=about,
    )


@multi_asset(
    specs=[
        _segmentation_spec(
            SEGMENT_KEYS[0],
            MARTS_OWNERS,
            {"scikitlearn", "duckdb"},
            "One row per customer: segment_id and segment_name of the latest run.",
        ),
        _segmentation_spec(
            SEGMENT_KEYS[1],
            MARTS_OWNERS,
            {"scikitlearn", "duckdb"},
            "One row per segment: size, share, mean features, persona, incentive.",
        ),
        _segmentation_spec(
            HISTORY_KEYS[0],
            PIPELINE_OWNERS,
            {"duckdb"},
            "Every run's segment assignment as spells: one row per customer per unbroken "
            "stay in one segment over consecutive runs, [valid_from, valid_to), valid_to "
            "NULL while current. A run adds rows only for customers who moved, left or "
            "arrived.",
        ),
        _segmentation_spec(
            HISTORY_KEYS[1],
            PIPELINE_OWNERS,
            {"duckdb"},
            "Every run's centroids in original feature units, for stable ids.",
        ),
        _segmentation_spec(
            HISTORY_KEYS[2],
            PIPELINE_OWNERS,
            {"duckdb"},
            "How every run chose its k: k_scan (the full scan over k_min..k_max) or "
            "warm_start (the previous run's k, KMeans started from its centroids), and "
            "the date and silhouette of the last full scan.",
        ),
    ],
    name="customer_segmentation",
    pool=WAREHOUSE_POOL,
)
def customer_segmentation(
    context: AssetExecutionContext,
    warehouse: WarehouseResource,
    segmentation: SegmentationResource,
    spark: SparkResource,
):
    """Cluster customers with stable segment ids (see pipelines/segmentation/); on Spark,
    sampled, fitted and predicted there (pipelines/segmentation/spark.py)."""
    # Imported here: scikit-learn sets KMP_* environment variables when imported.
    from pipelines.segmentation import run_segmentation
    from pipelines.segmentation.warm import describe

    on_spark = {}
    if spark.enabled:
        on_spark = {
            "spark": spark.session(warehouse.store_path.parent),
            "spark_features": f"{spark.night_prefix}{'.'.join(CUSTOMER_FEATURES_KEY.path)}",
        }
    with warehouse.connect() as con:
        meta = run_segmentation(con, segmentation.config(), **on_spark)
        counts = {
            key: con.execute(f"SELECT count(*) FROM {'.'.join(key.path)}").fetchone()[0]
            for key in [*SEGMENT_KEYS, *HISTORY_KEYS]
        }
        segments = segment_table(con)
    # Which path chose k: "warm start from <date>: ..." or "k scan: ...".
    meta = {"k_choice_summary": describe(meta), **meta}
    context.log.info(f"Segmentation: {meta['k_choice_summary']}")
    # The model's numbers once, on the asset that describes the segments; the others say
    # how many rows they hold.
    profile = {
        "segments": segments,
        **{
            k: MetadataValue.json(v) if isinstance(v, dict | list) else v
            for k, v in meta.items()
            if v is not None
        },
    }
    for key in [*SEGMENT_KEYS, *HISTORY_KEYS]:
        own = {"dagster/row_count": counts[key], "as_of_date": meta.get("as_of_date")}
        yield MaterializeResult(
            asset_key=key, metadata={**own, **profile} if key == SEGMENT_KEYS[1] else own
        )


SEGMENTS_COLUMNS = {
    "segment_id": "string",
    "segment_name": "string",
    "customers": "int",
    "share": "float",
}
ROI_COLUMNS = {
    "segment_id": "string",
    "segment_name": "string",
    "customers": "int",
    "roi": "float",
    "referral_cac": "float",
    "paid_cac": "float",
    "low_confidence": "bool",
}
ROI_KEY = AssetKey(["marts", "referral_roi_by_segment"])
PUBLISHED_KEY = AssetKey(["warehouse", "published"])


def segment_table(con) -> MetadataValue:
    """marts.segment_profiles as the UI's table: id, name, customers, share."""
    rows = con.execute(
        "SELECT segment_id, segment_name, customers, share FROM marts.segment_profiles "
        "ORDER BY customers DESC, segment_id"
    ).fetchall()
    return metadata_table(SEGMENTS_COLUMNS, rows)


def roi_table(con) -> MetadataValue:
    """marts.referral_roi_by_segment as the UI's table (one row per segment and `all`);
    money as floats, None where the mart has NULL (no spend, nobody referred)."""

    def num(value) -> float | None:
        return None if value is None else float(value)

    rows = con.execute(
        "SELECT segment_id, segment_name, customers, roi, referral_cac, paid_cac, "
        "low_confidence FROM marts.referral_roi_by_segment ORDER BY segment_id"
    ).fetchall()
    return metadata_table(
        ROI_COLUMNS,
        [(i, n, c, num(roi), num(rc), num(pc), low) for i, n, c, roi, rc, pc, low in rows],
    )


def publish_asset(roi: AssetsDefinition) -> AssetsDefinition:
    """The asset that swaps the build in, after the last dbt stage and the segmentation."""

    @asset(
        key=PUBLISHED_KEY,
        deps=[*roi.keys, *SEGMENT_KEYS, *HISTORY_KEYS],
        group_name="publish",
        kinds={"duckdb"},
        owners=PIPELINE_OWNERS,
        pool=WAREHOUSE_POOL,
        description="Writes the analysts' warehouse (WAREHOUSE_PATH) anew from the store, "
        "marts and audit counts only, and renames it into place. "
        "Its metadata: the ROI per segment the analysts now see, and the data-quality counts.",
    )
    def published_warehouse(
        context: AssetExecutionContext, warehouse: WarehouseResource, spark: SparkResource
    ):
        """Analysts see the night's tables only from here on, all at once.

        The ROI per segment goes on this materialization (what was published) and, as an
        observation, on marts/referral_roi_by_segment, which dbt builds and whose metadata
        is dbt's: the mart's page then shows its numbers too."""
        with warehouse.connect(read_only=True) as con:
            quality = data_quality_summary(con)
            roi_by_segment = roi_table(con)
        as_of = warehouse.as_of_date()
        compaction = warehouse.publish()
        path = warehouse.published_path
        context.log.info(f"Published {path} (as of {as_of}); data quality: {quality}")
        if compaction is not None:
            context.log.info(compaction.describe())
        if spark.enabled:
            store = warehouse.store_path.parent
            dropped = publish_views(spark.session(store), spark.lake(store), spark.night_prefix)
            context.log.info(
                f"Spark: marts.* now read the tables of {spark.night_prefix}marts; "
                f"dropped the schemas of other nights: {', '.join(dropped) or 'none'}"
            )
        context.log_event(
            AssetObservation(
                asset_key=ROI_KEY,
                metadata={
                    "roi_by_segment": roi_by_segment,
                    "as_of_date": as_of.isoformat() if as_of else None,
                    "published_by": "warehouse/published",
                },
            )
        )
        return MaterializeResult(
            metadata={
                "roi_by_segment": roi_by_segment,
                "path": str(path),
                "store_bytes": warehouse.store_path.stat().st_size,
                "analysts_file_bytes": path.stat().st_size,
                "store_compacted": compaction.describe() if compaction else "no",
                "as_of_date": as_of.isoformat() if as_of else None,
                # WAREHOUSE_ENGINE, and on Spark the schemas the published marts came from
                "engine": "spark" if spark.enabled else "duckdb",
                **({"spark_schemas": f"{spark.night_prefix}*"} if spark.enabled else {}),
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
