"""A code location for the daemon test: the real drift sensor and policy, light stand-ins for the rest.

`drift_report` materializes the metadata a real report carries; `training_set`/`delay_model` take the
same run config as the real retraining job and write down the window they were given.
"""

import json
import os
from pathlib import Path

import dagster as dg
from pydantic import Field

from platform_assets.defs.monitoring.resources import RetrainPolicy
from platform_assets.defs.monitoring.sensors import build_drift_retrain_sensor
from platform_assets.lib.partitions import monthly_partitions


class ReportMetadata(dg.Config):
    drift_share: float = Field(default=0.0, description="share of drifted features")
    auc_drop_significant: float = Field(
        default=-0.01, description="champion's held-out AUC minus the top of the month's 95% AUC interval"
    )


@dg.asset(partitions_def=monthly_partitions)
def drift_report(config: ReportMetadata) -> dg.MaterializeResult:
    """Stand-in drift report with the real report's decision metadata."""
    return dg.MaterializeResult(
        metadata={"drift_share": config.drift_share, "auc_drop_significant": config.auc_drop_significant}
    )


class Window(dg.Config):
    start_month: str = Field(description="first month")
    end_month: str = Field(description="last month")


@dg.asset
def training_set(config: Window) -> None:
    """Records the window the retraining run was given."""
    out = Path(os.environ["RETRAIN_MARKER_DIR"]) / f"{config.start_month}_{config.end_month}.json"
    out.write_text(json.dumps(config.model_dump()))


class Training(Window):
    hyperparameters: str = Field(default="config", description="'config' or 'champion'")


@dg.asset(deps=[training_set])
def delay_model(config: Training) -> None:
    """Stand-in for training: same config interface as the real asset."""


class Gate(dg.Config):
    min_auc_gain: float = Field(default=0.0, description="the gate's margin")


@dg.asset(deps=[delay_model])
def model_evaluation(config: Gate) -> None:
    """Stand-in for the gate: same config interface as the real asset."""


retrain = dg.define_asset_job("train_and_promote", selection=[training_set, delay_model, model_evaluation])

defs = dg.Definitions(
    assets=[drift_report, training_set, delay_model, model_evaluation],
    jobs=[retrain],
    sensors=[build_drift_retrain_sensor(retrain, minimum_interval_seconds=1)],
    # The drifted share as a trigger too, as a team may set it: these reports carry only a share.
    resources={"retrain_policy": RetrainPolicy(drift_share_threshold=0.75)},
)
