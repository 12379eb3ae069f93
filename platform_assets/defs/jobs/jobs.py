"""Jobs over the asset graph: the reference tables once, the monthly chain per month."""

import dagster as dg

from platform_assets.lib.partitions import monthly_partitions

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
    ),
    partitions_def=monthly_partitions,
    description="One month: ingest, validate, build the warehouse.",
)
