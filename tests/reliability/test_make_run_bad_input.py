"""`make run` on a bad raw file stops with the file, column and rule, trains nothing, and leaves no
process behind."""

from __future__ import annotations

import time
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from tests.reliability.make_run import left_behind, replay_env, small_world, start_replay

pytestmark = pytest.mark.e2e
MONTHS = ["2013-01", "2013-02", "2013-03", "2013-04", "2013-05", "2013-06"]


def test_a_bad_flights_file_stops_the_replay_naming_file_column_and_rule(
    tmp_path: Path, real_data_dir: Path, real_flights_text: pl.DataFrame
) -> None:
    raw = small_world(tmp_path, real_data_dir, real_flights_text.gather_every(8).drop("dep_time"))
    home = tmp_path / "home"
    replay = start_replay(replay_env(home, raw), MONTHS)
    out, err = replay.communicate(timeout=900)
    assert replay.returncode == 1, out[-2000:] + err[-2000:]
    landed = home / "landing" / "incoming" / "flights_2013-01_2013-05.csv"
    assert "monthly_pipeline 2013-01..2013-05: run" in err and "ended FAILURE" in err, err[-2000:]
    assert (
        f"raw_flights: platform_assets.data.raw_files.RawFileError: file {landed}, "
        "column 'dep_time': rule 'required column' broken" in err
    ), err[-2000:]
    with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
        runs = instance.get_runs()
        jobs = {(r.job_name, r.tags.get("dagster/partition", "range")): r.status for r in runs}
        # Every run was queued by the instance's run coordinator, then launched by its launcher.
        for run in runs:
            enqueued = instance.get_records_for_run(run.run_id, of_type=dg.DagsterEventType.RUN_ENQUEUED).records
            assert len(enqueued) == 1, run.job_name
    assert jobs[("reference_tables", "range")] == dg.DagsterRunStatus.SUCCESS
    assert jobs[("monthly_pipeline", "range")] == dg.DagsterRunStatus.FAILURE
    # No model trained: the first model waits for its months to be built.
    assert not [job for job, _ in jobs if job.endswith("_train_and_promote")]
    deadline = time.monotonic() + 30
    while left_behind(home) and time.monotonic() < deadline:
        time.sleep(1)
    assert left_behind(home) == []
