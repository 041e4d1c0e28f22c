# Two commands on a fresh machine: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

export CRM_EXPORTS_DIR ?= $(CURDIR)/data/exports
export WAREHOUSE_PATH ?= $(CURDIR)/data/warehouse.duckdb
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
export GX_ANALYTICS_ENABLED := false
export DAGSTER_DISABLE_TELEMETRY := 1
export DBT_SEND_ANONYMOUS_USAGE_STATS := false

.PHONY: install install-spark run test dev bench sample lint parse dagster-home clean docs sql

$(BIN)/python:
	$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 required"'
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(BIN)/python pyproject.toml requirements.lock
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c requirements.lock -e '.[dev,sql]'
	touch $@

install: $(VENV)/.installed

# The Spark engine (WAREHOUSE_ENGINE=spark, docs/spark.md): pyspark and dbt-spark, and a Java
# runtime from Debian's packages when none is on PATH. `make test` needs it (its Spark tests
# run the pipeline on a local Spark); `make run` on DuckDB does not.
$(VENV)/.installed-spark: $(VENV)/.installed
	$(BIN)/pip install --quiet -c requirements.lock -e '.[dev,sql,spark]'
	@command -v java >/dev/null || { \
		echo "Installing a Java runtime for Spark (openjdk-17-jre-headless)"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends \
			openjdk-17-jre-headless >/dev/null; }
	java -version 2>&1 | head -1
	touch $@

install-spark: $(VENV)/.installed-spark

dagster-home:
	@mkdir -p "$(DAGSTER_HOME)"
	@test -f "$(DAGSTER_HOME)/dagster.yaml" || cp deploy/dagster.yaml "$(DAGSTER_HOME)/dagster.yaml"

# dbt's manifest, read by Dagster when the definitions load (`dg dev` parses again itself);
# with a night's vars, as under `dg dev`, so every stage's dbt starts from its partial parse.
parse: install
	$(BIN)/python -m pipelines.dbt

# WAREHOUSE_ENGINE=spark make run: the same night with dbt on Spark (docs/spark.md).
run: install $(if $(filter spark,$(WAREHOUSE_ENGINE)),install-spark) dagster-home parse
	$(BIN)/python -m pipelines.nightly

test: install-spark dagster-home parse lint
	$(BIN)/pytest

# `dg dev` supersedes `dagster dev` (Dagster 1.13); it reads [tool.dg] in pyproject.toml.
# VIRTUAL_ENV: the venv dg finds in the project is the active one (no mismatch warning).
dev: install dagster-home parse
	VIRTUAL_ENV=$(CURDIR)/$(VENV) $(BIN)/dg dev

sample: install
	$(BIN)/python -m pipelines.sample --customers $${SAMPLE_CUSTOMERS:-5000} --layout $${SAMPLE_LAYOUT:-contract} --out "$(CRM_EXPORTS_DIR)"

# dbt docs (every model and column described) from a copy of the published warehouse.
docs: install parse
	@test -f "$(WAREHOUSE_PATH)" || { echo "No warehouse at $(WAREHOUSE_PATH): run make run first"; exit 1; }
	cp "$(WAREHOUSE_PATH)" dbt_project/target/docs.duckdb
	cd dbt_project && DBT_DUCKDB_PATH=$(CURDIR)/dbt_project/target/docs.duckdb ../$(BIN)/dbt docs generate --quiet --profiles-dir .
	@echo "dbt docs: dbt_project/target/index.html (serve: ../$(BIN)/python -m http.server -d dbt_project/target 8080)"

# The analysts' warehouse (WAREHOUSE_PATH), read-only, in the DuckDB CLI that `make install`
# installs (pipelines/sql_client.py; its arguments: `.venv/bin/python -m pipelines.sql_client
# -csv -c "SELECT ..."`).
sql: install
	@$(BIN)/python -m pipelines.sql_client

# ruff (lint and format) on Python, sqlfluff (dbt templater, style in .sqlfluff) on dbt SQL.
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/sqlfluff lint dbt_project

# Floor vs full nightly job on a cached generated export (N customers, default 1,000,000);
# see bench/README.md. Ends with one line: bench: customers=N job_s=... floor_s=... ratio=...
# SOAK=K: no floor, the job on K consecutive generated nights on one warehouse (soak: ...).
bench: install parse
	$(BIN)/python bench/run.py --customers $${N:-1000000} $${SOAK:+--soak $${SOAK}}

clean:
	rm -rf data .dagster_home dbt_project/target dbt_project/logs
