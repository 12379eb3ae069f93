from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from platform_assets.lib.models.sensor import evaluate_drift_reports
from platform_assets.ml.policy import RetrainPolicy

from . import sensor_defs


def report(instance: dg.DagsterInstance, month: str, drift_share: float, auc_drop: float = -0.01) -> None:
    """A drift report; auc_drop is the champion's held-out AUC minus the top of the month's interval."""
    dg.materialize(
        [sensor_defs.drift_report], instance=instance, partition_key=month,
        run_config={"ops": {KEYS.op("drift_report"): {"config": {"drift_share": drift_share, "auc_drop_significant": auc_drop}}}},
    )


# The drifted share as a second trigger, as a team may set it (by default only the AUC rule acts).
SHARE_POLICY = sensor_defs.POLICY
KEYS = sensor_defs.KEYS


def evaluate(instance: dg.DagsterInstance, cursor: str | None, policy: RetrainPolicy | None = None):
    policy = policy or SHARE_POLICY
    context = dg.build_sensor_context(instance=instance, cursor=cursor)
    return evaluate_drift_reports(context, KEYS, policy)


def test_drifted_month_requests_one_retrain_on_the_trailing_window() -> None:
    with dg.DagsterInstance.ephemeral() as instance:
        report(instance, "2013-07", drift_share=0.8)
        result = evaluate(instance, None)
        [request] = result.run_requests
        assert request.run_key.startswith("drift-retrain-2013-07-")
        window = {"start_month": "2013-03", "end_month": "2013-06"}
        assert request.run_config["ops"]["delay__training_set"]["config"] == window
        assert request.run_config["ops"]["delay__model"]["config"] == {**window, "hyperparameters": "champion"}
        assert request.run_config["ops"]["delay__evaluation"]["config"] == {"min_auc_gain": 0.0}
        assert request.run_config["ops"]["delay__refit"]["config"] == {"refit": False}  # the policy's default
        assert request.tags["platform/drift_report_month"] == "2013-07"
        assert request.tags["platform/model"] == "delay"


def test_stable_month_is_skipped_with_the_reason() -> None:
    with dg.DagsterInstance.ephemeral() as instance:
        report(instance, "2013-08", drift_share=0.1, auc_drop=0.005)
        result = evaluate(instance, None)
        assert result.run_requests == []
        assert "below thresholds" in result.skip_reason.skip_message
        assert "drift share 0.10" in result.skip_reason.skip_message


def test_auc_drop_alone_triggers_a_retrain() -> None:
    with dg.DagsterInstance.ephemeral() as instance:
        report(instance, "2013-09", drift_share=0.0, auc_drop=0.05)
        assert len(evaluate(instance, None).run_requests) == 1


def test_default_policy_retrains_only_on_a_significant_auc_drop() -> None:
    """The default rule: the top of the month's 95% interval at least the threshold below the
    champion's held-out AUC. Any drifted share alone retrains nothing."""
    policy = RetrainPolicy()
    assert policy.drift_share_threshold is None
    window = {"reference_window": "2013-01..2013-04"}
    at = policy.auc_drop_threshold
    assert not policy.decide({"drift_share": 1.0, "auc_drop_significant": at - 1e-4, **window}, "2013-07").retrain
    assert policy.decide({"drift_share": 0.0, "auc_drop_significant": at, **window}, "2013-07").retrain
    skipped = policy.decide({"drift_share": 0.9, "auc_drop_significant": -0.002, **window}, "2013-07")
    assert "below thresholds" in skipped.reason and "drift share" not in skipped.reason.split("(")[-1]


def test_thresholds_are_configurable() -> None:
    with dg.DagsterInstance.ephemeral() as instance:
        report(instance, "2013-09", drift_share=0.3)
        assert evaluate(instance, None).run_requests == []
        assert len(evaluate(instance, None, RetrainPolicy(drift_share_threshold=0.25)).run_requests) == 1


def test_month_without_a_full_window_before_it_never_retrains() -> None:
    with dg.DagsterInstance.ephemeral() as instance:
        report(instance, "2013-03", drift_share=0.9)
        result = evaluate(instance, None)
        assert result.run_requests == []
        assert "fewer than 4 earlier months" in result.skip_reason.skip_message


def test_a_report_is_read_once_and_the_cursor_moves_past_it() -> None:
    with dg.DagsterInstance.ephemeral() as instance:
        report(instance, "2013-07", drift_share=0.8)
        first = evaluate(instance, None)
        again = evaluate(instance, None)  # a daemon that lost its cursor sees the same run key
        assert [r.run_key for r in again.run_requests] == [r.run_key for r in first.run_requests]
        after = evaluate(instance, first.cursor)
        assert isinstance(after, dg.SkipReason) and "no delay/drift_report materialized after" in after.skip_message
        report(instance, "2013-08", drift_share=0.9)
        newer = evaluate(instance, first.cursor)
        assert [r.tags["platform/drift_report_month"] for r in newer.run_requests] == ["2013-08"]


