"""The Dagster UI after a small replay, as a user clicking through sees it (headless Chromium).

The fixture replays January-June 2013 on an eighth of the flights with `python -m platform_assets
run`, the command `make run` calls. Its policy retrains on every report (drift share threshold 0)
and its gate asks a retrain for an AUC gain of 0.5, so the one retrain (after June's report) is
rejected. The test then serves a copy of that PLATFORM_HOME with `dagster-webserver` and the reports
server `make ui` starts, and checks what the issue promised: the job's Runs tab lists the runs, the
rejection is a failed check on a successful run, the drift report link opens the report, and asset
pages show pictures.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from platform_assets.lib.models.keys import ModelKeys
from platform_assets.settings import REPO_ROOT
from tests.conftest import write_csv

# The replayed model (make run replays the delay model): its jobs, sensor, assets and report files.
DELAY = ModelKeys("delay")

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
MONTHS = ["2013-01", "2013-02", "2013-03", "2013-04", "2013-05", "2013-06"]
BIN = Path(sys.executable).parent

pytestmark = pytest.mark.e2e
# As root in a closed network: no sandbox, and none of Chromium's background connections.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def clean_environ() -> dict[str, str]:
    """This process's environment without the platform's settings: earlier tests leave some behind
    (mlflow.set_tracking_uri writes MLFLOW_TRACKING_URI), and the replay must use only its own home."""
    settings = ("PLATFORM_", "MLFLOW_", "FEATURES_ROOT", "RAW_DATA_DIR", "DAGSTER_HOME", "DBT_")
    return {k: v for k, v in os.environ.items() if not k.startswith(settings)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"{process.args[0]} exited with {process.returncode} before serving {url}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"{url} did not answer within {timeout}s")


@pytest.fixture(scope="module")
def replay(tmp_path_factory: pytest.TempPathFactory, real_data_dir: Path, real_flights_text: pl.DataFrame) -> dict:
    """A small replay's PLATFORM_HOME, copied, and the environment it was made with."""
    root = tmp_path_factory.mktemp("ui")
    raw = root / "raw"
    raw.mkdir()
    for name in ("weather.csv", "planes.csv", "airports.csv", "airlines.csv"):
        shutil.copy(real_data_dir / name, raw / name)
    write_csv(real_flights_text.gather_every(8), raw / "flights.csv")
    reports_port = free_port()
    env = {
        **clean_environ(),
        "PLATFORM_HOME": str(root / "made"),
        "RAW_DATA_DIR": str(raw),
        "PLATFORM_REPORTS_URL": f"http://127.0.0.1:{reports_port}",
        "PLATFORM_REPLAY_PORT": str(free_port()),  # the replay's own dagster dev
    }
    made = subprocess.run(
        [sys.executable, "-m", "platform_assets", "run", "--months", *MONTHS, "--models", "delay", "cancellation",
         "--drift-share-threshold", "0", "--min-auc-gain", "0.5"],
        env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=1500,
    )
    assert made.returncode == 0, made.stdout[-3000:] + made.stderr[-3000:]
    assert "gate kept the champion" in made.stdout, made.stdout
    home = root / "home"
    shutil.copytree(root / "made", home)  # the UI reads a copy: what a user browsing a replay sees
    return {"home": home, "reports_port": reports_port, "stdout": made.stdout}


@pytest.fixture(scope="module")
def servers(replay: dict) -> Iterator[str]:
    home: Path = replay["home"]
    port = free_port()
    env = {
        **clean_environ(),
        "PLATFORM_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster"),
        "PLATFORM_REPORTS_URL": f"http://127.0.0.1:{replay['reports_port']}",
    }
    from platform_assets.paths import PlatformPaths
    from platform_assets.ui import reports_server, stop

    started = [
        subprocess.Popen(
            [str(BIN / "dagster-webserver"), "-w", str(REPO_ROOT / "workspace.yaml"), "-h", "127.0.0.1", "-p", str(port)],
            env=env, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        ),
        subprocess.Popen(
            reports_server(PlatformPaths(home), f"http://127.0.0.1:{replay['reports_port']}"),
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        ),
    ]
    try:
        wait_http(f"http://127.0.0.1:{replay['reports_port']}/", 30, started[1])
        wait_http(f"http://127.0.0.1:{port}/server_info", 120, started[0])
        yield f"http://127.0.0.1:{port}"
    finally:
        # make ui's own shutdown (a server still up 30 s after SIGTERM was seen once under load).
        stop(started)


@pytest.fixture(scope="module")
def page(servers: str) -> Iterator:
    from playwright.sync_api import sync_playwright

    assert CHROMIUM is not None, "Debian's chromium is missing: `make browser` installs it (make test does)"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        tab = browser.new_page(viewport={"width": 1400, "height": 1000})
        tab.set_default_timeout(30_000)
        yield tab
        browser.close()


def instance_of(replay: dict) -> dg.DagsterInstance:
    return dg.DagsterInstance.from_config(str(replay["home"] / "dagster"))


