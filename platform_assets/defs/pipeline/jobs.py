"""Jobs over the data pipeline: the reference tables once, each month from landing to Feast."""

import dagster as dg

REFERENCE_TABLES = ("planes", "airports", "airlines")
# The instance's run queue lets one run with this tag run at a time, so the landing sensor's runs
# (reference tables, then each month) execute in the order they were requested.
PIPELINE_LANE = {"platform/lane": "pipeline"}

reference_tables_job = dg.define_asset_job(
    "reference_tables",
    selection=dg.AssetSelection.assets(*REFERENCE_TABLES, *(f"raw_{t}" for t in REFERENCE_TABLES)),
    description="Land and validate the unpartitioned reference tables (planes, airports, airlines).",
    tags=PIPELINE_LANE,
)

monthly_pipeline_job = dg.define_asset_job(
    "monthly_pipeline",
    selection=(
        dg.AssetSelection.groups("ingestion", "validation", "warehouse")
        - dg.AssetSelection.assets(*REFERENCE_TABLES, *(f"raw_{t}" for t in REFERENCE_TABLES))
    )
    | dg.AssetSelection.assets("feast_registry", "online_features"),
    description="One month: ingest, validate, build the warehouse, apply Feast and fill the online store.",
    tags=PIPELINE_LANE,
)
