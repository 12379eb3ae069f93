"""Drift reports: each month's features and predictions against the champion's training data."""

from platform_assets.delay_model.spec import MODEL
from platform_assets.lib.models.assets import build_drift_report_asset

drift_report = build_drift_report_asset(
    MODEL, name="drift_report", group="monitoring", predictions="flight_predictions"
)