def test_the_jobs_runs_tab_lists_the_replays_runs(replay: dict, servers: str, page) -> None:
    with instance_of(replay) as instance:
        runs = instance.get_runs(filters=dg.RunsFilter(job_name="delay_monthly_scoring"))
    assert len(runs) == 2  # May and June
    page.goto(f"{servers}/locations/platform_assets/jobs/delay_monthly_scoring/runs")
    for run in runs:
        page.get_by_text(run.run_id[:8], exact=True).first.wait_for()
    assert "No runs found" not in page.content()


def test_every_run_was_queued_by_the_instance_and_the_retrain_came_from_a_sensor_tick(replay: dict) -> None:
    """make run on Dagster's own daemon: each run went through the QueuedRunCoordinator (an enqueue
    event, then the daemon's launch); the first model, the scorings and the retrain were requested by
    the model's drift sensor, whose tick names the retrain run."""
    with instance_of(replay) as instance:
        runs = instance.get_runs()
        assert {r.job_name for r in runs} >= {
            "reference_tables", "monthly_pipeline", "delay_train_and_promote", "delay_monthly_scoring", "replay_summary_job",
        }
        for run in runs:
            events = [e.dagster_event.event_type_value for e in instance.all_logs(run.run_id) if e.dagster_event]
            assert events.index("PIPELINE_ENQUEUED") < events.index("PIPELINE_STARTING") < events.index("PIPELINE_START")
        by_sensor = {r.job_name for r in runs if r.tags.get("dagster/sensor_name") == DELAY.sensor}
        assert by_sensor == {"delay_train_and_promote", "delay_monthly_scoring"}
        [retrain] = [r for r in runs if r.tags.get("platform/trigger") == "drift" and r.job_name == "delay_train_and_promote"]
        [state] = [s for s in instance.all_instigator_state() if s.name == DELAY.sensor]
        ticks = instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=200)
        assert [t for t in ticks if retrain.run_id in t.run_ids]


def test_a_rejected_candidate_is_a_failed_check_on_a_successful_run(replay: dict, servers: str, page) -> None:
    with instance_of(replay) as instance:
        [retrain] = instance.get_runs(
            filters=dg.RunsFilter(
                job_name="delay_train_and_promote",
                tags={"dagster/sensor_name": "delay_drift_retrain_sensor", "platform/trigger": "drift"},
            )
        )
        assert retrain.status == dg.DagsterRunStatus.SUCCESS
    page.goto(f"{servers}/runs/{retrain.run_id}")
    header = page.get_by_text("Launched by", exact=False).first
    header.wait_for()
    # Launched by the sensor: the UI shortens the long name in the middle and keeps it whole in the title.
    page.get_by_title("delay_drift_retrain_sensor", exact=True).first.wait_for()
    page.get_by_text("Success", exact=True).first.wait_for()
    # The UI writes an asset key's parts joined by " / ".
    page.get_by_text("promotion_gate on delay / evaluation").first.wait_for()
    page.goto(f"{servers}/assets/delay/evaluation?view=checks")
    page.get_by_text("promotion_gate").first.wait_for()
    # The gate asked this replay's retrain for an AUC gain of 0.5: the reason says so.
    page.get_by_text("Keep the champion: AUC", exact=False).first.wait_for()
    page.get_by_text("a gain of at least +0.500 is needed", exact=False).first.wait_for()
    page.get_by_text("Failed", exact=True).first.wait_for()
    with instance_of(replay) as instance:
        promotions = instance.fetch_materializations(DELAY.champion, limit=10).records
    assert [r.run_id for r in promotions if r.run_id == retrain.run_id] == []  # promotion skipped


def test_the_replay_summary_has_a_row_and_a_frontier_for_every_replayed_model(replay: dict) -> None:
    """`make run --models delay cancellation`: both models ran their loop on the daemon, and the
    summary tabulates each, with each one's frontier over the three triggers and both designs."""
    assert "cancellation_monthly_scoring 2013-06" in replay["stdout"], replay["stdout"]
    with instance_of(replay) as instance:
        [record] = instance.fetch_materializations(dg.AssetKey("replay_summary"), limit=1).records
        metadata = record.asset_materialization.metadata
    rows = {line.split("|")[1].strip(): line for line in metadata["models"].value.splitlines()[2:]}
    assert set(rows) == {"flight_delay_model", "flight_cancellation_model"}
    # Each model: 2 months scored, June's report retrained (the drift share trigger is on at 0), the
    # gate kept the champion (it asked for +0.5 AUC).
    assert all("| 2 | 1 | 0 |" in line for line in rows.values()), rows
    folder = replay["home"] / "reports" / "replay" / "cancellation"
    table = pl.read_csv(folder / "replay.csv")
    assert table["month"].to_list() == ["2013-05", "2013-06"]
    # The gate asked for +0.5 AUC: June's retrain (drift share >= 0) was kept out, so one champion scored both.
    assert table["retrained"].to_list() == [False, True] and not table["promoted"].any()
    frontier = pl.read_csv(folder / "frontier.csv")
    assert {p.split(" >= ")[0] for p in frontier["policy"]} >= {"AUC drop", "drift share", "drifted importance"}
    assert set(frontier["design"]) == {"candidate (through m-1)", "refit through m", "every month"}
    assert metadata["cancellation_frontier_csv"].value.endswith("/cancellation/frontier.csv")


