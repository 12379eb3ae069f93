"""The replay's background lane: runs queued for a second process (replay.launch.RunWorker) execute
there, in the order queued, and land in the instance like the runs executed in-process."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import dagster as dg
import pytest

from platform_assets.replay.launch import in_process_instance, workspace_launcher


def window(start: str, end: str) -> dict:
    span = {"start_month": start, "end_month": end}
    return {"ops": {"delay__training_set": {"config": span}, "delay__model": {"config": span}}}


def picked_up(instance: dg.DagsterInstance, run_id: str, timeout: float = 120) -> None:
    """Wait until the worker has launched the run (it left the queue)."""
    deadline = time.monotonic() + timeout
    while instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.QUEUED:
        assert time.monotonic() < deadline, f"run {run_id} still queued after {timeout}s"
        time.sleep(0.05)


def test_handed_runs_execute_in_the_worker_in_order_beside_in_process_runs(sensor_workspace, tmp_path: Path) -> None:
    home, workspace_file, markers = sensor_workspace
    log = tmp_path / "worker.log"
    with in_process_instance(home) as instance, workspace_launcher(instance, workspace_file, worker_log=log) as launcher:
        first = launcher.start("delay_train_and_promote", run_config=window("2013-01", "2013-04"))
        second = launcher.start("delay_train_and_promote", run_config=window("2013-02", "2013-05"))
        here = launcher.launch("delay_train_and_promote", run_config=window("2013-03", "2013-06"))  # meanwhile
        done = [launcher.finish(second), launcher.finish(first)]  # either order of waiting works
        worker_pid = launcher.worker.process.pid
    assert here.status == dg.DagsterRunStatus.SUCCESS
    assert [run.status for run in done] == [dg.DagsterRunStatus.SUCCESS] * 2
    assert {json.loads(p.read_text())["start_month"] for p in markers.glob("*.json")} == {"2013-01", "2013-02", "2013-03"}
    with dg.DagsterInstance.from_config(str(home)) as reader:

        def run_pid(run_id: str) -> int:  # the process that executed the run (its RUN_START event)
            [start] = [e for e in reader.all_logs(run_id) if e.dagster_event and e.dagster_event.event_type_value == "PIPELINE_START"]
            return start.dagster_event.pid

        assert run_pid(first) == run_pid(second) == worker_pid != os.getpid()
        assert run_pid(here.run_id) == os.getpid()
        stats = {run_id: reader.get_run_stats(run_id) for run_id in (first, second)}
        # One at a time, in the order handed over.
        assert stats[first].end_time <= stats[second].start_time
        # Queued, then launched by the worker as the daemon launches a queued run.
        kinds = [e.dagster_event.event_type_value for e in reader.all_logs(first) if e.dagster_event]
        assert kinds.index("PIPELINE_ENQUEUED") < kinds.index("PIPELINE_STARTING") < kinds.index("PIPELINE_SUCCESS")


def test_a_run_the_worker_never_launched_is_canceled_not_left_queued(sensor_workspace, tmp_path: Path) -> None:
    home, workspace_file, _ = sensor_workspace
    with in_process_instance(home) as instance:
        with workspace_launcher(instance, workspace_file, worker_log=tmp_path / "worker.log") as launcher:
            launcher.worker.process.kill()  # the worker dies before it gets to the run
            launcher.worker.process.wait()
            with pytest.raises(BrokenPipeError):
                launcher.start("delay_train_and_promote", run_config=window("2013-01", "2013-04"))
            [run] = instance.get_runs()
        run = instance.get_run_by_id(run.run_id)
        assert run.status == dg.DagsterRunStatus.CANCELED  # queued, never launched: not left "Queued"


def test_a_replay_that_stops_early_cancels_its_queued_runs_and_waits_only_for_the_one_in_hand(
    sensor_workspace, tmp_path: Path
) -> None:
    home, workspace_file, markers = sensor_workspace
    with in_process_instance(home) as instance:
        with pytest.raises(RuntimeError, match="a month failed"):
            with workspace_launcher(instance, workspace_file, worker_log=tmp_path / "worker.log") as launcher:
                first = launcher.start("delay_train_and_promote", run_config=window("2013-01", "2013-04"))
                assert launcher.finish(first).status == dg.DagsterRunStatus.SUCCESS
                second = launcher.start("delay_train_and_promote", run_config=window("2013-02", "2013-05"))
                # The event, not the clock: the worker has taken the second run in hand ...
                picked_up(instance, second)
                third = launcher.start("delay_train_and_promote", run_config=window("2013-03", "2013-06"))
                raise RuntimeError("a month failed")  # as `make run` stops on a failed run
        statuses = {run_id: instance.get_run_by_id(run_id).status for run_id in (second, third)}
    # ... so it finishes; the third was still queued and is canceled, never launched.
    assert statuses[second] == dg.DagsterRunStatus.SUCCESS
    assert statuses[third] == dg.DagsterRunStatus.CANCELED
    windows = {json.loads(p.read_text())["start_month"] for p in markers.glob("*.json")}
    assert "2013-03" not in windows and "2013-01" in windows
