"""A model is one declaration: a third model's defs.yaml, with no Python edited, gets its whole
lifecycle: assets, gate check, jobs, sensor, schedules, its route on the model server, and the loop
itself (train, gate, promote, score, report, the sensor's decision) on the synthetic world."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pandas as pd
import polars as pl
import yaml

from platform_assets.lib.models import ModelLifecycle
from platform_assets.ml.declaration import MODELS_DIR, read_declaration
from platform_assets.ml.registry import CHAMPION, alias_version
from platform_assets.paths import PlatformPaths
from platform_assets.settings import REPO_ROOT
from tests.models.conftest import FAST_TRAINING, HOLDOUT, TRAIN_END, TRAIN_START, metadata


def write_late_model(models_dir: Path) -> Path:
    """A third model, as a team would add it: the delay declaration copied under a new name and
    prefix (same label column and feature service), with its own recipe and gate."""
    document = yaml.safe_load((MODELS_DIR / "delay" / "defs.yaml").read_text())
    document["attributes"].update(
        name="flight_late_model", key_prefix="late", experiment="flight_late",
        training={"start_month": TRAIN_START, "end_month": TRAIN_END, "holdout_months": 1, "recipe": FAST_TRAINING},
        # A policy that retrains on any report with a one-month window, so the synthetic quarter has
        # a retrain to decide: the trailing month before March is February.
        retrain={"auc_drop_threshold": -1.0, "window_months": 1, "min_auc_gain": -1.0, "refit": True, "sensor": "running"},
    )
    target = models_dir / "late" / "defs.yaml"
    target.parent.mkdir(parents=True)
    target.write_text(yaml.safe_dump(document, sort_keys=False))
    return target


def test_a_third_models_yaml_alone_adds_its_definitions_and_server_route(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(REPO_ROOT / "pyproject.toml", project)
    shutil.copytree(REPO_ROOT / "platform_assets", project / "platform_assets", ignore=shutil.ignore_patterns("__pycache__"))
    for shared in ("dbt_project", "feature_repo"):
        (project / shared).symlink_to(REPO_ROOT / shared)
    write_late_model(project / "platform_assets" / "defs" / "models")
    probe = (
        "import json, dagster as dg; from platform_assets.definitions import defs; "
        "from platform_assets.serving.server import served_models; "
        "from platform_assets.ml.declaration import MODELS_DIR; "
        "dg.Definitions.validate_loadable(defs); g = defs.resolve_asset_graph(); "
        "print(json.dumps({'assets': sorted(k.to_user_string() for k in g.get_all_asset_keys() if k.path[0] == 'late'), "
        "'checks': sorted(f'{k.asset_key.to_user_string()}:{k.name}' for k in g.asset_check_keys if k.asset_key.path[0] == 'late'), "
        "'jobs': sorted(j.name for j in defs.jobs if j.name.startswith('late_')), "
        "'sensors': sorted(s.name for s in defs.sensors if s.name.startswith('late_')), "
        "'schedules': sorted(s.name for s in defs.schedules if s.name.startswith('late_')), "
        "'served': sorted(d.name for d in served_models(MODELS_DIR))}))"
    )
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(project), "PLATFORM_HOME": str(tmp_path / "home")}
    out = subprocess.run([sys.executable, "-c", probe], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    found = json.loads(out.stdout.strip().splitlines()[-1])
    assert found == {
        "assets": [f"late/{a}" for a in ("champion", "drift_report", "evaluation", "model", "predictions", "refit", "training_set")],
        "checks": ["late/evaluation:promotion_gate"],
        "jobs": ["late_hyperparameter_search", "late_monthly_scoring", "late_train_and_promote"],
        "sensors": ["late_drift_retrain_sensor"],
        "schedules": ["late_monthly_scoring_schedule", "late_scheduled_retrain"],
        "served": ["flight_cancellation_model", "flight_delay_model", "flight_late_model"],
    }


def test_a_third_models_yaml_runs_its_whole_loop(home: Path, resources: dict, tmp_path: Path) -> None:
    declaration = read_declaration(write_late_model(tmp_path / "models"))
    component = ModelLifecycle(**declaration.model_dump())
    defs = component.build_defs(None)  # type: ignore[arg-type]  # builds from the declaration alone
    assets = list(defs.assets)  # type: ignore[arg-type]
    keys = component.keys
    with dg.DagsterInstance.ephemeral() as instance:
        training = dg.materialize(
            assets, selection=[keys.key(a) for a in ("training_set", "model", "evaluation", "refit", "champion")],
            resources=resources, instance=instance,
        )
        assert training.success
        # The declaration's window and recipe are the run's defaults: no run config was given.
        trained = metadata(training, "late/model")
        assert trained["training_window"] == f"{TRAIN_START}..{TRAIN_END}"
        assert trained["ensemble_size"] == FAST_TRAINING["ensemble_size"]
        [gate] = training.get_asset_check_evaluations()
        assert gate.check_name == "promotion_gate" and gate.asset_key == keys.evaluation and gate.passed
        client = resources["mlflow_store"].client()
        assert str(alias_version(client, CHAMPION, "flight_late_model").version) == "1"

        scoring = dg.materialize(
            assets, selection=[keys.predictions, keys.drift_report], resources=resources,
            instance=instance, partition_key=HOLDOUT,
        )
        assert scoring.success
        scores = pl.read_parquet(PlatformPaths(home).predictions_file(HOLDOUT, keys.name("predictions")))
        assert set(scores["model_name"]) == {"flight_late_model"}
        report = metadata(scoring, "late/drift_report")
        assert report["model_version"] == "1" and report["reference_window"] == f"{TRAIN_START}..{TRAIN_END}"

        # Its own sensor reads its own report, decides with its declared policy, and asks for the
        # retrain on the trailing window; that run trains, gates on March and promotes.
        [sensor] = defs.sensors  # type: ignore[misc]
        decided = sensor(dg.build_sensor_context(instance=instance))
        [request] = decided.run_requests
        assert request.tags["platform/model"] == "late" and request.tags["platform/drift_report_month"] == HOLDOUT
        assert request.run_config["ops"]["late__training_set"]["config"] == {"start_month": "2013-02", "end_month": "2013-02"}
        assert request.run_config["ops"]["late__refit"]["config"] == {"refit": True}
        retrain = dg.materialize(
            assets, selection=[keys.key(a) for a in ("training_set", "model", "evaluation", "refit", "champion")],
            resources=resources, instance=instance, run_config=request.run_config, tags=request.tags,
        )
        assert retrain.success
        assert metadata(retrain, "late/model")["hyperparameters_from"] == "champion v1's recipe"
        candidate = client.get_model_version("flight_late_model", "2")
        assert candidate.tags["training_window"] == "2013-02..2013-02"
        # The gate passed on March, so the recipe was refitted through March and the refit promoted:
        # it trains on the report's month, whose labels the report read, and on no later month.
        refit = client.get_model_version("flight_late_model", "3")
        assert refit.tags["training_window"] == f"{HOLDOUT}..{HOLDOUT}" and refit.tags["refit_of"] == "2"
        assert refit.tags["gated_window"] == "2013-02..2013-02" and candidate.tags["refit_version"] == "3"
        assert refit.tags["holdout_auc"] == candidate.tags["holdout_auc"]  # the drift rule's reference
        refit_rows = pl.read_parquet(refit.tags["training_data_path"])
        assert set(refit_rows["flight_month"]) == {HOLDOUT}
        assert refit_rows["event_timestamp"].max() < pd.Timestamp("2013-04-01", tz="UTC")
        assert str(alias_version(client, CHAMPION, "flight_late_model").version) == "3"
        assert metadata(retrain, "late/champion")["refit_of"] == "v2"
        card = (PlatformPaths(home).model_card("flight_late_model", "3")).read_text()
        assert "Refit of v2, trained on 2013-02..2013-02, gated on 2013-03" in card
        # The next tick, from the stored cursor: the report was read once, nothing new is asked for.
        again = sensor(dg.build_sensor_context(instance=instance, cursor=decided.cursor))
        assert isinstance(again, dg.SkipReason) and "no late/drift_report materialized after" in again.skip_message
