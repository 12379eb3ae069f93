"""Sensors of served traffic: a day's request log is compacted once the server has written enough
files for it; a day is evaluated online once its outcomes are known."""

import json

import dagster as dg

from platform_assets.defs.serving.assets import MODEL
from platform_assets.defs.serving.jobs import online_evaluation_job, request_log_job
from platform_assets.lib.resources import PlatformPathsResource

REQUEST_LOG = dg.AssetKey("request_log")


@dg.sensor(
    job=online_evaluation_job,
    minimum_interval_seconds=300,
    description="For each day with a request_log partition and validated outcomes, runs the online "
    "evaluation, whose challenger check gates online_promotion. Each day is evaluated once (the "
    "cursor lists the days done); a day waits while its outcomes are unknown.",
)
def online_promotion_sensor(
    context: dg.SensorEvaluationContext, platform: PlatformPathsResource
) -> dg.SensorResult | dg.SkipReason:
    from platform_assets.serving.evaluation import labels_known

    done = set(json.loads(context.cursor)) if context.cursor else set()
    logged = sorted(context.instance.get_materialized_partitions(REQUEST_LOG) - done)
    if not logged:
        return dg.SkipReason("no request_log partition since the last evaluation")
    ready = [d for d in logged if labels_known(platform.paths, d, MODEL.label) > 0]
    if not ready:
        return dg.SkipReason(f"{len(logged)} logged day(s) wait for validated outcomes: {', '.join(logged[:5])}")
    return dg.SensorResult(
        run_requests=[dg.RunRequest(run_key=f"online-evaluation-{d}", partition_key=d) for d in ready],
        cursor=json.dumps(sorted(done | set(ready))),
    )


# Flush files (a second's traffic each, at steady load) a day gathers before it is compacted.
COMPACT_AFTER_FILES = 60


@dg.sensor(
    job=request_log_job,
    minimum_interval_seconds=300,
    description=f"Materializes request_log[day], which compacts the day's request log, for each day "
    f"where a served model's log holds at least {COMPACT_AFTER_FILES} files (the server writes one "
    "per flush); the run key names the newest file, so a day is compacted again only after it grew.",
)
def request_log_compaction_sensor(
    context: dg.SensorEvaluationContext, platform: PlatformPathsResource
) -> dg.SensorResult | dg.SkipReason:
    from platform_assets.ml.declaration import load_declarations
    from platform_assets.serving.request_log_files import day_dir, days, live_files

    grown: dict[str, str] = {}
    for name in (d.name for d in load_declarations().values() if d.serving.enabled):
        for day in days(platform.paths, name):
            files = live_files(day_dir(platform.paths, name, day))
            if len(files) >= COMPACT_AFTER_FILES:
                grown[day] = max(grown.get(day, ""), max(f.name for f in files))
    if not grown:
        return dg.SkipReason(f"no day's request log holds {COMPACT_AFTER_FILES} files yet")
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(run_key=f"request-log-{day}-{newest}", partition_key=day)
            for day, newest in sorted(grown.items())
        ]
    )
