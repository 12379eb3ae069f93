"""The landing sensor on a temporary landing folder: what it requests, under which run keys, and that
a file landed again with the same content starts nothing; then the real daemon on the real code
location (e2e)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from platform_assets.defs.ingestion.sensor import landing_sensor
from platform_assets.defs.pipeline.jobs import PIPELINE_LANE
from platform_assets.lib.resources import PlatformPathsResource, RawSourceResource
from platform_assets.replay.feeder import Feeder

REPO_ROOT = Path(__file__).resolve().parents[2]


def evaluate(instance: dg.DagsterInstance, incoming: Path, cursor: str | None) -> dg.SensorResult:
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"raw_source": RawSourceResource(landing_dir=str(incoming))}
    )
    return landing_sensor(context)


def ran(instance: dg.DagsterInstance, request: dg.RunRequest, status: dg.DagsterRunStatus = dg.DagsterRunStatus.SUCCESS) -> None:
    """The run the sensor requested, ended with `status` (as the daemon would have recorded it)."""
    tags = {**request.tags, **PIPELINE_LANE}
    if request.partition_key:
        tags["dagster/partition"] = request.partition_key
    instance.add_run(dg.DagsterRun(job_name=request.job_name, run_id=str(uuid.uuid4()), status=status, tags=tags))


def requests(instance: dg.DagsterInstance, incoming: Path, cursor: str | None = None) -> tuple[list[dg.RunRequest], str]:
    """Evaluate, let each requested run succeed, evaluate again, until nothing more is requested."""
    made: list[dg.RunRequest] = []
    while (result := evaluate(instance, incoming, cursor)).run_requests:
        [request] = result.run_requests  # one pipeline run at a time
        ran(instance, request)
        made.append(request)
        cursor = result.cursor
    return made, result.cursor


def short(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def source_files(request: dg.RunRequest) -> dict[str, str]:
    return {op: Path(c["config"]["source_file"]).name for op, c in request.run_config["ops"].items()}


@pytest.fixture
def feeder(tmp_path: Path, raw_dir: Path) -> Feeder:
    return Feeder(raw_dir, tmp_path / "incoming")


def test_reference_tables_then_one_run_per_landed_month(feeder: Feeder) -> None:
    incoming = feeder.landing_dir
    feeder.land_reference()
    feeder.land_months(["2013-01"])
    feeder.land_months(["2013-02"])
    with dg.DagsterInstance.ephemeral() as instance:
        (reference, january, february), _ = requests(instance, incoming)
    assert reference.job_name == "reference_tables"
    assert reference.run_key == (
        f"reference-planes.csv@{short(incoming / 'planes.csv')}|airports.csv@{short(incoming / 'airports.csv')}"
        f"|airlines.csv@{short(incoming / 'airlines.csv')}"
    )
    assert reference.run_config == {
        "ops": {f"raw_{t}": {"config": {"source_file": str(incoming / f"{t}.csv")}} for t in ("planes", "airports", "airlines")}
    }
    assert reference.tags["platform/landed_files"] == "planes.csv,airports.csv,airlines.csv"
    assert (january.job_name, january.partition_key) == ("monthly_pipeline", "2013-01")
    flights, weather = incoming / "flights_2013-01.csv", incoming / "weather_2013-01.csv"
    assert january.run_key == f"months-2013-01-flights_2013-01.csv@{short(flights)}|weather_2013-01.csv@{short(weather)}"
    assert january.run_config == {
        "ops": {"raw_flights": {"config": {"source_file": str(flights)}}, "raw_weather": {"config": {"source_file": str(weather)}}}
    }
    assert january.tags["platform/landed_files"] == "flights_2013-01.csv,weather_2013-01.csv"
    assert (february.partition_key, source_files(february)) == (
        "2013-02", {"raw_flights": "flights_2013-02.csv", "raw_weather": "weather_2013-02.csv"}
    )


def test_the_requested_run_config_fits_the_jobs() -> None:
    from platform_assets.definitions import defs

    config = {"ops": {"raw_flights": {"config": {"source_file": "/x/flights_2013-01.csv"}}, "raw_weather": {"config": {"source_file": "w.csv"}}}}
    dg.validate_run_config(defs.resolve_job_def("monthly_pipeline"), config)
    reference = {"ops": {f"raw_{t}": {"config": {"source_file": f"{t}.csv"}} for t in ("planes", "airports", "airlines")}}
    dg.validate_run_config(defs.resolve_job_def("reference_tables"), reference)
    for job in ("monthly_pipeline", "reference_tables"):
        assert defs.resolve_job_def(job).tags["platform/lane"] == "pipeline"


def test_a_whole_year_file_is_one_run_over_its_months(tmp_path: Path, raw_dir: Path) -> None:
    incoming = tmp_path / "incoming"
    Feeder(raw_dir, incoming).land_reference()
    incoming.joinpath("flights.csv").write_bytes((raw_dir / "flights.csv").read_bytes())
    incoming.joinpath("weather.csv").write_bytes((raw_dir / "weather.csv").read_bytes())
    with dg.DagsterInstance.ephemeral() as instance:
        (_, year), _ = requests(instance, incoming)
    # the small raw folder holds flights for January to March; weather for the whole year
    assert year.partition_key is None
    assert year.tags["dagster/asset_partition_range_start"] == "2013-01"
    assert year.tags["dagster/asset_partition_range_end"] == "2013-03"
    assert year.run_key.startswith("months-2013-01..2013-03-flights.csv@")


def test_the_cursor_remembers_what_was_requested(feeder: Feeder) -> None:
    incoming = feeder.landing_dir
    feeder.land_reference()
    feeder.land_months(["2013-01"])
    with dg.DagsterInstance.ephemeral() as instance:
        first, cursor = requests(instance, incoming)
        assert len(first) == 2
        # landed again, same content: new mtimes, nothing to run
        feeder.land_reference()
        feeder.land_months(["2013-01"])
        again = evaluate(instance, incoming, cursor)
        assert again.run_requests == []
        assert again.skip_reason.skip_message == (
            f"{incoming}: airlines.csv, airports.csv, flights_2013-01.csv, planes.csv, weather_2013-01.csv; "
            "already requested from the same files: 2013-01"
        )
        # a lost cursor plans the same runs under the same run keys: Dagster starts none of them twice
        with dg.DagsterInstance.ephemeral() as fresh:
            assert [r.run_key for r in requests(fresh, incoming)[0]] == [r.run_key for r in first]

        flights = incoming / "flights_2013-01.csv"
        frame = pl.read_csv(flights, infer_schema=False)
        frame.head(frame.height - 1).write_csv(flights)
        changed = evaluate(instance, incoming, again.cursor)
        [request] = changed.run_requests
        assert request.partition_key == "2013-01" and request.run_key != first[1].run_key
        assert f"flights_2013-01.csv@{short(flights)}" in request.run_key
        assert evaluate(instance, incoming, changed.cursor).run_requests == []


def test_one_pipeline_run_at_a_time_and_nothing_built_on_a_failed_month(feeder: Feeder) -> None:
    incoming = feeder.landing_dir
    feeder.land_reference()
    for month in ("2013-01", "2013-02", "2013-03"):
        feeder.land_months([month])
    with dg.DagsterInstance.ephemeral() as instance:
        start = evaluate(instance, incoming, None)
        [reference] = start.run_requests
        ran(instance, reference, dg.DagsterRunStatus.STARTED)
        waiting = evaluate(instance, incoming, start.cursor)
        assert waiting.run_requests == [] and waiting.skip_reason.skip_message.startswith("waiting for run ")
        ran(instance, reference)
        first = evaluate(instance, incoming, waiting.cursor)
        [january] = first.run_requests
        ran(instance, january, dg.DagsterRunStatus.FAILURE)
        blocked = evaluate(instance, incoming, first.cursor)
        assert blocked.run_requests == []
        assert "ended FAILURE: land a corrected file for 2013-01 to go on" in blocked.skip_reason.skip_message
        # The corrected January lands: it runs, then February and March follow.
        flights = incoming / "flights_2013-01.csv"
        frame = pl.read_csv(flights, infer_schema=False)
        frame.head(frame.height - 1).write_csv(flights)
        made, _ = requests(instance, incoming, blocked.cursor)
        assert [r.partition_key for r in made] == ["2013-01", "2013-02", "2013-03"]
        assert made[0].run_key != january.run_key


def test_nothing_landed_is_a_skip_naming_the_folder(tmp_path: Path) -> None:
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    (incoming / ".flights_2013-01.csv.ab12.tmp").write_text("year,month\n")
    with dg.DagsterInstance.ephemeral() as instance:
        result = evaluate(instance, incoming, None)
    assert result.run_requests == []
    assert result.skip_reason.skip_message == (
        f"{incoming}: no raw file (ignored: .flights_2013-01.csv.ab12.tmp); "
        "months wait for the reference table(s) planes, airports, airlines"
    )


def test_the_requested_run_lands_the_landed_file(feeder: Feeder, platform_home: Path) -> None:
    """What a requested run executes: the raw assets read the landed files named in its config;
    a bad one fails naming file, column and rule."""
    from platform_assets.defs.ingestion.assets import raw_assets

    incoming = feeder.landing_dir
    feeder.land_reference()
    feeder.land_months(["2013-01"])
    with dg.DagsterInstance.ephemeral() as instance:
        (_, january), _ = requests(instance, incoming)
    resources = {"platform": PlatformPathsResource(home=str(platform_home)), "raw_source": RawSourceResource(landing_dir=str(incoming))}
    result = dg.materialize(
        raw_assets, selection=["raw_flights", "raw_weather"], partition_key="2013-01",
        run_config=january.run_config, resources=resources,
    )
    sources = {
        e.asset_key.to_user_string(): e.materialization.metadata["source_file"].value
        for e in result.get_asset_materialization_events()
    }
    assert sources == {
        "raw_flights": str((incoming / "flights_2013-01.csv").resolve()),
        "raw_weather": str((incoming / "weather_2013-01.csv").resolve()),
    }
    bad = incoming / "flights_2013-02.csv"
    pl.read_csv(feeder.land_months(["2013-02"])[0], infer_schema=False).drop("dep_time").write_csv(bad)
    failed = dg.materialize(
        raw_assets, selection=["raw_flights"], partition_key="2013-02", resources=resources, raise_on_error=False,
        run_config={"ops": {"raw_flights": {"config": {"source_file": bad.name}}}},  # relative: in the landing folder
    )
    [failure] = failed.get_step_failure_events()
    assert f"file {bad.resolve()}, column 'dep_time': rule 'required column' broken" in failure.step_failure_data.error.to_string()


# The run queue as the platform's instance configures it: one run of the pipeline lane at a time.
DAGSTER_YAML = """\
run_coordinator:
  module: dagster.core.run_coordinator
  class: QueuedRunCoordinator
  config:
    dequeue_interval_seconds: 1
    tag_concurrency_limits:
      - key: platform/lane
        limit: 1
