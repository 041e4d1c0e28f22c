"""Who answers for which assets, as the Dagster catalog shows it.

Owners are part of the definitions (Dagster reads them when the code location loads):
a team that installs the pipeline changes them here, in one place.
"""

# Ingest, staging, segmentation, publish: what the nightly run's operators answer for.
PIPELINE_OWNERS = ["team:data-engineering"]
# The marts analysts query: their definitions (docs/spec/metrics.md) are the analysts'.
MARTS_OWNERS = ["team:data-engineering", "team:analytics"]
