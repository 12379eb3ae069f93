"""The landing sensor: raw files landed in the landing folder start the data pipeline's runs."""

from typing import Any

import dagster as dg

from platform_assets.data.landing_zone import (
    LandedFile,
    LandingState,
    MonthRun,
    ReferenceRun,
    ignored,
    plan,
    scan,
)
from platform_assets.defs.pipeline.jobs import monthly_pipeline_job, reference_tables_job
from platform_assets.lib.resources import RawSourceResource
from platform_assets.settings import settings

RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"
LANDED_FILES_TAG = "platform/landed_files"


def _ops_config(files: tuple[LandedFile, ...]) -> dict[str, Any]:
    return {"ops": {f"raw_{f.table}": {"config": {"source_file": str(f.path)}} for f in files}}


def _tags(files: tuple[LandedFile, ...]) -> dict[str, str]:
    return {LANDED_FILES_TAG: ",".join(f.name for f in files)}


def reference_request(run: ReferenceRun) -> dg.RunRequest:
    return dg.RunRequest(
        run_key=run.run_key,
        job_name=reference_tables_job.name,
        run_config=_ops_config(run.files),
        tags=_tags(run.files),
    )


def month_request(run: MonthRun) -> dg.RunRequest:
    if run.start == run.end:
        return dg.RunRequest(
            run_key=run.run_key,
            job_name=monthly_pipeline_job.name,
            partition_key=run.start,
            run_config=_ops_config(run.files),
            tags=_tags(run.files),
        )
    # A range is one run over its months (the raw assets' single-run backfill policy).
    return dg.RunRequest(
        run_key=run.run_key,
        job_name=monthly_pipeline_job.name,
        run_config=_ops_config(run.files),
        tags={**_tags(run.files), RANGE_START: run.start, RANGE_END: run.end},
    )


@dg.sensor(
    name="landing_sensor",
    jobs=[reference_tables_job, monthly_pipeline_job],
    minimum_interval_seconds=settings().sensor_interval_seconds,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Watches the landing folder (PLATFORM_LANDING_DIR, default PLATFORM_HOME/landing/incoming) "
    "and requests the reference tables' run when a planes, airports or airlines file is new or changed, "
    "then a monthly_pipeline run for each month whose flights and weather files have landed (consecutive "
    "months read from the same two files in one run; the newest file of a table wins a month). A file "
    "landed again with the same content starts nothing: run keys name the files and their sha256.",
)
def landing_sensor(context: dg.SensorEvaluationContext, raw_source: RawSourceResource) -> dg.SensorResult:
    folder = raw_source.landing_folder
    state = LandingState.from_cursor(context.cursor)
    state.files = scan(folder, state.files)
    planned = plan(state.files, state.months, state.reference)
    for note in planned.notes:
        context.log.info(note)
    if planned.empty:
        seen = ", ".join(f.name for f in state.files) or "no raw file"
        skipped = ignored(folder)
        also = f" (ignored: {', '.join(skipped)})" if skipped else ""
        why = "; ".join(planned.notes) or "nothing new"
        return dg.SensorResult(
            skip_reason=dg.SkipReason(f"{folder}: {seen}{also}; {why}"), cursor=state.to_cursor()
        )
    requests = [reference_request(planned.reference)] if planned.reference else []
    requests += [month_request(run) for run in planned.months]
    state.record(planned)
    return dg.SensorResult(run_requests=requests, cursor=state.to_cursor())
