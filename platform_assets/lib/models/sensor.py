"""A declared model's loop in the daemon: its drift sensor and a monthly retrain schedule (stopped).

The drift sensor reads each drift report once and decides, by the model's policy, whether to retrain
(at most one retrain per report); the decision is recorded on the report's partition as an asset
observation. With the model's loop (`ModelLoop`), the same sensor then moves the model on when it
is idle (no run of the model queued or in flight): the first model once its window and hold-out
month are built, then each built month's scoring, in month order, only after the month before was
scored and decided and its retrain has ended. So a month's drift report is always the champion's
after every earlier decision, whether the months landed one a month or a year at once.
"""

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import dagster as dg

from platform_assets.lib.instance import IN_FLIGHT
from platform_assets.lib.models.keys import ModelKeys
from platform_assets.lib.partitions import monthly_partitions
from platform_assets.ml.policy import RetrainPolicy
from platform_assets.months import MonthWindow
from platform_assets.settings import settings

BATCH = 50
# The last asset of a month's pipeline: its partition materialized means the month is built.
BUILT = dg.AssetKey("online_features")
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
    decisions: list[dg.AssetObservation] = []
    for record in records:
        report = record.asset_materialization
        month = report.partition
        metadata = {k: v.value for k, v in report.metadata.items() if k in DECISION_METADATA}
        decision = policy.decide(metadata, month)
        reasons.append(decision.reason)
        context.log.info(decision.reason)
        decisions.append(
            dg.AssetObservation(
                asset_key=keys.drift_report,
                partition=month,
                metadata={
                    "decision": "retrain" if decision.retrain else "skip",
                    "reason": decision.reason,
                    "report_event": record.storage_id,
                },
            )
        )
        if decision.retrain:
            run_requests.append(
                dg.RunRequest(
                    # One report, one retrain: the run key is the report's event, so re-evaluating
                    # it (a restarted daemon, a reset cursor) launches nothing new.
                    run_key=f"drift-retrain-{month}-{record.storage_id}",
                    job_name=keys.train_job,
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
        return dg.SensorResult(skip_reason=dg.SkipReason("; ".join(reasons)), cursor=cursor, asset_events=decisions)
    return dg.SensorResult(run_requests=run_requests, cursor=cursor, asset_events=decisions)


@dataclass(frozen=True)
class ModelLoop:
    """What the drift sensor needs to move a model on: its scoring job, its first training (the
    declaration's window, gated on the months after it) and whether that first model searches."""

    scoring_job: str
    first_window: MonthWindow
    holdout_months: int
    search: bool

    @property
    def first_scored(self) -> str:
        """The first model's first hold-out month: the champion scores from there on."""
        return self.first_window.following(1)[0]

    def first_run_config(self, keys: ModelKeys) -> dict[str, Any]:
        return {"ops": {keys.op("model"): {"config": {"search": self.search}}}} if self.search else {}


def latest(instance: dg.DagsterInstance, key: dg.AssetKey, month: str) -> int | None:
    """Storage id of the newest materialization of `key`'s partition `month`, if any."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, asset_partitions=[month]), limit=1
    ).records
    return records[0].storage_id if records else None


def next_step(
    context: dg.SensorEvaluationContext, keys: ModelKeys, loop: ModelLoop
) -> dg.RunRequest | dg.SkipReason:
    """The model's next run once its reports are decided: the first model, or the next month's scoring."""
    instance = context.instance
    busy = instance.get_runs(dg.RunsFilter(tags={"platform/model": keys.prefix}, statuses=IN_FLIGHT), limit=1)
    if busy:
        return dg.SkipReason(f"{keys.prefix}: waiting for run {busy[0].run_id[:8]} ({busy[0].job_name})")
    if not instance.fetch_materializations(keys.champion, limit=1).records:
        needed = [*loop.first_window.months, *loop.first_window.following(loop.holdout_months)]
        built = [latest(instance, BUILT, m) for m in needed]
        if None in built:
            missing = [m for m, b in zip(needed, built, strict=True) if b is None]
            return dg.SkipReason(f"{keys.prefix}: no champion yet; the first model waits for {', '.join(missing)}")
        return dg.RunRequest(
            run_key=f"{keys.prefix}-first-model-{'-'.join(str(b) for b in built)}",
            job_name=keys.train_job,
            run_config=loop.first_run_config(keys),
            tags={"platform/trigger": "first model", "platform/model": keys.prefix},
        )
    # Built months in order; a month missing from the landings (a gap) does not hold up the ones after it.
    built_months = sorted(m for m in instance.get_materialized_partitions(BUILT) if m >= loop.first_scored)
    for month in built_months:
        built = latest(instance, BUILT, month)
        scored = latest(instance, keys.predictions, month)
        if built is not None and (scored is None or scored < built):
            return dg.RunRequest(
                run_key=f"{keys.prefix}-score-{month}-{built}",
                job_name=loop.scoring_job,
                partition_key=month,
                tags={"platform/trigger": "month built", "platform/model": keys.prefix},
            )
    newest = built_months[-1] if built_months else "none"
    return dg.SkipReason(f"{keys.prefix}: every built month from {loop.first_scored} is scored (newest built: {newest})")


def evaluate_model_loop(
    context: dg.SensorEvaluationContext, keys: ModelKeys, policy: RetrainPolicy, loop: ModelLoop | None
) -> dg.SensorResult | dg.SkipReason:
    """Decide on new drift reports; when none calls for a retrain, request the model's next run."""
    decided = evaluate_drift_reports(context, keys, policy)
    if loop is None or (isinstance(decided, dg.SensorResult) and decided.run_requests):
        return decided
    step = next_step(context, keys, loop)
    if isinstance(decided, dg.SkipReason):  # no new report: only the next step
        if isinstance(step, dg.SkipReason):
            return dg.SkipReason(f"{decided.skip_message}; {step.skip_message}")
        return dg.SensorResult(run_requests=[step])
    if isinstance(step, dg.SkipReason):
        return decided
    return dg.SensorResult(run_requests=[step], cursor=decided.cursor, asset_events=decided.asset_events)


def build_drift_retrain_sensor(
    keys: ModelKeys,
    policy: RetrainPolicy,
    jobs: Sequence[Any] | str,
    status: dg.DefaultSensorStatus,
    loop: ModelLoop | None = None,
) -> dg.SensorDefinition:
    """`jobs`: the training job's name, or with `loop` the training and scoring jobs themselves."""
    targets = {"job_name": jobs} if isinstance(jobs, str) else {"jobs": list(jobs)}
    moves_on = (
        " When the model is idle it also requests its next run: the first model once its window and "
        "hold-out month are built, then each built month's scoring in order, each after the month before "
        "was decided."
        if loop else ""
    )

    @dg.sensor(
        name=keys.sensor,
        **targets,
        minimum_interval_seconds=settings().sensor_interval_seconds,
        default_status=status,
        description=f"Retrains {keys.prefix} (training set, model, evaluation, champion) when a drift report "
        f"shows the month's AUC at least {policy.auc_drop_threshold:.3f} below the champion's held-out AUC "
        "(top of the 95% interval; optionally also on the drifted share of features). It acts only on new "
        "drift reports (one retrain per report, keyed by the report's event) and records each decision on "
        f"the report's partition.{moves_on}",
    )
    def drift_retrain_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
        return evaluate_model_loop(context, keys, policy, loop)

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
