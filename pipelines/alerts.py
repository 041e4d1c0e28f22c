"""Failure alerts for the people who operate the nightly run.

When nightly_refresh fails, the root cause (e.g. "Export … refused: orders.csv: …") is
logged and, if ALERT_WEBHOOK_URL is set, POSTed there as JSON (Slack-compatible `text`).
"""

import json
import os
import urllib.request

from dagster import DefaultSensorStatus, RunFailureSensorContext, run_failure_sensor

from pipelines.automation import nightly_refresh

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


def failure_summary(context: RunFailureSensorContext) -> dict[str, str]:
    """Job, run id and the root cause of the first failed step."""
    message = context.failure_event.message or "run failed"
    for event in context.get_step_failure_events():
        message = f"step {event.step_key}: {root_cause(event.step_failure_data.error)}"
        break
    run = context.dagster_run
    text = f"nightly_refresh failed (run {run.run_id[:8]}): {message}"
    return {"job": run.job_name, "run_id": run.run_id, "error": message, "text": text}


def post_webhook(url: str, payload: dict[str, str], timeout_s: float = 10.0) -> int:
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310
        return response.status


@run_failure_sensor(
    monitored_jobs=[nightly_refresh],
    default_status=DefaultSensorStatus.STOPPED,
    description="Logs the root cause of a failed nightly_refresh and POSTs it to "
    "ALERT_WEBHOOK_URL when set.",
)
def nightly_failure_alert(context: RunFailureSensorContext) -> None:
    summary = failure_summary(context)
    context.log.error(summary["text"])
    url = os.getenv("ALERT_WEBHOOK_URL")
    if url:
        post_webhook(url, summary)
