from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta

import dagster as dg
import polars as pl
import pytest
from mlflow import MlflowClient

from platform_assets.events import file_sha256, flight_events
from platform_assets.ml.params import DEFAULT_PARAMS, TrainParams
from platform_assets.ml.registry import CANDIDATE, CHAMPION, PREVIOUS, alias_version, rollback
from platform_assets.months import MonthWindow
from platform_assets.paths import PlatformPaths
from tests.models.conftest import (
    DELAY,
    FAST_TRAINING,
    HOLDOUT,
    MODEL,
    TRAIN_END,
    TRAIN_START,
    metadata,
    model_assets,
    run_config,
    training_config,
)

DELAY_ASSETS = model_assets("delay")
delay_model, model_evaluation, refit, champion = (
    DELAY_ASSETS[a] for a in ("model", "evaluation", "refit", "champion")
)
flight_predictions = DELAY_ASSETS["predictions"]
# The refit step stays off (its default): the gated candidate itself is promoted.
ASSETS = [delay_model, model_evaluation, refit, champion]


def _train_and_gate(
    resources: dict, training: dict | None = None, evaluation: dict | None = None
) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        ASSETS,
        resources=resources,
        run_config=run_config(training, evaluation),
        raise_on_error=False,
    )


def _gate(result: dg.ExecuteInProcessResult) -> dg.AssetCheckEvaluation:
    [evaluation] = result.get_asset_check_evaluations()
    return evaluation


def _alias(client: MlflowClient, alias: str) -> str | None:
    version = alias_version(client, alias, MODEL.name)
    return None if version is None else str(version.version)


def _client(resources: dict) -> MlflowClient:
    return resources["mlflow_store"].client()


def test_first_model_is_tracked_evaluated_and_promoted(home, resources) -> None:
    result = _train_and_gate(resources)
    assert result.success
    trained = metadata(result, "delay/model")
    client = _client(resources)
    run = client.get_run(trained["mlflow_run_id"])
    source = PlatformPaths(home).training_set_file(TRAIN_START, TRAIN_END, DELAY.name("training_set"))
    assert run.data.tags["dagster_run_id"] == result.run_id
    assert run.data.tags["training_window"] == f"{TRAIN_START}..{TRAIN_END}"
    assert run.data.tags["training_data_sha256"] == file_sha256(source)
    assert run.data.params["learning_rate"] == str(DEFAULT_PARAMS.learning_rate)
    # one val_loss point per epoch that each ensemble member ran
    logged = [
        len(client.get_metric_history(run.info.run_id, f"member_{k}/val_loss"))
        for k in range(trained["ensemble_size"])
    ]
    assert trained["ensemble_size"] == FAST_TRAINING["ensemble_size"] == len(logged)
    assert sum(logged) == trained["epochs_run"] and min(logged) > 1

    evaluation = metadata(result, "delay/evaluation")
    assert evaluation["holdout_months"] == HOLDOUT and evaluation["champion_version"] == "none"
    assert evaluation["candidate_auc"] > evaluation["base_rate_auc"] + 0.1
    assert evaluation["candidate_log_loss"] < evaluation["base_rate_log_loss"]
    assert 0.6 < evaluation["hgb_baseline_auc"] <= 1.0
    assert _gate(result).passed

    version = trained["model_version"]
    assert _alias(client, CHAMPION) == version == "1"
    assert _alias(client, PREVIOUS) is None

    # The model card: in MLflow beside the evaluation, under reports/ for `make ui`, and linked.
    card = PlatformPaths(home).model_card(MODEL.name, version)
    assert evaluation["model_card"] == str(card)  # a path: these resources serve no reports URL
    page = card.read_text()
    assert f"{MODEL.name} v1" in page and "Gate: passed" in page
    assert f"{TRAIN_START}..{TRAIN_END}" in page and file_sha256(source) in page
    assert "<h2>Slices</h2>" in page and "hgb_auc" in page and 'src="data:image/png;base64,' in page
    slices = json.loads(
        (client.download_artifacts(evaluation["mlflow_run_id"], "slices.json", str(home)) and
         (home / "slices.json").read_text())
    )
    assert {s["slice"] for s in slices} == {"origin", "carrier", "month", "hour band"}
    # Each slice dimension partitions the held-out rows.
    for dimension in ("origin", "carrier", "month", "hour band"):
        assert sum(s["rows"] for s in slices if s["slice"] == dimension) == evaluation["holdout_rows"]
    artifacts = {a.path for a in client.list_artifacts(evaluation["mlflow_run_id"])}
    assert card.name in artifacts
    assert client.get_model_version(MODEL.name, version).tags["model_card"] == f"model_cards/{MODEL.name}/v1.html"


