"""A failed nightly run raises an alert with the root cause, posted to a local webhook."""

from __future__ import annotations

import json
import shutil
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import duckdb
import pytest
from dagster import DagsterEventType, DagsterInstance, build_run_status_sensor_context
from dagster._utils.error import serializable_error_info_from_exc_info

from pipelines.alerts import AlertWebhook, nightly_failure_alert, root_cause
from pipelines.resources import PublishedWarehouse
from tests.pipeline_runner import run_job

FIXTURE = Path(__file__).parent / "fixtures" / "hand_export"


class _Capture(BaseHTTPRequestHandler):
    bodies: list[dict] = []

    def do_POST(self):  # noqa: N802 - http.server API
        length = int(self.headers["Content-Length"])
        _Capture.bodies.append(json.loads(self.rfile.read(length)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):  # keep test output quiet
        pass


def test_failed_run_posts_its_root_cause(tmp_path):
    shutil.copytree(FIXTURE, tmp_path / "exports")
    (tmp_path / "exports" / "2026-11-21" / "referrals.csv").unlink()
    server = HTTPServer(("127.0.0.1", 0), _Capture)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with DagsterInstance.ephemeral() as instance:
            result = run_job(tmp_path / "exports", tmp_path / "w.duckdb", instance=instance)
            assert not result.success
            failure = next(
                e for e in result.all_events if e.event_type == DagsterEventType.RUN_FAILURE
            )
            url = f"http://127.0.0.1:{server.server_port}/hook"
            context = build_run_status_sensor_context(
                sensor_name="nightly_failure_alert",
                dagster_event=failure,
                dagster_instance=instance,
                dagster_run=result.dagster_run,
                resources={
                    "alerts": AlertWebhook(url=url),
                    "published": PublishedWarehouse(path=str(tmp_path / "w.duckdb")),
                },
            ).for_run_failure()
            nightly_failure_alert(context)
    finally:
        server.shutdown()
    (body,) = _Capture.bodies
    assert body["job"] == "nightly_ingest"  # the refusal ends the night in its ingest run
    assert body["run_id"] == result.run_id
    assert body["error"].startswith(
        f"step ingest_exports: Export {tmp_path / 'exports' / '2026-11-21'} refused: "
        "referrals.csv: required file missing (full export). It blocks every later "
    )
    assert body["published_as_of"] is None  # the first night failed: nothing published yet
    assert body["export_date"] == "2026-11-21"  # the run's tag: the night it was for
    assert body["text"] == (
        f"nightly_ingest failed (run {result.run_id[:8]}, export 2026-11-21), nothing "
        f"published; analysts still see data as of none (nothing published yet): {body['error']}"
    )


def _error_info(exc: BaseException):
    try:
        raise RuntimeError("step failed") from exc
    except RuntimeError:
        return serializable_error_info_from_exc_info(sys.exc_info())


def test_out_of_memory_names_the_setting_to_raise():
    """The 10M benchmark once failed this way; the alert should say what to change."""
    con = duckdb.connect(config={"memory_limit": "20MB", "threads": 1})
    with pytest.raises(duckdb.OutOfMemoryException) as caught:
        con.execute("SELECT count(DISTINCT i::VARCHAR || 'x') FROM range(20000000) t(i)")
    cause = root_cause(_error_info(caught.value))
    assert cause.startswith("Out of Memory Error: ")
    assert cause.endswith(
        "raise WAREHOUSE_MEMORY_LIMIT (ingest, checks, segmentation) or "
        "DBT_DUCKDB_MEMORY_LIMIT (dbt); see README]"
    )
    assert root_cause(_error_info(ValueError("plain"))) == "plain"


def test_no_webhook_means_the_alert_is_only_logged():
    assert AlertWebhook().post({"text": "x"}) is None
    assert AlertWebhook(url="  ").post({"text": "x"}) is None
