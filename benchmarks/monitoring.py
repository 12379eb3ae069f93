"""Drift reports: time inside the `delay/drift_report` asset per month next to bare Evidently on the same frames.

    .venv/bin/python benchmarks/monitoring.py [--home .platform]

Reads a PLATFORM_HOME where `make run` has replayed 2013. The asset's figure is its Dagster step
duration (reading the prediction log, loading the champion from MLflow and scoring the reference
sample, Evidently, writing HTML + JSON); the bare figure runs Evidently's Report on the same two
sampled frames and saves the same HTML + JSON. Also prints the replay's wall time from the runs.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import dagster as dg
import polars as pl


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--home", type=Path, default=Path(__file__).resolve().parents[1] / ".platform")
    args = parser.parse_args()
    home = args.home.resolve()
    os.environ["PLATFORM_HOME"] = str(home)
    os.environ["DAGSTER_HOME"] = str(home / "dagster")

    from evidently import BinaryClassification, DataDefinition, Dataset, Report
    from evidently.metrics import RocAuc, ValueDrift
    from evidently.presets import DataDriftPreset

    from platform_assets import constants
    from platform_assets.lib.resources import MLflowResource
    from platform_assets.lib.retrain_replay import KEYS, MODEL, PREDICTIONS
    from platform_assets.ml.drift import deterministic_sample
    from platform_assets.ml.pyfunc import predict_version
    from platform_assets.paths import PlatformPaths

    # The replayed model's drift reports (make run replays the delay model).
    TARGET, PREDICTION = MODEL.label, MODEL.prediction

    paths = PlatformPaths(home)
    client = MLflowResource(home=str(home)).client()
    with dg.DagsterInstance.get() as instance:
        records = instance.fetch_materializations(KEYS.drift_report, limit=100, ascending=True).records
        if not records:
            raise SystemExit(f"no drift reports in {home}: run `make run` first")
        step_seconds: dict[str, float] = {}
        for record in records:
            run_id = record.event_log_entry.run_id
            for event in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_SUCCESS):
                if event.step_key == KEYS.op("drift_report"):
                    step_seconds[record.asset_materialization.partition] = event.dagster_event.event_specific_data.duration_ms / 1000
        runs = instance.get_runs()
        replay_wall = max(r.end_time or 0 for r in [instance.get_run_record_by_id(x.run_id) for x in runs]) - min(
            instance.get_run_record_by_id(x.run_id).start_time or 1e20 for x in runs
        )

    print(f"{'month':<8}{'asset s':>9}{'bare Evidently s':>18}{'ratio':>7}")
    ratios = []
    with tempfile.TemporaryDirectory() as tmp:
        for month, asset_s in sorted(step_seconds.items()):
            scored = pl.read_parquet(paths.predictions_file(month, PREDICTIONS))
            version = scored["model_version"][0]
            model = client.get_model_version(MODEL.name, version)
            reference = pl.read_parquet(model.tags["training_data_path"])
            numeric, categorical = MODEL.columns.features(reference)
            current = deterministic_sample(scored.filter(pl.col(TARGET).is_not_null()).to_pandas(), constants.DRIFT_SAMPLE_ROWS)
            baseline = deterministic_sample(reference.to_pandas(), constants.DRIFT_SAMPLE_ROWS)
            baseline[PREDICTION] = predict_version(MODEL.name, version, baseline)
            columns = [*numeric, *categorical, TARGET, PREDICTION]
            frames = [f[columns].astype({TARGET: int, **{c: "string" for c in categorical}}) for f in (current, baseline)]
            started = time.perf_counter()
            definition = DataDefinition(
                numerical_columns=[*numeric, PREDICTION], categorical_columns=categorical,
                classification=[BinaryClassification(target=TARGET, prediction_probas=PREDICTION)],
            )
            snapshot = Report(
                [DataDriftPreset(columns=[*numeric, *categorical]), ValueDrift(column=PREDICTION), RocAuc()],
                include_tests=True,
            ).run(*(Dataset.from_pandas(f, data_definition=definition) for f in frames))
            snapshot.save_html(str(Path(tmp) / "r.html"))
            (Path(tmp) / "r.json").write_text(snapshot.json())
            bare = time.perf_counter() - started
            ratios.append(asset_s / bare)
            print(f"{month:<8}{asset_s:>9.2f}{bare:>18.2f}{asset_s / bare:>7.2f}")
    print(f"median ratio asset/bare: {sorted(ratios)[len(ratios) // 2]:.2f}x (goal <= 1.3x)")
    print(f"replay wall time (first run start to last run end): {replay_wall:.1f}s (goal <= 300s)")


if __name__ == "__main__":
    main()
