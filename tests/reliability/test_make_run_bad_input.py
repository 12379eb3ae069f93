"""`make run` on a bad raw file stops at once with the file, column and rule, and runs nothing it
had queued behind the failed run."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg

from platform_assets.lib.models.keys import ModelKeys
from platform_assets.ml.declaration import declared_models

REPO_ROOT = Path(__file__).resolve().parents[2]
SETTINGS = ("PLATFORM_", "MLFLOW_", "FEATURES_ROOT", "RAW_DATA_DIR", "DAGSTER_HOME", "DBT_")


def test_a_bad_flights_file_stops_the_replay_naming_file_column_and_rule(tmp_path: Path, real_data_dir: Path) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    for name in ("weather.csv", "planes.csv", "airports.csv", "airlines.csv"):
        shutil.copy(real_data_dir / name, raw / name)
    (raw / "flights.csv").write_text("year,month,day\n2013,1,1\n")  # most columns missing
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(SETTINGS)}
    env.update(PLATFORM_HOME=str(home), RAW_DATA_DIR=str(raw))
    made = subprocess.run(
        [sys.executable, "-m", "platform_assets", "run", "--months", "2013-01", "2013-02", "2013-03",
         "2013-04", "2013-05", "2013-06", "2013-07"],
        env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600,
    )
    assert made.returncode == 1, made.stdout[-2000:] + made.stderr[-2000:]
    assert "2013-01..2013-05: run" in made.stderr and "ended FAILURE" in made.stderr
    assert (
        f"raw_flights: platform_assets.data.raw_files.RawFileError: file {raw / 'flights.csv'}, "
        "column 'dep_time': rule 'required column' broken" in made.stderr
    ), made.stderr[-2000:]
    with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
        runs = {(r.job_name, r.tags.get("dagster/partition", "first months")): r.status for r in instance.get_runs()}
    assert runs[("reference_tables", "first months")] == dg.DagsterRunStatus.SUCCESS
    assert runs[("monthly_pipeline", "first months")] == dg.DagsterRunStatus.FAILURE
    # The months queued behind it never ran: canceled, not executed and not left Queued.
    assert runs[("monthly_pipeline", "2013-06")] == runs[("monthly_pipeline", "2013-07")] == dg.DagsterRunStatus.CANCELED
    with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
        [july] = [r for r in instance.get_runs() if r.tags.get("dagster/partition") == "2013-07"]
        reasons = [e.message for e in instance.all_logs(july.run_id) if e.dagster_event and e.dagster_event.event_type_value == "PIPELINE_CANCELED"]
    assert reasons and "(monthly_pipeline), queued before it, ended FAILURE" in reasons[0], reasons
    # No model's training job ran (delay_train_and_promote, cancellation_train_and_promote).
    train_jobs = {ModelKeys(d.key_prefix).train_job for d in declared_models().values()}
    assert "delay_train_and_promote" in train_jobs
    assert not any(job in train_jobs for job, _ in runs)
