"""The routine: each month's pipeline and scoring, and a monthly retrain.

All three are stopped by default. This repository replays 2013, which has no new month to wait for:
started, the monthly schedules would re-run December 2013 on the 1st of every month and the retrain
schedule would retrain on the same window again. A team receiving a new month of data each month
starts the two monthly schedules in the UI (Automation); the drift sensor then decides retraining.
"""

import datetime as dt

import dagster as dg

from platform_assets.defs.jobs.jobs import (
    monthly_pipeline_job,
    monthly_scoring_job,
    train_and_promote_job,
)
from platform_assets.defs.monitoring.resources import RetrainPolicy
from platform_assets.lib.partitions import monthly_partitions

monthly_pipeline_schedule = dg.build_schedule_from_partitioned_job(
    monthly_pipeline_job,
    day_of_month=1,
    hour_of_day=1,
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="The newest month: ingest, validate, warehouse, Feast. Stopped by default: the "
    "replayed 2013 data gets no new month, so a started schedule would only re-run December 2013; "
    "start it where a new month of raw files lands each month.",
)

monthly_scoring_schedule = dg.build_schedule_from_partitioned_job(
    monthly_scoring_job,
    day_of_month=1,
    hour_of_day=4,
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="The newest month: champion scores, then the drift report the drift sensor reads. "
    "Stopped by default for the same reason as monthly_pipeline_schedule; start both together.",
)


@dg.schedule(
    job=train_and_promote_job,
    cron_schedule="0 6 2 * *",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Monthly retrain on the trailing window, whatever the drift. Stopped by default: the "
    "drift sensor retrains when a report calls for it (the replay shows what monthly retraining "
    "would add); start it to retrain every month regardless.",
)
def scheduled_retrain(context: dg.ScheduleEvaluationContext, retrain_policy: RetrainPolicy) -> dg.RunRequest | dg.SkipReason:
    scheduled = context.scheduled_execution_time or dt.datetime.now(dt.UTC)
    keys = monthly_partitions.get_partition_keys(current_time=scheduled)
    if not keys:
        return dg.SkipReason("no month of data yet")
    # The newest month is the held-out gate; the window is the months before it.
    month = keys[-1]
    if retrain_policy.training_window(month) is None:
        return dg.SkipReason(f"fewer than {retrain_policy.window_months} months before {month}")
    return dg.RunRequest(
        run_key=f"scheduled-retrain-{month}",
        run_config=retrain_policy.run_config(month),
        tags={"platform/trigger": "schedule"},
    )
