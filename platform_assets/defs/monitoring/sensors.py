"""The drift sensor: each drift report is read once and triggers at most one retraining run."""

from typing import Any

import dagster as dg

from platform_assets.defs.jobs.jobs import train_and_promote_job
from platform_assets.defs.monitoring.resources import RetrainPolicy
from platform_assets.settings import settings

DRIFT_REPORT = dg.AssetKey("drift_report")
SENSOR_NAME = "drift_retrain_sensor"
BATCH = 50


def build_drift_retrain_sensor(
    job: Any, name: str = SENSOR_NAME, minimum_interval_seconds: int | None = None
) -> dg.SensorDefinition:
    @dg.sensor(
        name=name,
        job=job,
        minimum_interval_seconds=minimum_interval_seconds or settings().sensor_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Retrains (training set -> delay_model -> model_evaluation -> champion) when a drift "
        "report shows the month's AUC significantly below the champion's held-out AUC (the retrain_policy "
        "resource's rule; optionally also on the drifted share of features). Running by default: it acts "
        "only on new drift reports (one retrain per report, keyed by the report's event), so on the "
        "replayed 2013 data it launches nothing until a new month is scored.",
    )
    def _sensor(context: dg.SensorEvaluationContext, retrain_policy: RetrainPolicy) -> dg.SensorResult | dg.SkipReason:
        return evaluate_drift_reports(context, retrain_policy)

    return _sensor


def evaluate_drift_reports(
    context: dg.SensorEvaluationContext, retrain_policy: RetrainPolicy
) -> dg.SensorResult | dg.SkipReason:
    """Read the drift reports after the cursor; one RunRequest per report that crosses a threshold."""
    after = int(context.cursor) if context.cursor else 0
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=DRIFT_REPORT, after_storage_id=after), limit=BATCH, ascending=True
    ).records
    if not records:
        return dg.SkipReason(f"no drift report materialized after event {after}")
    run_requests: list[dg.RunRequest] = []
    reasons: list[str] = []
    for record in records:
        report = record.asset_materialization
        month = report.partition
        metadata = {k: v.value for k, v in report.metadata.items() if k in ("drift_share", "auc_drop_significant", "reference_window")}
        decision = retrain_policy.decide(metadata, month)
        reasons.append(decision.reason)
        context.log.info(decision.reason)
        if decision.retrain:
            run_requests.append(
                dg.RunRequest(
                    # One report, one retrain: the run key is the report's event, so re-evaluating
                    # it (a restarted daemon, a reset cursor) launches nothing new.
                    run_key=f"drift-retrain-{month}-{record.storage_id}",
                    run_config=retrain_policy.run_config(month),
                    tags={
                        "platform/trigger": "drift",
                        "platform/drift_report_month": month,
                        "platform/retrain_reason": decision.reason,
                    },
                )
            )
    cursor = str(records[-1].storage_id)
    if not run_requests:
        return dg.SensorResult(skip_reason=dg.SkipReason("; ".join(reasons)), cursor=cursor)
    return dg.SensorResult(run_requests=run_requests, cursor=cursor)


drift_retrain_sensor = build_drift_retrain_sensor(train_and_promote_job)
