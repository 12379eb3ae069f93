"""The cancellation model's jobs: train and promote on a window; score and report a month."""

import dagster as dg

from platform_assets.lib.partitions import monthly_partitions

cancellation_train_and_promote = dg.define_asset_job(
    "cancellation_train_and_promote",
    selection=dg.AssetSelection.assets(
        "cancellation_training_set",
        "cancellation_model",
        "cancellation_evaluation",
        "cancellation_champion",
    ),
    tags={"platform/gpu": "true"},
    description="Training set for a window, train a cancellation candidate, gate it on the next "
    "month, promote it if the gate passes.",
)

cancellation_monthly_scoring = dg.define_asset_job(
    "cancellation_monthly_scoring",
    selection=dg.AssetSelection.assets("cancellation_predictions", "cancellation_drift_report"),
    partitions_def=monthly_partitions,
    description="Score one month with the cancellation champion and compare it with its training data.",
)