def test_gate_blocks_a_worse_candidate_then_promotes_a_good_one_and_rolls_back(resources) -> None:
    client = _client(resources)
    assert _train_and_gate(resources).success  # v1 champion

    # Barely trained: far worse than the champion on the held-out month. The gate working is not a
    # crash: the run succeeds, the check fails with the reason, the promotion is skipped.
    weak = _train_and_gate(resources, training_config(max_epochs=1, learning_rate=1e-6, seed=3))
    assert weak.success
    gate = _gate(weak)
    assert not gate.passed and gate.severity == dg.AssetCheckSeverity.ERROR
    assert f"on {HOLDOUT} is below champion v1's" in gate.description
    assert "does not beat the base-rate predictor" in gate.description
    assert gate.description.startswith("Keep the champion: AUC ")
    assert "delay/champion" not in {
        e.asset_key.to_user_string() for e in weak.get_asset_materialization_events()
    }
    # The champion step ran, succeeded, and chose not to materialize.
    assert DELAY.op("champion") in {e.step_key for e in weak.get_step_success_events()}
    assert _alias(client, CANDIDATE) == "2"
    assert _alias(client, CHAMPION) == "1"
    version = client.get_model_version(MODEL.name, "2")
    assert version.tags["gate_passed"] == "false"
    assert version.tags["gate_reason"] == gate.description
    # Running `champion` on its own cannot sneak the blocked candidate in either.
    alone = dg.materialize([champion], resources=resources, raise_on_error=False)
    assert alone.success and not alone.get_asset_materialization_events()
    assert _alias(client, CHAMPION) == "1"

    # Same data and config as v1 (equal AUC), so it passes with a tolerance and takes over.
    good = _train_and_gate(
        resources, training_config(retrain_unchanged=True), evaluation={"min_auc_gain": -0.01}
    )
    assert _gate(good).passed
    assert metadata(good, "delay/evaluation")["champion_version"] == "1"
    assert _alias(client, CHAMPION) == "3"
    assert _alias(client, PREVIOUS) == "1"

    restored = rollback(client, MODEL.name)
    assert restored.champion == "1"
    assert _alias(client, CHAMPION) == "1"
    assert _alias(client, PREVIOUS) is None
    assert client.get_model_version(MODEL.name, "3").tags["rolled_back"] == "true"
    with pytest.raises(RuntimeError, match="no 'previous'"):
        rollback(client, MODEL.name)


def test_retraining_same_window_and_config_reproduces_metrics(resources) -> None:
    first = dg.materialize([delay_model], resources=resources, run_config=run_config())
    second = dg.materialize(
        [delay_model], resources=resources, run_config=run_config(training_config(retrain_unchanged=True))
    )
    a, b = metadata(first, "delay/model"), metadata(second, "delay/model")
    assert a["model_version"] != b["model_version"]
    assert a["training_data_sha256"] == b["training_data_sha256"]
    assert a["best_epochs"] == b["best_epochs"]
    assert a["val_auc"] == pytest.approx(b["val_auc"], abs=1e-6)
    assert a["val_log_loss"] == pytest.approx(b["val_log_loss"], abs=1e-6)


