"""Jobs over the data pipeline: the reference tables once, each month from landing to Feast."""

import dagster as dg

REFERENCE_TABLES = ("planes", "airports", "airlines")

reference_tables_job = dg.define_asset_job(
    "reference_tables",
    selection=dg.AssetSelection.assets(*REFERENCE_TABLES, *(f"raw_{t}" for t in REFERENCE_TABLES)),
    description="Land and validate the unpartitioned reference tables (planes, airports, airlines).",
)

monthly_pipeline_job = dg.define_asset_job(
    "monthly_pipeline",
    selection=(
        dg.AssetSelection.groups("ingestion", "validation", "warehouse")
        - dg.AssetSelection.assets(*REFERENCE_TABLES, *(f"raw_{t}" for t in REFERENCE_TABLES))
    )
    | dg.AssetSelection.assets("feast_registry", "online_features"),
    description="One month: ingest, validate, build the warehouse, apply Feast and fill the online store.",
)
