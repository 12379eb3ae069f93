"""Batch scores of each month's flights by the champion, traceable to a model version and its data."""

from platform_assets.delay_model.spec import MODEL
from platform_assets.lib.models.assets import build_predictions_asset

flight_predictions = build_predictions_asset(
    MODEL, name="flight_predictions", group="scoring", champion="champion"
)
