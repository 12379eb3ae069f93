"""Cancellation: training set, model, gate, champion, monthly scores and drift report."""

from platform_assets.cancellation_model.spec import MODEL
from platform_assets.lib.k8s import training_op_tags
from platform_assets.lib.models.assets import (
    build_drift_report_asset,
    build_predictions_asset,
    build_training_assets,
    build_training_set_asset,
)

GROUP = "cancellation"

cancellation_training_set = build_training_set_asset(
    MODEL, name="cancellation_training_set", group=GROUP
)
cancellation_model, cancellation_evaluation, cancellation_champion = build_training_assets(
    MODEL,
    training_set="cancellation_training_set",
    model="cancellation_model",
    evaluation="cancellation_evaluation",
    champion="cancellation_champion",
    group=GROUP,
    gate_check="cancellation_gate",
    op_tags=training_op_tags(),
)
cancellation_predictions = build_predictions_asset(
    MODEL, name="cancellation_predictions", group=GROUP, champion="cancellation_champion"
)
cancellation_drift_report = build_drift_report_asset(
    MODEL, name="cancellation_drift_report", group=GROUP, predictions="cancellation_predictions"
)
