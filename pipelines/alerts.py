"""Failure alerts for the people who operate the nightly run.

When a night's run (nightly_ingest or nightly_refresh) fails, the root cause (e.g. "Export …
refused: orders.csv: …") is logged and, if ALERT_WEBHOOK_URL is set, POSTed there as JSON
(Slack-compatible `text`).
"""

import json
import urllib.request
from datetime import date

from dagster import (
    ConfigurableResource,
    DefaultSensorStatus,
    RunFailureSensorContext,
    run_failure_sensor,
)

from pipelines.automation import nightly_ingest, nightly_refresh
from pipelines.resources import PublishedWarehouse

# DuckDB's own words when an operator hits its buffer pool; the fix is a setting.
OUT_OF_MEMORY = "Out of Memory Error"
MEMORY_HINT = (
    " [DuckDB ran out of its memory budget: raise WAREHOUSE_MEMORY_LIMIT (ingest, checks, "
    "segmentation) or DBT_DUCKDB_MEMORY_LIMIT (dbt); see README]"
)


def root_cause(error) -> str:
    """The innermost error's message, without the exception's class path in front; an
    out-of-memory error says which setting to raise."""
    while error is not None and error.cause is not None:
        error = error.cause
    if error is None:
        return ""
    head, sep, rest = error.message.strip().partition(": ")
    text = rest if sep and head.split(".")[-1] == error.cls_name else error.message.strip()
    return text + MEMORY_HINT if OUT_OF_MEMORY in text else text


def failure_summary(
    context: RunFailureSensorContext, analysts_as_of: date | None = None
) -> dict[str, str | None]:
    """Job, run id, the export date the run was for (its `export_date` tag), the root cause
    of the first failed step, and the date of the data the analysts still see (a night that
    did not publish leaves the previous tables)."""
    message = context.failure_event.message or "run failed"
    for event in context.get_step_failure_events():
        message = f"step {event.step_key}: {root_cause(event.step_failure_data.error)}"
        break
    run = context.dagster_run
    seen = analysts_as_of.isoformat() if analysts_as_of else "none (nothing published yet)"
    export_date = run.tags.get("export_date")
    night = f", export {export_date}" if export_date else ""
    text = (
        f"{run.job_name} failed (run {run.run_id[:8]}{night}), nothing published; analysts "
        f"still see data as of {seen}: {message}"
    )
    return {
        "job": run.job_name,
        "run_id": run.run_id,
        "export_date": export_date,
        "error": message,
        "published_as_of": analysts_as_of.isoformat() if analysts_as_of else None,
        "text": text,
    }


class AlertWebhook(ConfigurableResource):
    """Where failure alerts are POSTed (ALERT_WEBHOOK_URL); empty: only logged.

    Built from an EnvVar, so the URL (a secret for Slack) stays out of the run config."""

    url: str = ""

    def post(self, payload: dict[str, str | None]) -> int | None:
        return post_webhook(self.url, payload) if self.url.strip() else None


def post_webhook(url: str, payload: dict[str, str | None], timeout_s: float = 10.0) -> int:
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310
        return response.status


@run_failure_sensor(
    monitored_jobs=[nightly_ingest, nightly_refresh],
    # Running by default: a failure alert nobody switched on is no alert.  It never starts
    # a run, so a fresh `make dev` is not surprised by it.
    default_status=DefaultSensorStatus.RUNNING,
    description="Logs the root cause of a failed nightly_ingest or nightly_refresh, with its "
    "export date and the date of the data analysts still see, and POSTs it to "
    "ALERT_WEBHOOK_URL when set. Running by default.",
)
def nightly_failure_alert(
    context: RunFailureSensorContext, alerts: AlertWebhook, published: PublishedWarehouse
) -> None:
    summary = failure_summary(context, published.as_of_date())
    context.log.error(summary["text"])
    alerts.post(summary)
