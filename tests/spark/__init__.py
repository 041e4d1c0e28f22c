"""Tests of the pipeline's Spark engine (pipelines/spark, dbt's `spark` target)."""
