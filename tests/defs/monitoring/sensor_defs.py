"""A code location for the daemon test: a model's real drift sensor and policy, light stand-ins for
the rest, under the model's key prefix (`delay`).

`delay/drift_report` materializes the metadata a real report carries; `delay/training_set` and
`delay/model` take the same run config as the real retraining job and write down the window they
were given.
"""

import json
import os
from pathlib import Path

import dagster as dg
from pydantic import Field

from platform_assets.lib.models.keys import ModelKeys
from platform_assets.lib.models.sensor import build_drift_retrain_sensor
from platform_assets.lib.partitions import monthly_partitions
from platform_assets.ml.policy import RetrainPolicy

KEYS = ModelKeys("delay")


class ReportMetadata(dg.Config):
    drift_share: float = Field(default=0.0, description="share of drifted features")
    auc_drop_significant: float = Field(
        default=-0.01, description="champion's held-out AUC minus the top of the month's 95% AUC interval"
    )


@dg.asset(key=KEYS.drift_report, partitions_def=monthly_partitions)
def drift_report(config: ReportMetadata) -> dg.MaterializeResult:
    """Stand-in drift report with the real report's decision metadata."""
    return dg.MaterializeResult(
        metadata={"drift_share": config.drift_share, "auc_drop_significant": config.auc_drop_significant}
    )


class Window(dg.Config):
    start_month: str = Field(description="first month")
    end_month: str = Field(description="last month")


@dg.asset(key=KEYS.training_set)
def training_set(config: Window) -> None:
    """Records the window the retraining run was given."""
    out = Path(os.environ["RETRAIN_MARKER_DIR"]) / f"{config.start_month}_{config.end_month}.json"
    out.write_text(json.dumps(config.model_dump()))


class Training(Window):
    hyperparameters: str = Field(default="config", description="'config' or 'champion'")


@dg.asset(key=KEYS.model, deps=[training_set])
def model(config: Training) -> None:
    """Stand-in for training: same config interface as the real asset."""


class Gate(dg.Config):
    min_auc_gain: float = Field(default=0.0, description="the gate's margin")


@dg.asset(key=KEYS.evaluation, deps=[model])
def evaluation(config: Gate) -> None:
    """Stand-in for the gate: same config interface as the real asset."""


class Refit(dg.Config):
    refit: bool = Field(default=False, description="refit through the gate's months")


@dg.asset(key=KEYS.refit, deps=[evaluation])
def refit(config: Refit) -> None:
    """Stand-in for the refit: same config interface as the real asset."""


retrain = dg.define_asset_job(KEYS.train_job, selection=[training_set, model, evaluation, refit])
# The drifted share as a trigger too, as a team may set it: these reports carry only a share.
POLICY = RetrainPolicy(drift_share_threshold=0.75)

defs = dg.Definitions(
    assets=[drift_report, training_set, model, evaluation, refit],
    jobs=[retrain],
    sensors=[build_drift_retrain_sensor(KEYS, POLICY, KEYS.train_job, dg.DefaultSensorStatus.RUNNING)],
)
