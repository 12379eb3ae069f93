"""The second prediction target end to end, from its declaration (defs/models/cancellation/defs.yaml):
training set, model, gate, champion, monthly scores and drift report, on the same tables as the
delay model."""

from __future__ import annotations

import dagster as dg
import polars as pl
from mlflow import MlflowClient

from platform_assets.lib.models.keys import ModelKeys
from platform_assets.ml.declaration import declared
from platform_assets.ml.registry import CHAMPION, alias_version
from platform_assets.paths import PlatformPaths
from tests.models.conftest import (
    FAST_TRAINING,
    HOLDOUT,
    TRAIN_END,
    TRAIN_START,
    metadata,
    model_assets,
)

WINDOW = {"start_month": TRAIN_START, "end_month": TRAIN_END}
MODEL, DELAY = declared("cancellation").spec, declared("delay").spec
KEYS = ModelKeys("cancellation")
ASSETS = list(model_assets("cancellation").values())


def test_cancellation_model_trains_gates_promotes_scores_and_reports(home, resources) -> None:
    training = dg.materialize(
        ASSETS,
        selection=[a.key for a in ASSETS[:5]],
        resources=resources,
        run_config=dg.RunConfig(
            ops={
                KEYS.op("training_set"): {"config": WINDOW},
                KEYS.op("model"): {"config": {**WINDOW, **FAST_TRAINING}},
            }
        ),
    )
    assert training.success
    paths = PlatformPaths(home)
    training_set = pl.read_parquet(paths.training_set_file(TRAIN_START, TRAIN_END, KEYS.name("training_set")))
    # Every flight has a cancellation outcome; the delay label is not in this model's rows.
    assert training_set[MODEL.label].null_count() == 0 and DELAY.label not in training_set.columns
    base_rate = training_set[MODEL.label].mean()
    assert 0.01 < base_rate < 0.08

    evaluation = metadata(training, "cancellation/evaluation")
    [check] = training.get_asset_check_evaluations()
    assert check.check_name == "promotion_gate" and check.asset_key == KEYS.evaluation and check.passed
    # Rain drives the synthetic cancellations: the model must find it on the unseen month.
    assert evaluation["candidate_auc"] > 0.65 > evaluation["base_rate_auc"]
    assert evaluation["candidate_log_loss"] < evaluation["base_rate_log_loss"]

    client = MlflowClient(tracking_uri=f"sqlite:///{home / 'mlflow' / 'mlflow.db'}")
    assert str(alias_version(client, CHAMPION, MODEL.name).version) == "1"
    # Its own registered model: the delay model's registry is untouched.
    assert client.search_model_versions(f"name='{DELAY.name}'") == []
    version = client.get_model_version(MODEL.name, "1")
    assert version.tags["feature_service"] == MODEL.feature_service
    assert version.tags["label"] == MODEL.label

    scoring = dg.materialize(
        ASSETS, selection=[a.key for a in ASSETS[5:]], resources=resources, partition_key=HOLDOUT
    )
    assert scoring.success
    scores = pl.read_parquet(paths.predictions_file(HOLDOUT, KEYS.name("predictions")))
    assert set(scores["model_name"]) == {MODEL.name} and set(scores["model_version"]) == {"1"}
    assert scores[MODEL.prediction].is_between(0, 1).all()
    drift = metadata(scoring, "cancellation/drift_report")
    assert drift["model_version"] == "1" and drift["auc"] > 0.65
    assert (paths.drift_report_dir(HOLDOUT, KEYS.name("drift_report")) / "drift_report.html").stat().st_size > 10_000
