"""The pipeline's second engine: Spark (issue #12, "the same pipeline on Spark").

- `pipelines.spark.server`: a local Spark Connect server as a subprocess
  (`local_spark_connect`), and a client session on it (`connect`);
- `pipelines.spark.lake`: the DuckDB tables dbt reads as sources, landed as Parquet files
  (`land_duckdb_tables`) and registered as Spark tables (`register_parquet_tables`).

dbt reaches the server through its `spark` target (dbt_project/profiles.yml, method
`session`) when SPARK_REMOTE names it.  Nothing here is imported by the DuckDB pipeline,
and no module imports pyspark before a function needs it.
"""
