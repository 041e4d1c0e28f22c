"""Spark as the night's engine (WAREHOUSE_ENGINE=spark): see engine.py and docs/spark.md."""
