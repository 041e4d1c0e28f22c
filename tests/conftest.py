"""Shared test set-up: quiet telemetry, throw-away Dagster home, export-writing helpers."""

from __future__ import annotations

import os
import tempfile

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
os.environ["DAGSTER_HOME"] = tempfile.mkdtemp(prefix="dagster_home_")
os.environ.setdefault("REPORTS_DIR", tempfile.mkdtemp(prefix="reports_"))
