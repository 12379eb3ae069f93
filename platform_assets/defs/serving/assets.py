"""The model server's request log as assets: the day's log, its online evaluation per variant with
the challenger check, the promotion it gates, and the training/serving skew report."""

from collections.abc import Iterator
from typing import Any

import dagster as dg
from pydantic import Field

from platform_assets import constants as platform_constants
from platform_assets.defs.serving.partitions import daily_partitions
from platform_assets.events import EVENTS_TABLE
from platform_assets.lib.resources import MLflowResource, PlatformPathsResource
from platform_assets.ml.declaration import declared
from platform_assets.serving import constants

CHALLENGER_CHECK = "challenger_online_vs_champion"

# The model whose live traffic these assets evaluate and promote (its declaration under defs/models/).
MODEL = declared(platform_constants.ONLINE_MODEL).spec


class OnlineEvaluationConfig(dg.Config):
    min_labelled: int = Field(
        default=constants.MIN_LABELLED_FLIGHTS,
        description="Labelled flights each variant needs on the day before the check decides.",
    )
    max_auc_loss: float = Field(
        default=constants.MAX_AUC_LOSS,
        description="How far the challenger's online AUC may fall below the champion's and still pass.",
    )


class SkewConfig(dg.Config):
    tolerance: float = Field(
        default=constants.SKEW_TOLERANCE,
        description="Absolute difference above which a served value counts as skewed.",
    )


def _reports(platform: PlatformPathsResource, kind: str, day: str) -> Any:
    folder = platform.paths.reports / "serving" / kind / f"day={day}"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _compact_served_logs(paths: Any, day: str) -> dict[str, Any]:
    """Compact the day's log of every model declared with serving (the server writes a file per
    flush): model name -> Compaction."""
    from platform_assets.ml.declaration import load_declarations
    from platform_assets.serving.request_log_files import compact_day, day_dir

    served = [d.name for d in load_declarations().values() if d.serving.enabled]
    return {name: compact_day(paths, name, day) for name in served if day_dir(paths, name, day).exists()}


@dg.asset(
    group_name="serving",
    partitions_def=daily_partitions,
    kinds={"parquet"},
    description="Every request the model server answered for flights of the day (parquet under "
    "$PLATFORM_HOME/serving/request_log/<model>/): compacts each served model's day to one file, "
    f"then reports {MODEL.name}'s rows, variants, latency percentiles and the rows the server "
    "answered but could not keep (its log buffer was full).",
)
def request_log(
    context: dg.AssetExecutionContext, platform: PlatformPathsResource
) -> dg.MaterializeResult:
    import numpy as np

    from platform_assets.serving.request_log_files import day_dir, dropped_rows, read_day

    day = context.partition_key
    compactions = _compact_served_logs(platform.paths, day)
    log = read_day(platform.paths, MODEL.name, day)
    if log.is_empty():
        raise dg.Failure(f"{day_dir(platform.paths, MODEL.name, day)}: no requests logged for flights of {day}")
    latency = log.unique(subset=["request_id"])["latency_ms"].to_numpy()
    p50, p95, p99 = np.percentile(latency, [50, 95, 99])
    answered = log.filter(log["answered"])
    variants = {f"{v} v{m}": n for v, m, n in log.group_by(["variant", "model_version"]).len().iter_rows()}
    compaction = compactions[MODEL.name]
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": log.height,
            "requests": int(log["request_id"].n_unique()),
            "flights": int(log["flight_id"].n_unique()),
            "rows_by_variant": dg.MetadataValue.json(variants),
            "rows_dropped": dropped_rows(platform.paths, MODEL.name, day),
            "latency_p50_ms": round(float(p50), 3),
            "latency_p95_ms": round(float(p95), 3),
            "latency_p99_ms": round(float(p99), 3),
            "share_with_missing_features": round(
                float((answered["missing_features"].list.len() > 0).mean()), 4
            ),
            "files_before_compaction": compaction.files_before,
            "files": compaction.files_after,
            "rows_by_model": dg.MetadataValue.json({name: c.rows for name, c in compactions.items()}),
            "rows_dropped_by_model": dg.MetadataValue.json(
                {name: dropped_rows(platform.paths, name, day) for name in compactions}
            ),
            "path": dg.MetadataValue.path(str(day_dir(platform.paths, MODEL.name, day))),
        }
    )