def _runs(instance: dg.DagsterInstance) -> list[dg.DagsterRun]:
    return instance.get_runs(filters=dg.RunsFilter(job_name=KEYS.train_job))


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def _wait_for_ticks(instance: dg.DagsterInstance, after: dg.DagsterRun, count: int) -> None:
    """Wait on the sensor's own ticks: `count` evaluations that started after `after` ended."""
    ended = instance.get_run_stats(after.run_id).end_time
    # The public GraphQL API reads ticks through the webserver; with no webserver in this test the
    # instance's tick storage is read directly (a private module: no public API has it).
    
    def ticked() -> bool:
        [state] = [s for s in instance.all_instigator_state() if s.name == KEYS.sensor]
        ticks = instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=20)
        return sum(t.timestamp > ended and t.status.value != "STARTED" for t in ticks) >= count

    _wait(ticked, 120, f"{count} sensor ticks after run {after.run_id[:8]}")


def _daemon(home: Path, workspace: Path, env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", str(workspace)],
        env=env, cwd=home, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )


def _stop(daemon: subprocess.Popen) -> None:
    daemon.terminate()
    try:
        daemon.wait(timeout=30)
    except subprocess.TimeoutExpired:
        daemon.kill()


@pytest.mark.e2e
def test_daemon_launches_one_retrain_per_report_across_a_restart(
    sensor_workspace: tuple[Path, Path, Path],
) -> None:
    home, workspace, markers = sensor_workspace
    env = {**os.environ, "DAGSTER_HOME": str(home), "RETRAIN_MARKER_DIR": str(markers), "PLATFORM_SENSOR_INTERVAL_SECONDS": "1"}
    with dg.DagsterInstance.from_config(str(home)) as instance:
        report(instance, "2013-06", drift_share=0.8)
        report(instance, "2013-07", drift_share=0.8)
        daemon = _daemon(home, workspace, env)
        try:
            _wait(lambda: len(_runs(instance)) == 2 and all(r.is_finished for r in _runs(instance)), 240, "two retrain runs")
            # Two more ticks after them: both reports are behind the stored cursor, nothing relaunches.
            _wait_for_ticks(instance, after=_runs(instance)[0], count=2)
        finally:
            _stop(daemon)
        run, first = _runs(instance)  # newest first
        # Placed in the UI like any daemon's run: the code location's origin and the sensor's tags.
        assert first.remote_job_origin.location_name == "sensor_defs.py"
        placed = instance.get_runs(filters=dg.RunsFilter(tags={".dagster/repository": "__repository__@sensor_defs.py"}))
        assert {r.run_id for r in placed} == {first.run_id, run.run_id}
        assert first.tags["dagster/run_key"].startswith("drift-retrain-2013-06-")
        # Each decision is recorded on the report's partition, where the UI shows it.
        observed = {
            r.asset_observation.partition: r.asset_observation.metadata["decision"].value
            for r in instance.fetch_observations(KEYS.drift_report, limit=10).records
        }
        assert observed == {"2013-06": "retrain", "2013-07": "retrain"}
        assert run.status == dg.DagsterRunStatus.SUCCESS
        assert run.tags["dagster/sensor_name"] == KEYS.sensor
        assert (markers / "2013-03_2013-06.json").exists()

        # A restarted daemon resumes from the stored cursor: the same report never retrains twice,
        # a stable month retrains nothing, a newly drifted month retrains once.
        report(instance, "2013-08", drift_share=0.1)
        report(instance, "2013-09", drift_share=0.9)
        daemon = _daemon(home, workspace, env)
        try:
            _wait(lambda: len(_runs(instance)) == 3 and all(r.is_finished for r in _runs(instance)), 240, "the second retrain")
            _wait_for_ticks(instance, after=_runs(instance)[0], count=2)  # nothing new may launch
        finally:
            _stop(daemon)
        runs = _runs(instance)
        assert len(runs) == 3
        assert sorted(r.tags["platform/drift_report_month"] for r in runs) == ["2013-06", "2013-07", "2013-09"]
        assert len({r.tags["dagster/run_key"] for r in runs}) == 3


def test_no_retrain_on_the_window_the_champion_already_trained_on() -> None:
    policy = SHARE_POLICY
    decision = policy.decide({"drift_share": 0.9, "auc_drop_significant": 0.1, "reference_window": "2013-01..2013-04"}, "2013-05")
    assert not decision.retrain
    assert "already trained on 2013-01..2013-04" in decision.reason
    assert policy.decide({"drift_share": 0.9, "reference_window": "2013-01..2013-04"}, "2013-06").retrain
