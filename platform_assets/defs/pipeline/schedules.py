"""The routine of the data pipeline: each month's landing to Feast.

Stopped by default. This repository replays 2013, which has no new month to wait for: started, the
schedule would re-run December 2013 on the 1st of every month. A team receiving a new month of data
each month starts it with each model's `<model>_monthly_scoring_schedule` in the UI (Automation);
each model's drift sensor then decides retraining.
"""

import dagster as dg

from platform_assets.defs.pipeline.jobs import monthly_pipeline_job

monthly_pipeline_schedule = dg.build_schedule_from_partitioned_job(
    monthly_pipeline_job,
    day_of_month=1,
    hour_of_day=1,
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="The newest month: ingest, validate, warehouse, Feast. Stopped by default: the "
    "replayed 2013 data gets no new month, so a started schedule would only re-run December 2013; "
    "start it where a new month of raw files lands each month.",
)