@dg.asset(
    group_name="serving",
    partitions_def=daily_partitions,
    deps=[request_log, dg.AssetKey(EVENTS_TABLE)],
    kinds={"mlflow"},
    check_specs=[
        dg.AssetCheckSpec(
            CHALLENGER_CHECK,
            asset="online_evaluation",
            # Not blocking, as the offline gate: a challenger kept is the check working, not a
            # failed run; online_promotion acts only on a passed decision.
            blocking=False,
            description="The challenger (canary or shadow) scored enough labelled flights of the day "
            "and its online AUC is not more than the allowed loss below the champion's on the same "
            "traffic. online_promotion promotes it only when this passed.",
        )
    ],
    description="Logged predictions of the day joined with their validated outcomes: online AUC, log "
    "loss and calibration per variant and model version, and the challenger decision.",
)
def online_evaluation(
    context: dg.AssetExecutionContext, config: OnlineEvaluationConfig, platform: PlatformPathsResource
) -> dg.MaterializeResult:
    from platform_assets.serving.evaluation import day_outcomes, evaluate_day
    from platform_assets.serving.request_log_files import read_day

    day = context.partition_key
    paths = platform.paths
    outcomes = day_outcomes(paths, day)
    if outcomes.is_empty() or outcomes[MODEL.label].drop_nulls().is_empty():
        raise dg.Failure(f"no validated outcomes for flights of {day} yet: build the warehouse for it")
    report = evaluate_day(
        read_day(paths, MODEL.name, day), outcomes, MODEL.label, day, config.min_labelled, config.max_auc_loss
    )
    target = _reports(platform, "online_evaluation", day) / "evaluation.json"
    target.write_text(report.to_json())
    passed = report.decision == "promote"
    context.log.info(f"{day}: {report.decision}: {report.reason}")
    metrics = {
        f"{v.variant}_v{v.model_version}_{k}": round(getattr(v, k), 4)
        for v in report.variants
        for k in ("auc", "log_loss", "mean_score")
        if getattr(v, k) is not None
    }
    return dg.MaterializeResult(
        metadata={
            **metrics,
            "labelled_by_variant": dg.MetadataValue.json(
                {f"{v.variant} v{v.model_version}": v.labelled for v in report.variants}
            ),
            "decision": report.decision,
            "reason": report.reason,
            "paired_flights": report.paired_flights,
            "path": dg.MetadataValue.path(str(target)),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name=CHALLENGER_CHECK,
                passed=passed,
                # No challenger, or too few labels, is a warning: nothing is wrong, nothing decided.
                severity=dg.AssetCheckSeverity.ERROR
                if report.decision == "keep"
                else dg.AssetCheckSeverity.WARN,
                description=f"{'Promote' if passed else 'Keep the champion'}: {report.reason}.",
                metadata={"decision": report.decision, "challenger_version": report.challenger_version or "none"},
            )
        ],
    )


@dg.asset(
    group_name="serving",
    partitions_def=daily_partitions,
    deps=[online_evaluation],
    kinds={"mlflow"},
    output_required=False,
    description=f"Moves {MODEL.name}'s `champion` alias to the challenger when the day's "
    f"{CHALLENGER_CHECK} check passed (the replaced champion keeps `previous`); skipped otherwise. "
    "The server picks the new champion up without a restart.",
)
def online_promotion(
    context: dg.AssetExecutionContext, platform: PlatformPathsResource, mlflow_store: MLflowResource
) -> Iterator[dg.MaterializeResult]:
    from platform_assets.ml.registry import alias_version, promote
    from platform_assets.serving.evaluation import OnlineEvaluation
    from platform_assets.serving.rollout import CHALLENGER

    day = context.partition_key
    report = OnlineEvaluation.from_json(
        (_reports(platform, "online_evaluation", day) / "evaluation.json").read_text()
    )
    if report.decision != "promote":
        context.log.info(f"promotion skipped on {day}: {report.reason}")
        return
    client = mlflow_store.client()
    current = alias_version(client, CHALLENGER, MODEL.name)
    if current is None or str(current.version) != report.challenger_version:
        context.log.info(
            f"promotion skipped: the evidence is for v{report.challenger_version}, the challenger "
            f"is now {'v' + str(current.version) if current else 'none'}"
        )
        return
    promotion = promote(client, str(current.version), MODEL.name)
    client.delete_registered_model_alias(MODEL.name, CHALLENGER)
    client.set_model_version_tag(MODEL.name, current.version, "promoted_online_on", day)
    yield dg.MaterializeResult(
        metadata={
            "champion_version": promotion.champion,
            "previous_version": promotion.previous or "none",
            "evidence": report.reason,
        }
    )