def test_the_drift_report_link_opens_the_evidently_report(replay: dict, servers: str, page) -> None:
    page.goto(f"{servers}/assets/delay/drift_report")
    # The latest materialization's link: June, the last month of this replay.
    link = page.locator(f"a[href^='http://127.0.0.1:{replay['reports_port']}/delay_drift_report/']").first
    link.wait_for()
    href = link.get_attribute("href")
    assert href.endswith("/delay_drift_report/month=2013-06/drift_report.html"), href
    page.goto(href)
    # Evidently's report renders in the page: its drift summary with the share the metadata gives.
    page.get_by_text("Share of Drifted Columns").first.wait_for()
    page.get_by_text("Data Drift Summary").first.wait_for()


def test_asset_pages_show_pictures(servers: str, page) -> None:
    page.goto(f"{servers}/assets/replay_summary")
    # Long markdown entries open in a dialog: one click on the entry shows the chart.
    page.locator("tr", has_text="drift_share_per_month").get_by_text("[Show Markdown]").click()
    image = page.locator("img[src^='data:image/png;base64,']").first
    image.wait_for()
    assert image.evaluate("img => img.naturalWidth") > 100


def test_the_model_card_link_opens_the_card(replay: dict, servers: str, page) -> None:
    page.goto(f"{servers}/assets/delay/evaluation")
    link = page.locator(f"a[href^='http://127.0.0.1:{replay['reports_port']}/model_cards/']").first
    link.wait_for()
    page.goto(link.get_attribute("href"))
    # The rejected retrain's card (the latest evaluation): its gate section says why.
    page.get_by_text("Gate: failed: the champion stays").first.wait_for()
    page.get_by_text("Slices").first.wait_for()


def month_after_the_replay(raw: Path, incoming: Path) -> None:
    """2014-01, a month the platform never saw: January 2013's rows a year later, landed atomically."""
    for table in ("flights", "weather"):
        frame = pl.read_csv(raw / f"{table}.csv", infer_schema=False).filter(pl.col("month") == "1").with_columns(
            pl.lit("2014").alias("year"), pl.col("time_hour").str.replace("^2013-", "2014-")
        )
        tmp = incoming / f".{table}_2014-01.csv.tmp"
        frame.write_csv(tmp)
        os.replace(tmp, incoming / f"{table}_2014-01.csv")


def test_a_month_landed_after_the_replay_runs_the_loop_with_no_command(replay: dict, tmp_path: Path) -> None:
    """With Dagster's daemon up on the replay's state (as `make ui` starts it), landing a new month's
    files is all it takes: its pipeline, its scoring and drift report, the drift sensor's decision."""
    from platform_assets.replay.engine import stop_tree

    home = tmp_path / "later"
    shutil.copytree(replay["home"].parent / "made", home)  # the replay's own home: no server writes to it
    month_after_the_replay(replay["home"].parent / "raw", home / "landing" / "incoming")
    env = {
        **clean_environ(), "PLATFORM_HOME": str(home), "DAGSTER_HOME": str(home / "dagster"),
        "PLATFORM_SENSOR_INTERVAL_SECONDS": "1",
    }
    with (tmp_path / "dagster-dev.log").open("w") as log:
        daemon = subprocess.Popen(
            [str(BIN / "dagster"), "dev", "-w", str(REPO_ROOT / "workspace.yaml"), "-h", "127.0.0.1", "-p", str(free_port())],
            env=env, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT,
        )
    try:
        with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                decided = instance.fetch_observations(
                    dg.AssetRecordsFilter(asset_key=DELAY.drift_report, asset_partitions=["2014-01"]), limit=1
                ).records
                if decided:
                    break
                assert daemon.poll() is None, (tmp_path / "dagster-dev.log").read_text()[-3000:]
                time.sleep(2)
            assert decided, (tmp_path / "dagster-dev.log").read_text()[-3000:]
            runs = {(r.job_name, r.tags.get("dagster/partition")): r for r in instance.get_runs()}
            assert runs[("monthly_pipeline", "2014-01")].status == dg.DagsterRunStatus.SUCCESS
            assert runs[("monthly_pipeline", "2014-01")].tags["dagster/sensor_name"] == "landing_sensor"
            assert runs[(DELAY.scoring_job, "2014-01")].status == dg.DagsterRunStatus.SUCCESS
            assert runs[(DELAY.scoring_job, "2014-01")].tags["dagster/sensor_name"] == DELAY.sensor
            assert decided[0].asset_observation.metadata["decision"].value in ("retrain", "skip")
    finally:
        stop_tree(daemon)
