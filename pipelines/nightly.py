"""`make run`: make sure an export exists, run nightly_refresh once, print a summary."""

from __future__ import annotations

import os
import sys

import duckdb
from dagster import DagsterInstance

from pipelines.ingest import discover_exports
from pipelines.resources import Settings


def ensure_sample_export(settings: Settings) -> None:
    """Generate the sample export when CRM_EXPORTS_DIR holds no export folder."""
    if discover_exports(settings.exports_dir):
        return
    from pipelines.sample import generate_export

    customers = int(os.getenv("SAMPLE_CUSTOMERS", "5000"))
    folder = generate_export(settings.exports_dir, customers=customers)
    print(f"No export found: generated a sample export of {customers} customers in {folder}")


def run_nightly(settings: Settings) -> bool:
    """Run nightly_refresh in this process, recorded in DAGSTER_HOME when it is set."""
    from pipelines.definitions import make_definitions

    defs = make_definitions(settings)
    instance = DagsterInstance.get() if os.getenv("DAGSTER_HOME") else DagsterInstance.ephemeral()
    result = defs.resolve_job_def("nightly_refresh").execute_in_process(
        instance=instance, raise_on_error=False
    )
    if not result.success:
        for event in result.get_step_failure_events():
            err = event.step_failure_data.error
            while err is not None and err.cause is not None:  # the root cause says most
                err = err.cause
            detail = err.message.strip() if err else ""
            print(f"FAILED step {event.step_key}: {detail}", file=sys.stderr)
    return result.success


def print_summary(settings: Settings) -> None:
    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    try:
        as_of = con.execute("SELECT max(export_date) FROM raw.exports").fetchone()[0]
        print(f"\nWarehouse: {settings.warehouse_path}  (as of {as_of})")
        print("Tables:")
        for schema, table, rows in con.execute(
            "SELECT schema_name, table_name, estimated_size FROM duckdb_tables() "
            "WHERE schema_name IN ('marts') ORDER BY 1, 2"
        ).fetchall():
            print(f"  {schema}.{table:<34} {rows:>10,} rows")
        print("\nSegments:")
        rows = con.execute(
            """
            SELECT p.segment_id, p.segment_name, p.customers, p.share,
                   r.referrals_sent, r.referral_conversion_rate, r.roi, p.recommended_incentive
            FROM marts.segment_profiles p
            LEFT JOIN marts.referral_roi_by_segment r USING (segment_id)
            ORDER BY p.customers DESC, p.segment_id
            """
        ).fetchall()
        print(f"  {'id':<10}{'name':<26}{'customers':>10}{'share':>7}{'refs':>7}"
              f"{'conv':>7}{'roi':>8}  incentive")
        for sid, name, n, share, sent, conv, roi, incentive in rows:
            conv_s = f"{conv:.0%}" if conv is not None else "-"
            roi_s = f"{roi:.2f}" if roi is not None else "-"
            print(f"  {sid:<10}{name[:25]:<26}{n:>10,}{share:>7.1%}{(sent or 0):>7}"
                  f"{conv_s:>7}{roi_s:>8}  {incentive}")
    finally:
        con.close()


def main() -> int:
    settings = Settings.from_env()
    ensure_sample_export(settings)
    if not run_nightly(settings):
        print("nightly_refresh failed; the published warehouse was left as it was.",
              file=sys.stderr)
        return 1
    print_summary(settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