@dg.asset(
    group_name="serving",
    partitions_def=daily_partitions,
    deps=[request_log, dg.AssetKey(EVENTS_TABLE)],
    kinds={"feast", "parquet"},
    description="Training/serving skew: the feature values the server used vs Feast's offline "
    "point-in-time values for the same flights at the same prediction time; a stale online store "
    "shows as skewed features.",
)
def serving_skew(
    context: dg.AssetExecutionContext,
    config: SkewConfig,
    platform: PlatformPathsResource,
    feast: dg.ResourceParam[Any],
) -> dg.MaterializeResult:
    import json

    import polars as pl

    from platform_assets.paths import write_parquet_atomic
    from platform_assets.serving.evaluation import day_outcomes, skew
    from platform_assets.serving.request_log_files import read_day

    day = context.partition_key
    paths = platform.paths
    log = read_day(paths, MODEL.name, day)
    if log.is_empty():
        raise dg.Failure(f"no requests logged for flights of {day}")
    report = skew(log, day_outcomes(paths, day), feast.store(), MODEL.feature_service, config.tolerance)
    folder = _reports(platform, "skew", day)
    write_parquet_atomic(pl.from_pandas(report.details), folder / "skewed_values.parquet")
    (folder / "summary.json").write_text(json.dumps(report.by_feature, indent=1))
    worst = sorted(report.by_feature.items(), key=lambda kv: -kv[1]["skewed_share"])[:5]
    return dg.MaterializeResult(
        metadata={
            "flights": report.flights,
            "compared": report.compared,
            "not_in_warehouse": report.not_in_warehouse,
            "skewed_flights": report.skewed_flights,
            "skewed_flight_share": round(report.skewed_flights / max(report.compared, 1), 4),
            "most_skewed_features": dg.MetadataValue.json(
                {name: round(v["skewed_share"], 4) for name, v in worst}
            ),
            "path": dg.MetadataValue.path(str(folder)),
        }
    )


@dg.asset(
    group_name="serving",
    deps=[dg.AssetKey([platform_constants.ONLINE_MODEL, "evaluation"])],
    kinds={"mlflow"},
    output_required=False,
    description=f"Gives {MODEL.name}'s gated candidate the alias `challenger` instead of `champion`: "
    "the model server then tries it live (canary or shadow) and online_promotion decides. Skipped "
    "when the candidate failed the offline gate.",
)
def serving_challenger(
    context: dg.AssetExecutionContext, mlflow_store: MLflowResource
) -> Iterator[dg.MaterializeResult]:
    from platform_assets.ml.registry import CANDIDATE, alias_version
    from platform_assets.serving.rollout import CHALLENGER

    client = mlflow_store.client()
    candidate = alias_version(client, CANDIDATE, MODEL.name)
    if candidate is None or candidate.tags.get("gate_passed") != "true":
        context.log.info(f"no gated candidate of {MODEL.name} to stage: the challenger stays")
        return
    client.set_registered_model_alias(MODEL.name, CHALLENGER, candidate.version)
    yield dg.MaterializeResult(
        metadata={
            "challenger_version": str(candidate.version),
            "holdout_auc": candidate.tags.get("holdout_auc", ""),
            "training_window": candidate.tags.get("training_window", ""),
        }
    )
