"""Jobs over the asset graph: reference tables once, the monthly chain per month, training on demand."""

import dagster as dg

from platform_assets.lib.partitions import monthly_partitions

REFERENCE_TABLES = ("planes", "airports", "airlines")
TRAINING_ASSETS = ("training_set", "delay_model", "model_evaluation", "champion")

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
    partitions_def=monthly_partitions,
    description="One month: ingest, validate, build the warehouse, apply Feast and fill the online store.",
)

monthly_scoring_job = dg.define_asset_job(
    "monthly_scoring",
    selection=dg.AssetSelection.assets("flight_predictions", "drift_report"),
    partitions_def=monthly_partitions,
    description="Score one month with the champion and compare it with the champion's training data.",
)

train_and_promote_job = dg.define_asset_job(
    "train_and_promote",
    selection=dg.AssetSelection.assets(*TRAINING_ASSETS),
    tags={"platform/gpu": "true"},
    description="Training set for a window, train a candidate, evaluate it on the next month, promote if the gate passes.",
)

replay_summary_job = dg.define_asset_job(
    "replay_summary_job",
    selection=dg.AssetSelection.assets("replay_summary"),
    description="Tabulate the replay: drift-triggered retraining vs a frozen model vs monthly retraining.",
)
