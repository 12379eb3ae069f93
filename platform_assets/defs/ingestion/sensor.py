"""The landing sensor: raw files landed in the landing folder start the data pipeline's runs."""

from typing import Any

import dagster as dg

from platform_assets.data.landing_zone import (
    LandedFile,
    LandingState,
    MonthRun,
    Plan,
    ReferenceRun,
    ignored,
    plan,
    scan,
)
from platform_assets.defs.pipeline.jobs import (
    PIPELINE_LANE,
    monthly_pipeline_job,
    reference_tables_job,
)
from platform_assets.lib.instance import IN_FLIGHT
from platform_assets.lib.resources import RawSourceResource
from platform_assets.months import months_through
from platform_assets.settings import settings

RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"
LANDED_FILES_TAG = "platform/landed_files"


REFERENCE = "reference tables"


def covered(run: dg.DagsterRun) -> set[str]:
    """What a pipeline run built: its months, or the reference tables."""
    if run.job_name == reference_tables_job.name:
        return {REFERENCE}
    if "dagster/partition" in run.tags:
        return {run.tags["dagster/partition"]}
    start, end = run.tags.get(RANGE_START), run.tags.get(RANGE_END)
    return {m for m in months_through(end) if start and start <= m} if end else set()


def lane_gate(instance: dg.DagsterInstance) -> tuple[str | None, set[str]]:
    """(why to wait, what a failed run covered). The pipeline's runs build on each other (the
    months' dbt models join the reference tables, a month's features read the months before it),
    so the next one is requested only when the last one has ended, and after a failure only its
    own months landed again (a corrected file) run: nothing is built on a month that failed."""
    latest = instance.get_runs(dg.RunsFilter(tags=PIPELINE_LANE), limit=1)
    if not latest:
        return None, set()
    run = latest[0]
    what = ", ".join(sorted(covered(run)))
    if run.status in IN_FLIGHT:
        return f"waiting for run {run.run_id[:8]} ({run.job_name} {what})", set()
    if run.status == dg.DagsterRunStatus.SUCCESS:
        return None, set()
    return None, covered(run) | {f"run {run.run_id[:8]} ({run.job_name} {what}) ended {run.status.value}"}


def next_run(planned: Plan, failed: set[str]) -> ReferenceRun | MonthRun | None:
    """The one run to request now: the reference tables first, then the earliest months; after a
    failed run, only one that builds what failed again."""
    first: ReferenceRun | MonthRun | None = planned.reference or (planned.months[0] if planned.months else None)
    if first is None or not failed:
        return first
    builds = {REFERENCE} if isinstance(first, ReferenceRun) else set(first.months)
    return first if builds & failed else None


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
    "months read from the same two files in one run; the newest file of a table wins a month), one run "
    "at a time, in order, each once the one before has succeeded; after a failure, only a corrected file "
    "for the failed months goes on. A file landed again with the same content starts nothing: run keys "
    "name the files and their sha256.",
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
    waiting, failed = lane_gate(context.instance)
    chosen = None if waiting else next_run(planned, failed)
    if chosen is None:
        why = waiting or (
            f"{min(f for f in failed if f.startswith('run '))}: land a corrected file for "
            f"{', '.join(sorted(f for f in failed if not f.startswith('run ')))} to go on"
        )
        return dg.SensorResult(skip_reason=dg.SkipReason(why), cursor=state.to_cursor())
    if isinstance(chosen, ReferenceRun):
        state.record(Plan(chosen, [], []))
        request = reference_request(chosen)
    else:
        state.record(Plan(None, [chosen], []))
        request = month_request(chosen)
    return dg.SensorResult(run_requests=[request], cursor=state.to_cursor())