telemetry:
  enabled: false
"""
SETTINGS = ("PLATFORM_", "MLFLOW_", "FEATURES_ROOT", "RAW_DATA_DIR", "DAGSTER_HOME", "DBT_")


def _wait(predicate: Callable[[], bool], timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; daemon log:\n{log.read_text()[-3000:]}")


def _sensor_ticks(instance: dg.DagsterInstance) -> list:
    states = [s for s in instance.all_instigator_state() if s.name == "landing_sensor"]
    return instance.get_ticks(states[0].instigator_origin_id, states[0].selector_id, limit=20) if states else []


def _monthly_runs(instance: dg.DagsterInstance) -> dict[str, dg.DagsterRun]:
    runs = instance.get_runs(filters=dg.RunsFilter(job_name="monthly_pipeline"))
    return {r.tags["dagster/partition"]: r for r in runs}


def _month_files(home: Path, month: str) -> dict[str, str]:
    """Every landed and validated file of a month's tables, by path, with its sha256."""
    lake = [home / "landing" / t / f"month={month}" for t in ("flights", "weather")]
    lake += [home / "lake" / "validated" / t / f"month={month}" for t in ("flights", "weather")]
    files = [f for folder in lake for f in sorted(folder.rglob("*")) if f.is_file()]
    return {str(f.relative_to(home)): hashlib.sha256(f.read_bytes()).hexdigest() for f in files}


