"""Killing `make run` (Ctrl-C, or SIGKILL of its whole process group while runs are queued and
running) leaves no process of it alive, and a second `make run` completes the replay with every
run key launched to success once and every parquet file whole."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from tests.reliability.make_run import left_behind, replay_env, small_world, start_replay

pytestmark = pytest.mark.e2e
MONTHS = ["2013-01", "2013-02", "2013-03", "2013-04", "2013-05", "2013-06"]


def wait_for_runs(home: Path, status: dg.DagsterRunStatus, count: int, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        # The replay opens its log once it has created the instance's storage: opening the instance
        # while it is being created would race the replay's schema migration.
        if (home / "logs" / "make-run.log").exists():
            try:
                with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
                    if len(instance.get_runs(dg.RunsFilter(statuses=[status]))) >= count:
                        return
            except Exception:  # noqa: BLE001  the replay is creating the instance's storage: look again
                pass
        time.sleep(0.5)
    raise AssertionError(f"no {count} {status.value} run(s) within {timeout}s")


def wait_gone(home: Path, timeout: float = 60) -> list[str]:
    deadline = time.monotonic() + timeout
    while (alive := left_behind(home)) and time.monotonic() < deadline:
        time.sleep(1)
    return alive


@pytest.fixture
def world(tmp_path: Path, real_data_dir: Path, real_flights_text: pl.DataFrame) -> tuple[Path, dict[str, str]]:
    raw = small_world(tmp_path, real_data_dir, real_flights_text.gather_every(8))
    home = tmp_path / "home"
    return home, replay_env(home, raw)


def test_ctrl_c_stops_every_process_the_replay_started(world: tuple[Path, dict[str, str]]) -> None:
    home, env = world
    replay = start_replay(env, MONTHS)
    wait_for_runs(home, dg.DagsterRunStatus.STARTED, 1)
    os.killpg(replay.pid, signal.SIGINT)  # what Ctrl-C in the terminal sends: the whole foreground group
    replay.wait(timeout=120)
    assert replay.returncode != 0
    assert wait_gone(home) == []


def test_sigkill_of_the_process_group_then_a_second_replay_completes(world: tuple[Path, dict[str, str]]) -> None:
    home, env = world
    replay = start_replay(env, MONTHS)
    # Killed with months' pipelines queued behind the one running.
    wait_for_runs(home, dg.DagsterRunStatus.STARTED, 1)
    wait_for_runs(home, dg.DagsterRunStatus.QUEUED, 1)
    os.killpg(replay.pid, signal.SIGKILL)
    replay.wait(timeout=60)
    assert wait_gone(home, timeout=30) == []

    again = start_replay(env, MONTHS)
    out, err = again.communicate(timeout=1200)
    assert again.returncode == 0, out[-3000:] + err[-3000:]
    assert "| 2013-06 |" in out and "mean_auc_drift_policy" in out
    assert wait_gone(home) == []
    with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
        runs = instance.get_runs()
    # Every run key (a landing, a month's scoring, the first model) succeeded exactly once.
    keyed = Counter(r.tags["dagster/run_key"] for r in runs if "dagster/run_key" in r.tags and r.status == dg.DagsterRunStatus.SUCCESS)
    assert keyed and max(keyed.values()) == 1, keyed
    scored = Counter(r.tags.get("dagster/partition") for r in runs if r.job_name == "delay_monthly_scoring" and r.status == dg.DagsterRunStatus.SUCCESS)
    assert scored == {"2013-05": 1, "2013-06": 1}
    # The interrupted runs were failed by the second replay (no process ran them any more) and
    # nothing was left looking alive.
    assert not [r for r in runs if not r.is_finished]
    # No partial file: every parquet file of the lake and the landing reads whole.
    for parquet in [*(home / "landing").rglob("*.parquet"), *(home / "lake").rglob("*.parquet")]:
        if not parquet.name.startswith("."):
            pl.read_parquet(parquet)
