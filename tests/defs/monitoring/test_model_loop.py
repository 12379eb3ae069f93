"""The drift sensor moves its model on: the first model once its data is built, then each built
month's scoring in order, each only after the month before was decided and while no run of the
model is queued or in flight (on an ephemeral instance, events reported as the runs would)."""

from __future__ import annotations

import uuid

import dagster as dg

from platform_assets.lib.models.sensor import BUILT, ModelLoop, evaluate_model_loop, next_step
from platform_assets.months import MonthWindow

from . import sensor_defs
from .test_sensor import KEYS, SHARE_POLICY, report

LOOP = ModelLoop(scoring_job=KEYS.scoring_job, first_window=MonthWindow("2013-01", "2013-04"), holdout_months=1, search=True)


def built(instance: dg.DagsterInstance, *months: str) -> None:
    for month in months:
        instance.report_runless_asset_event(dg.AssetMaterialization(BUILT, partition=month))


def materialized(instance: dg.DagsterInstance, key: dg.AssetKey, partition: str | None = None) -> None:
    instance.report_runless_asset_event(dg.AssetMaterialization(key, partition=partition))


def step(instance: dg.DagsterInstance) -> dg.RunRequest | dg.SkipReason:
    return next_step(dg.build_sensor_context(instance=instance), KEYS, LOOP)


def test_the_first_model_waits_for_its_window_and_hold_out_month_then_searches() -> None:
    with dg.DagsterInstance.ephemeral() as instance:
        built(instance, "2013-01", "2013-02", "2013-03")
        waiting = step(instance)
        assert isinstance(waiting, dg.SkipReason)
        assert waiting.skip_message == "delay: no champion yet; the first model waits for 2013-04, 2013-05"
        built(instance, "2013-04", "2013-05")
        first = step(instance)
        assert isinstance(first, dg.RunRequest) and first.job_name == KEYS.train_job
        assert first.run_config == {"ops": {"delay__model": {"config": {"search": True}}}}
        assert first.tags["platform/model"] == "delay" and first.run_key.startswith("delay-first-model-")


def test_months_are_scored_in_order_from_the_first_hold_out_month_and_rescored_when_rebuilt() -> None:
    with dg.DagsterInstance.ephemeral() as instance:
        built(instance, "2013-01", "2013-02", "2013-03", "2013-04", "2013-05", "2013-06")
        materialized(instance, KEYS.champion)
        may = step(instance)
        assert isinstance(may, dg.RunRequest) and (may.job_name, may.partition_key) == (KEYS.scoring_job, "2013-05")
        materialized(instance, KEYS.predictions, "2013-05")
        june = step(instance)
        assert isinstance(june, dg.RunRequest) and june.partition_key == "2013-06"
        materialized(instance, KEYS.predictions, "2013-06")
        idle = step(instance)
        assert isinstance(idle, dg.SkipReason) and "(newest built: 2013-06)" in idle.skip_message
        built(instance, "2013-05")  # May landed again: its scores are older than its data
        again = step(instance)
        assert isinstance(again, dg.RunRequest) and again.partition_key == "2013-05"
        assert again.run_key != may.run_key


def test_nothing_is_requested_while_a_run_of_the_model_is_in_flight() -> None:
    with dg.DagsterInstance.ephemeral() as instance:
        built(instance, "2013-04", "2013-05")
        materialized(instance, KEYS.champion)
        run_id = str(uuid.uuid4())
        instance.add_run(dg.DagsterRun(
            job_name=KEYS.train_job, run_id=run_id, status=dg.DagsterRunStatus.STARTED, tags={"platform/model": "delay"}
        ))
        waiting = step(instance)
        assert isinstance(waiting, dg.SkipReason)
        assert waiting.skip_message == f"delay: waiting for run {run_id[:8]} ({KEYS.train_job})"
        instance.report_run_canceled(instance.get_run_by_id(run_id))
        assert isinstance(step(instance), dg.RunRequest)


def test_a_decided_report_and_the_next_month_s_scoring_come_from_one_tick() -> None:
    with dg.DagsterInstance.ephemeral() as instance:
        built(instance, "2013-05", "2013-06", "2013-07")
        materialized(instance, KEYS.champion)
        materialized(instance, KEYS.predictions, "2013-05")
        materialized(instance, KEYS.predictions, "2013-06")
        report(instance, "2013-06", drift_share=0.1)  # stable: skip
        result = evaluate_model_loop(dg.build_sensor_context(instance=instance), KEYS, SHARE_POLICY, LOOP)
        assert isinstance(result, dg.SensorResult)
        [scoring] = result.run_requests
        assert (scoring.job_name, scoring.partition_key) == (KEYS.scoring_job, "2013-07")
        [decision] = result.asset_events
        assert (decision.partition, decision.metadata["decision"].value) == ("2013-06", "skip")
        # A drifted report: the retrain alone; the next month waits for it.
        report(instance, "2013-07", drift_share=0.9)
        result = evaluate_model_loop(dg.build_sensor_context(instance=instance, cursor=result.cursor), KEYS, SHARE_POLICY, LOOP)
        assert [r.job_name for r in result.run_requests] == [KEYS.train_job]
        assert result.asset_events[0].metadata["decision"].value == "retrain"


def test_without_a_loop_the_sensor_only_decides() -> None:
    with dg.DagsterInstance.ephemeral() as instance:
        built(instance, "2013-05")
        materialized(instance, KEYS.champion)
        result = evaluate_model_loop(dg.build_sensor_context(instance=instance), KEYS, SHARE_POLICY, None)
        assert isinstance(result, dg.SkipReason)
        assert sensor_defs.KEYS == KEYS


def test_a_month_landed_after_a_gap_is_scored() -> None:
    """A month the platform never saw, after the replayed months (2014-01), with months between
    them never landed: it is scored all the same."""
    with dg.DagsterInstance.ephemeral() as instance:
        built(instance, "2013-05", "2013-06", "2014-01")
        materialized(instance, KEYS.champion)
        materialized(instance, KEYS.predictions, "2013-05")
        materialized(instance, KEYS.predictions, "2013-06")
        later = step(instance)
        assert isinstance(later, dg.RunRequest) and later.partition_key == "2014-01"