def test_predictions_cover_every_flight_and_trace_back_to_raw_files(home, resources) -> None:
    assert _train_and_gate(resources).success
    result = dg.materialize([flight_predictions], resources=resources, partition_key=HOLDOUT)
    paths = PlatformPaths(home)
    predictions = pl.read_parquet(paths.predictions_file(HOLDOUT, DELAY.name("predictions")))
    events = flight_events(paths, [HOLDOUT], MODEL.label)
    # every flight of the month, cancelled ones (no label) included, once
    assert events["is_delayed"].null_count() > 0
    assert sorted(predictions["flight_id"].to_list()) == sorted(events["flight_id"].to_list())
    assert predictions["delay_probability"].is_between(0, 1).all()
    assert predictions["delay_probability"].std() > 0.01
    assert set(predictions["model_version"]) == {"1"}
    assert set(predictions["feature_service"]) == {MODEL.feature_service}
    meta = metadata(result, "delay/predictions")
    assert meta["dagster/row_count"] == events.height
    # Missing features are counted, feature by feature, never silently scored.
    numeric, categorical = MODEL.columns.features(predictions.drop("delay_probability"))
    nulls = predictions.select([*numeric, *categorical]).null_count().row(0, named=True)
    counted = {r.data["feature"]: r.data["rows_missing"] for r in meta["missing_features"].records}
    assert counted == {c: n for c, n in nulls.items() if n}
    assert counted, "the synthetic world has flights without weather or plane rows"
    assert meta["rows_with_missing_features"] == predictions.select(
        pl.any_horizontal(pl.col(list(counted)).is_null()).sum()
    ).item()

    # prediction -> model version -> training window + data hash -> raw files
    tags = (
        _client(resources)
        .get_model_version(MODEL.name, predictions["model_version"][0])
        .tags
    )
    assert tags["training_window"] == f"{TRAIN_START}..{TRAIN_END}"
    assert tags["training_data_sha256"] == file_sha256(
        paths.training_set_file(TRAIN_START, TRAIN_END, DELAY.name("training_set"))
    )
    assert tags["feature_service"] == MODEL.feature_service
    raw = json.loads(tags["raw_files"])
    assert {r["sha256"] for r in raw} == {f"sha-{m}" for m in (TRAIN_START, TRAIN_END)}
    assert {r["table"] for r in raw} == {"flights"}  # the synthetic world validated flights only
    # The training set is the training run's MLflow dataset input.
    version = _client(resources).get_model_version(MODEL.name, "1")
    [dataset] = _client(resources).get_run(version.run_id).inputs.dataset_inputs
    assert dataset.dataset.name == paths.training_set_file(TRAIN_START, TRAIN_END, DELAY.name("training_set")).name
    assert dataset.tags[0].value == "training"
    # ... and as a table the README's lineage query joins on model_version.
    lineage = pl.read_parquet(paths.model_lineage_file(MODEL.name, "1"))
    assert set(lineage["raw_sha256"]) == {f"sha-{m}" for m in (TRAIN_START, TRAIN_END)}
    assert set(lineage["validated_file"]) == {str(paths.validated_file("flights", m)) for m in (TRAIN_START, TRAIN_END)}

    # Each prediction names, per feature view, the timestamp of the feature row it was scored with:
    # that row's values are the prediction's, and no timestamp means the view's features are missing.
    weather = pl.read_parquet(paths.feature_table("feat_origin_weather")).with_columns(
        pl.col("event_timestamp").dt.convert_time_zone("UTC")
    )
    stamped = predictions.filter(pl.col("origin_weather_timestamp").is_not_null())
    assert stamped.height > 0
    assert (stamped["origin_weather_timestamp"] <= stamped["event_timestamp"]).all()
    assert (stamped["origin_weather_timestamp"] > stamped["event_timestamp"] - timedelta(hours=3)).all()
    rows = stamped.join(
        weather, left_on=["origin", "origin_weather_timestamp"], right_on=["origin", "event_timestamp"], suffix="_row"
    )
    assert rows.height == stamped.height
    assert (rows["temp"] == rows["temp_row"]).all()
    # The synthetic world has tail numbers without a plane row: no timestamp, no plane features.
    unstamped = predictions.filter(pl.col("plane_timestamp").is_null())
    assert 0 < unstamped.height <= counted["plane_age_years"]  # a plane row may lack its year too
    assert unstamped["plane_age_years"].null_count() == unstamped.height
    for view in ("carrier_daily", "route_daily"):
        assert predictions[f"{view}_timestamp"].null_count() < predictions.height

