"""Batch scores of each month's flights by the champion, traceable to a model version and its data."""

from typing import Any

import dagster as dg
import numpy as np
import polars as pl
from pydantic import Field

from platform_assets.defs.training.evaluation import predict_version
from platform_assets.defs.training.resources import MLflowResource
from platform_assets.lib import constants
from platform_assets.lib.mlflow_utils import CHAMPION, alias_version
from platform_assets.lib.model_features import flight_events, point_in_time_features
from platform_assets.lib.partitions import monthly_partitions
from platform_assets.lib.paths import write_parquet_atomic
from platform_assets.lib.resources import PlatformPathsResource


class ScoringConfig(dg.Config):
    feature_service: str = Field(
        default=constants.FEATURE_SERVICE,
        description="Feast feature service the features are fetched through.",
    )
    model_alias: str = Field(
        default=CHAMPION, description="Registry alias of the version that scores."
    )


@dg.asset(
    group_name="scoring",
    partitions_def=monthly_partitions,
    deps=["champion", "flight_training_events"],
    kinds={"mlflow", "feast", "parquet"},
)
def flight_predictions(
    context: dg.AssetExecutionContext,
    config: ScoringConfig,
    platform: PlatformPathsResource,
    mlflow_store: MLflowResource,
    feast: dg.ResourceParam[Any],
) -> dg.MaterializeResult:
    """Delay probability for every validated flight of the month (cancelled too), scored by the champion."""
    month = context.partition_key
    paths = platform.paths
    version = alias_version(mlflow_store.client(), config.model_alias)
    if version is None:
        raise dg.Failure(
            f"{constants.MODEL_NAME} has no '{config.model_alias}' version: train and promote one first"
        )
    events = flight_events(paths, [month])
    if events.is_empty():
        raise dg.Failure(f"no flights for {month} in {paths.feature_tables}")
    features = point_in_time_features(feast.store(), events, config.feature_service)
    proba = predict_version(constants.MODEL_NAME, str(version.version), features)
    # The prediction log keeps the features and the label beside each score: drift reports and
    # audits read exactly what the model saw.
    predictions = pl.from_pandas(features).with_columns(
        pl.col("flight_id").cast(pl.String),
        pl.lit(month).alias("flight_month"),
        pl.Series("delay_probability", proba),
        pl.lit(constants.MODEL_NAME).alias("model_name"),
        pl.lit(str(version.version)).alias("model_version"),
        pl.lit(config.model_alias).alias("model_alias"),
        pl.lit(config.feature_service).alias("feature_service"),
        pl.lit(version.tags.get("training_window", "")).alias("training_window"),
        pl.lit(context.run.run_id).alias("dagster_run_id"),
    )
    target = paths.predictions_file(month)
    write_parquet_atomic(predictions, target)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": predictions.height,
            "model_version": str(version.version),
            "model_uri": f"models:/{constants.MODEL_NAME}/{version.version}",
            "training_window": version.tags.get("training_window", ""),
            "feature_service": config.feature_service,
            "mean_delay_probability": float(np.mean(proba)),
            "share_above_half": float(np.mean(proba > 0.5)),
            "cancelled_or_unlabelled": int(events["is_delayed"].null_count())
            if "is_delayed" in events.columns
            else 0,
            "path": dg.MetadataValue.path(str(target)),
        }
    )
