"""Shared test set-up: quiet telemetry, throw-away Dagster home and report folder.

In-process runs get their settings as explicit resources (tests/pipeline_runner.py); the
environment set here reaches the processes tests start (`python -m pipelines.nightly`,
dbt), which read it like `make run` does.
"""

from __future__ import annotations

import os
import tempfile

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
os.environ["DAGSTER_HOME"] = tempfile.mkdtemp(prefix="dagster_home_")
os.environ.setdefault("REPORTS_DIR", tempfile.mkdtemp(prefix="reports_"))
# Ingest (given explicit resources) and dbt (which reads the variable) hash emails with the
# same salt only if neither sees a developer's own.
os.environ.pop("EMAIL_HASH_SALT", None)