@pytest.mark.e2e
def test_the_daemon_runs_each_landed_month_once_and_a_bad_file_fails_its_month_alone(
    tmp_path: Path, raw_dir: Path
) -> None:
    home, dagster_home = tmp_path / "platform", tmp_path / "dagster"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text(DAGSTER_YAML)
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text(
        "load_from:\n  - python_module:\n      module_name: platform_assets.definitions\n"
        f"      location_name: platform_assets\n      working_directory: {REPO_ROOT}\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(SETTINGS)}
    env.update(PLATFORM_HOME=str(home), DAGSTER_HOME=str(dagster_home), PLATFORM_SENSOR_INTERVAL_SECONDS="1")
    incoming = home / "landing" / "incoming"
    feeder = Feeder(raw_dir, incoming)
    feeder.land_reference()
    feeder.land_months(["2013-01"])
    log = tmp_path / "daemon.log"
    with log.open("w") as out:
        daemon = subprocess.Popen(
            [str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", str(workspace)],
            env=env, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT,
        )
    try:
        with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
            def finished(count: int) -> bool:
                runs = instance.get_runs()
                return len(runs) >= count and all(r.is_finished for r in runs)

            _wait(lambda: finished(2), 300, "the reference tables' and January's runs", log)
            [reference] = instance.get_runs(filters=dg.RunsFilter(job_name="reference_tables"))
            assert reference.status == dg.DagsterRunStatus.SUCCESS
            [(month, january)] = _monthly_runs(instance).items()
            assert month == "2013-01" and january.status == dg.DagsterRunStatus.SUCCESS
            assert january.tags["platform/landed_files"] == "flights_2013-01.csv,weather_2013-01.csv"
            assert january.tags["platform/lane"] == "pipeline"
            # one pipeline run at a time, in the order requested: the reference tables first
            assert instance.get_run_stats(january.run_id).start_time >= instance.get_run_stats(reference.run_id).end_time
            january_files = _month_files(home, "2013-01")
            assert len(january_files) >= 4

            # The same files landed again: two more ticks see them and start nothing.
            feeder.land_reference()
            feeder.land_months(["2013-01"])
            relanded = time.time()

            def ticks_after() -> list:
                return [t for t in _sensor_ticks(instance) if t.timestamp > relanded and t.status.value != "STARTED"]

            _wait(lambda: len(ticks_after()) >= 2, 120, "two sensor ticks after the files landed again", log)
            assert len(instance.get_runs()) == 2
            assert all(t.status.value == "SKIPPED" for t in ticks_after())
            assert "already requested from the same files: 2013-01" in ticks_after()[0].skip_reason

            # February with a flights file missing a required column: its run fails naming file,
            # column and rule; January's landed and validated files stay as they were.
            staging = Feeder(raw_dir, tmp_path / "staging")
            flights, weather = staging.land_months(["2013-02"])
            pl.read_csv(flights, infer_schema=False).drop("dep_time").write_csv(flights)
            os.replace(weather, incoming / weather.name)
            os.replace(flights, incoming / flights.name)
            _wait(lambda: "2013-02" in _monthly_runs(instance) and finished(3), 300, "February's run", log)
            february = _monthly_runs(instance)["2013-02"]
            assert february.status == dg.DagsterRunStatus.FAILURE
            failures = {
                e.step_key: e.dagster_event.step_failure_data.error.to_string()
                for e in instance.all_logs(february.run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
            }
            assert f"file {(incoming / 'flights_2013-02.csv').resolve()}, column 'dep_time': rule 'required column' broken" in failures["raw_flights"]
            assert len(instance.get_runs()) == 3
            assert _month_files(home, "2013-01") == january_files
    finally:
        daemon.terminate()
        try:
            daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            daemon.kill()