def test_replay_finds_the_registered_version_of_a_window_and_recipe(resources) -> None:
    from platform_assets.lib.retrain_replay import registered_version

    assert _train_and_gate(resources).success
    client = _client(resources)
    recipe = TrainParams(**FAST_TRAINING)
    # the device a model trained on does not change its recipe
    assert (
        registered_version(client, MonthWindow(TRAIN_START, TRAIN_END), replace(recipe, device="cuda")) == "1"
    )
    assert registered_version(client, MonthWindow(TRAIN_START, HOLDOUT), recipe) is None
    assert registered_version(client, MonthWindow(TRAIN_START, TRAIN_END), replace(recipe, seed=99)) is None
    assert (
        registered_version(client, MonthWindow(TRAIN_START, TRAIN_END), replace(recipe, ensemble_size=1))
        is None
    )


def test_unchanged_training_inputs_register_no_new_version(resources) -> None:
    client = _client(resources)
    first = metadata(dg.materialize([delay_model], resources=resources, run_config=run_config()), "delay/model")
    again = metadata(dg.materialize([delay_model], resources=resources, run_config=run_config()), "delay/model")
    assert again["reused_version"] is True and again["model_version"] == first["model_version"] == "1"
    assert len(client.search_model_versions(f"name='{MODEL.name}'")) == 1
    assert _alias(client, CANDIDATE) == "1"
    # A changed recipe is a changed input: a new version.
    changed = metadata(
        dg.materialize([delay_model], resources=resources, run_config=run_config(training_config(seed=11))),
        "delay/model",
    )
    assert changed["model_version"] == "2" and "reused_version" not in changed
    assert _alias(client, CANDIDATE) == "2"


def test_search_runs_seeded_optuna_trials_as_child_runs_and_trains_the_winner(resources) -> None:
    search = training_config(search=True, search_trials=4, search_hidden_widths=[16, 32])
    first = metadata(dg.materialize([delay_model], resources=resources, run_config=run_config(search)), "delay/model")
    client = _client(resources)
    parent = client.get_run(first["mlflow_run_id"])
    children = client.search_runs(
        [parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    assert len(children) == first["search_trials_run"] == 4
    assert {c.data.tags["optuna_state"] for c in children} <= {"COMPLETE", "PRUNED"}
    assert first["search_trials_complete"] + first["search_trials_pruned"] == 4
    # Trial 0 is the configured recipe; every trial trains one member and logs its epochs.
    trial0 = next(c for c in children if c.data.params["trial"] == "0")
    assert trial0.data.params["ensemble_size"] == "1"
    assert float(trial0.data.params["dropout"]) == DEFAULT_PARAMS.dropout
    # The registered model is the winner's recipe with the full ensemble, logged as the run's params.
    best = next(c for c in children if c.data.params["trial"] == str(first["search_best_trial"]))
    for name in ("learning_rate", "weight_decay", "dropout", "hidden_sizes"):
        assert parent.data.params[name] == best.data.params[name]
    assert parent.data.params["ensemble_size"] == str(FAST_TRAINING["ensemble_size"])
    assert parent.data.params["hidden_sizes"] in {"16", "32"}
    # Seeded: the same search on the same data picks the same recipe.
    again = metadata(dg.materialize([delay_model], resources=resources, run_config=run_config(search)), "delay/model")
    assert again["search_best_trial"] == first["search_best_trial"]
    assert again["hyperparameters"] == first["hyperparameters"]
    assert again["val_auc"] == first["val_auc"]


def test_a_retrain_can_keep_the_champions_hyperparameters(resources) -> None:
    assert _train_and_gate(resources, training_config(dropout=0.3, hidden_sizes=[16])).success
    client = _client(resources)
    assert _alias(client, CHAMPION) == "1"
    retrain = metadata(
        dg.materialize(
            [delay_model], resources=resources,
            run_config=run_config(training_config(hyperparameters="champion", seed=5)),
        ),
        "delay/model",
    )
    # The champion's whole recipe (its seed included, not the config's 5) on the champion's own
    # training set is the champion: no new version. With the config's recipe it would be one.
    assert retrain["reused_version"] is True and retrain["model_version"] == "1"
    params = client.get_run(retrain["mlflow_run_id"]).data.params
    assert (params["dropout"], params["hidden_sizes"], params["seed"]) == ("0.3", "16", str(DEFAULT_PARAMS.seed))
