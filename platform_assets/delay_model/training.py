"""Training the delay model from a point-in-time training set, with the platform's tabular network."""

from __future__ import annotations

from typing import TYPE_CHECKING

from platform_assets.delay_model.spec import MODEL
from platform_assets.ml.params import DEFAULT_PARAMS, TrainParams

if TYPE_CHECKING:
    import polars as pl

    from platform_assets.ml.training import EpochCallback, FitResult


def fit(
    frame: pl.DataFrame,
    params: TrainParams = DEFAULT_PARAMS,
    on_epoch_end: EpochCallback | None = None,
) -> FitResult:
    """Train on rows of training_set (one per flight, label is_delayed); the same as the asset does."""
    from platform_assets.ml.training import fit as fit_tabular

    return fit_tabular(frame, params, MODEL.columns, on_epoch_end)
