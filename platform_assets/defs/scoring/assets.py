"""Batch scores of each month's flights by the champion, traceable to a model version and its data."""

from platform_assets.core.model_assets import build_predictions_asset
from platform_assets.delay_model.spec import MODEL

flight_predictions = build_predictions_asset(
    MODEL, name="flight_predictions", group="scoring", champion="champion"
)
