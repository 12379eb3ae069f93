"""The online promotion sensor: a day of served traffic is evaluated once its outcomes are known."""

import json

import dagster as dg

from platform_assets.defs.serving.assets import MODEL
from platform_assets.defs.serving.jobs import online_evaluation_job
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
