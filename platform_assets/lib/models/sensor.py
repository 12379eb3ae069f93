"""A declared model's retraining triggers: its drift sensor (each drift report read once, at most one
retrain per report) and a monthly retrain schedule (stopped by default)."""

import datetime as dt
from typing import Any

import dagster as dg

from platform_assets.lib.models.keys import ModelKeys
from platform_assets.lib.partitions import monthly_partitions
from platform_assets.ml.policy import RetrainPolicy
from platform_assets.settings import settings

BATCH = 50
# What the policy reads of a drift report's metadata.
DECISION_METADATA = ("drift_share", "auc_drop_significant", "reference_window")


def retrain_run_config(keys: ModelKeys, policy: RetrainPolicy, month: str) -> dict[str, Any]:
    """Train on the months before `month`; the evaluation holds out the next month, `month` itself."""
    window = policy.training_window(month)
    if window is None:
        raise ValueError(f"no full {policy.window_months}-month window before {month}")
    span = {"start_month": window.start, "end_month": window.end}
    return {
        "ops": {
            keys.op("training_set"): {"config": span},
            # A retrain keeps the champion's hyperparameters (its search's winner); only the window moves.
            keys.op("model"): {"config": {**span, "hyperparameters": "champion"}},
            keys.op("evaluation"): {"config": {"min_auc_gain": policy.min_auc_gain}},
            keys.op("refit"): {"config": {"refit": policy.refit}},
        }
    }


def evaluate_drift_reports(
    context: dg.SensorEvaluationContext, keys: ModelKeys, policy: RetrainPolicy
) -> dg.SensorResult | dg.SkipReason:
    """Read the model's drift reports after the cursor; one RunRequest per report the policy retrains on."""
    after = int(context.cursor) if context.cursor else 0
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=keys.drift_report, after_storage_id=after), limit=BATCH, ascending=True
    ).records
    if not records:
        return dg.SkipReason(f"no {keys.drift_report.to_user_string()} materialized after event {after}")
    run_requests: list[dg.RunRequest] = []
    reasons: list[str] = []
    for record in records:
        report = record.asset_materialization
        month = report.partition
        metadata = {k: v.value for k, v in report.metadata.items() if k in DECISION_METADATA}
        decision = policy.decide(metadata, month)
        reasons.append(decision.reason)
        context.log.info(decision.reason)
        if decision.retrain:
            run_requests.append(
                dg.RunRequest(
                    # One report, one retrain: the run key is the report's event, so re-evaluating
                    # it (a restarted daemon, a reset cursor) launches nothing new.
                    run_key=f"drift-retrain-{month}-{record.storage_id}",
                    run_config=retrain_run_config(keys, policy, month),
                    tags={
                        "platform/trigger": "drift",
                        "platform/model": keys.prefix,
                        "platform/drift_report_month": month,
                        "platform/retrain_reason": decision.reason,
                    },
                )
            )
    cursor = str(records[-1].storage_id)
    if not run_requests:
        return dg.SensorResult(skip_reason=dg.SkipReason("; ".join(reasons)), cursor=cursor)
    return dg.SensorResult(run_requests=run_requests, cursor=cursor)


def build_drift_retrain_sensor(
    keys: ModelKeys, policy: RetrainPolicy, job_name: str, status: dg.DefaultSensorStatus
) -> dg.SensorDefinition:
    @dg.sensor(
        name=keys.sensor,
        job_name=job_name,
        minimum_interval_seconds=settings().sensor_interval_seconds,
        default_status=status,
        description=f"Retrains {keys.prefix} (training set, model, evaluation, champion) when a drift report "
        f"shows the month's AUC at least {policy.auc_drop_threshold:.3f} below the champion's held-out AUC "
        "(top of the 95% interval; optionally also on the drifted share of features). It acts only on new "
        "drift reports (one retrain per report, keyed by the report's event).",
    )
    def drift_retrain_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
        return evaluate_drift_reports(context, keys, policy)

    return drift_retrain_sensor


def build_scheduled_retrain(keys: ModelKeys, policy: RetrainPolicy, job_name: str) -> dg.ScheduleDefinition:
    @dg.schedule(
        name=keys.name("scheduled_retrain"),
        job_name=job_name,
        cron_schedule="0 6 2 * *",
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description=f"Monthly retrain of {keys.prefix} on the trailing window, whatever the drift. Stopped "
        "by default: the drift sensor retrains when a report calls for it; start it to retrain every month.",
    )
    def scheduled_retrain(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
        scheduled = context.scheduled_execution_time or dt.datetime.now(dt.UTC)
        keys_now = monthly_partitions.get_partition_keys(current_time=scheduled)
        if not keys_now:
            return dg.SkipReason("no month of data yet")
        # The newest month is the held-out gate; the window is the months before it.
        month = keys_now[-1]
        if policy.training_window(month) is None:
            return dg.SkipReason(f"fewer than {policy.window_months} months before {month}")
        return dg.RunRequest(
            run_key=f"scheduled-retrain-{keys.prefix}-{month}",
            run_config=retrain_run_config(keys, policy, month),
            tags={"platform/trigger": "schedule", "platform/model": keys.prefix},
        )

    return scheduled_retrain
