"""A declared model's monthly loop: every flight of the month scored by the champion, then the
Evidently drift report and the month's AUC interval its retrain sensor decides on."""

from typing import Any

import dagster as dg

from platform_assets import constants
from platform_assets.events import EVENTS_TABLE
from platform_assets.lib.models.config import DriftConfig, ScoringConfig
from platform_assets.lib.models.keys import ModelKeys
from platform_assets.lib.models.metadata import missing_features, missing_table
from platform_assets.lib.partitions import monthly_partitions
from platform_assets.lib.resources import MLflowResource, PlatformPathsResource
from platform_assets.ml.figures import bars, markdown_image
from platform_assets.ml.spec import ModelSpec

NOT_SCORED = (
    "Months before the first champion are not scored, by design: in the replay, "
    f"{constants.TRAINING_SET_START_MONTH}..{constants.TRAINING_SET_END_MONTH} train the first champion "
    f"and scoring starts at {constants.REPLAY_FIRST_SCORED_MONTH}, so the earlier partitions stay "
    "missing."
)


def score_month(
    spec: ModelSpec,
    keys: ModelKeys,
    context: dg.AssetExecutionContext,
    config: ScoringConfig,
    platform: PlatformPathsResource,
    mlflow_store: MLflowResource,
    feast: dg.ResourceParam[Any],
) -> dg.MaterializeResult:
    """Score the partition's month with the aliased version: features, lineage and the score per flight."""
    import numpy as np
    import polars as pl

    from platform_assets.events import flight_events
    from platform_assets.featurestore.feast import historical_features
    from platform_assets.ml.pyfunc import predict_version
    from platform_assets.ml.registry import alias_version
    from platform_assets.paths import write_parquet_atomic

    month = context.partition_key
    paths = platform.paths
    version = alias_version(mlflow_store.client(), config.model_alias, spec.name)
    if version is None:
        raise dg.Failure(
            f"{spec.name} has no '{config.model_alias}' version: train and promote one first"
        )
    events = flight_events(paths, [month], spec.label)
    if events.is_empty():
        raise dg.Failure(f"no flights for {month} in {paths.feature_tables}")
    # With, per feature view, the event timestamp of the row each prediction was scored with.
    features = historical_features(
        feast.store(), events.to_pandas(), spec.feature_service, feature_timestamps=True
    )
    proba = predict_version(spec.name, str(version.version), features)
    # The prediction log keeps the features and the label beside each score: drift reports
    # and audits read exactly what the model saw.
    predictions = pl.from_pandas(features).with_columns(
        pl.col("flight_id").cast(pl.String),
        pl.lit(month).alias("flight_month"),
        pl.Series(spec.prediction, proba),
        pl.lit(spec.name).alias("model_name"),
        pl.lit(str(version.version)).alias("model_version"),
        pl.lit(config.model_alias).alias("model_alias"),
        pl.lit(spec.feature_service).alias("feature_service"),
        pl.lit(version.tags.get("training_window", "")).alias("training_window"),
        pl.lit(context.run.run_id).alias("dagster_run_id"),
    )
    target = paths.predictions_file(month, keys.name("predictions"))
    write_parquet_atomic(predictions, target)
    missing = missing_features(predictions, spec)
    if missing:
        context.log.warning(
            f"{month}: features missing at score time (scored through the model's missing-value "
            f"path): {', '.join(f'{c} {n}' for c, n in missing.items())}"
        )
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": predictions.height,
            "rows_with_missing_features": int(
                predictions.select(pl.any_horizontal(pl.col(list(missing)).is_null()).sum()).item()
            )
            if missing
            else 0,
            "missing_features": missing_table(missing, predictions.height),
            "model_version": str(version.version),
            "model_uri": f"models:/{spec.name}/{version.version}",
            "training_window": version.tags.get("training_window", ""),
            "feature_service": spec.feature_service,
            f"mean_{spec.prediction}": round(float(np.mean(proba)), 4),
            "share_above_half": round(float(np.mean(proba > 0.5)), 4),
            "model_version_url": mlflow_store.model_version_url(spec.name, str(version.version)),
            "unlabelled": int(events[spec.label].null_count()),
            "path": dg.MetadataValue.path(str(target)),
        }
    )


def build_predictions_asset(spec: ModelSpec, keys: ModelKeys) -> dg.AssetsDefinition:
    """Every flight of a month scored by the model's champion, with features and lineage per row."""

    @dg.asset(
        key=keys.predictions,
        group_name=keys.prefix,
        partitions_def=monthly_partitions,
        deps=[keys.champion, EVENTS_TABLE],
        kinds={"mlflow", "feast", "parquet"},
        description=f"{spec.name}'s probability of {spec.label} for every validated flight of the "
        f"month, scored by the champion. {NOT_SCORED}",
    )
    def predictions(
        context: dg.AssetExecutionContext,
        config: ScoringConfig,
        platform: PlatformPathsResource,
        mlflow_store: MLflowResource,
        feast: dg.ResourceParam[Any],
    ) -> dg.MaterializeResult:
        return score_month(spec, keys, context, config, platform, mlflow_store, feast)

    return predictions


def drift_metadata(summary: Any) -> dict[str, Any]:
    """Evidently's verdicts per column and on the prediction, as the report's metadata."""
    scores = sorted(summary.column_scores.items(), key=lambda item: -item[1])
    return {
        # The drift sensor decides on these two: rounded only where no threshold can tell.
        "drift_share": round(summary.drift_share, 4),
        "drifted_columns": ", ".join(summary.drifted_columns) or "none",
        "n_drifted_columns": len(summary.drifted_columns),
        "column_drift": dg.MetadataValue.md(
            markdown_image(
                bars([c for c, _ in scores], [v for _, v in scores], "drift score (Evidently's per-column test)"),
                "drift score per column",
                f"{len(summary.drifted_columns)} of {len(scores)} features drifted "
                f"(share {summary.drift_share:.2f}); reported every month, a retraining "
                "trigger only when the policy sets a drift share threshold.",
            )
        ),
        "prediction_drift_score": round(summary.prediction_drift_score, 4),
        "prediction_drifted": summary.prediction_drifted,
    }


def report_month(
    spec: ModelSpec,
    keys: ModelKeys,
    context: dg.AssetExecutionContext,
    config: DriftConfig,
    platform: PlatformPathsResource,
    mlflow_store: MLflowResource,
) -> dg.MaterializeResult:
    """The month's Evidently report against the scoring version's training data, and its AUC interval."""
    import polars as pl

    from platform_assets.ml.drift import deterministic_sample, run_drift_report
    from platform_assets.ml.metrics import auc_interval, rank_auc
    from platform_assets.ml.pyfunc import predict_version

    month = context.partition_key
    paths = platform.paths
    scored = pl.read_parquet(paths.predictions_file(month, keys.name("predictions")))
    version = scored["model_version"][0]
    model = mlflow_store.client().get_model_version(spec.name, version)
    reference = pl.read_parquet(model.tags["training_data_path"])
    numeric, categorical = spec.columns.features(reference)

    labelled_month = scored.filter(pl.col(spec.label).is_not_null())
    current = deterministic_sample(labelled_month.to_pandas(), config.sample_rows)
    baseline = deterministic_sample(reference.to_pandas(), config.sample_rows)
    baseline[spec.prediction] = predict_version(spec.name, version, baseline)

    folder = paths.drift_report_dir(month, keys.name("drift_report"))
    summary = run_drift_report(
        baseline,
        current,
        numeric,
        categorical,
        folder / "drift_report.html",
        folder / "drift_report.json",
        target=spec.label,
        prediction=spec.prediction,
    )
    # The retraining decision reads the whole month, not Evidently's sample: every labelled
    # flight, with a seeded bootstrap interval (milliseconds per resample).
    y, p = labelled_month[spec.label].to_numpy(), labelled_month[spec.prediction].to_numpy()
    auc = rank_auc(y, p)
    auc_low, auc_high = auc_interval(y, p, resamples=constants.AUC_INTERVAL_RESAMPLES)
    holdout_auc = float(model.tags.get("holdout_auc", "nan"))
    auc_drop = holdout_auc - auc
    context.log.info(
        f"{month}: drift share {summary.drift_share:.2f} ({', '.join(summary.drifted_columns) or 'none'}), "
        f"AUC {auc:.4f} (95% {auc_low:.4f}-{auc_high:.4f}, {len(y)} flights) vs champion's held-out "
        f"{holdout_auc:.4f}"
    )
    missing = missing_features(scored, spec)
    return dg.MaterializeResult(
        metadata={
            **drift_metadata(summary),
            # The policy decides on these: rounded only where no threshold can tell.
            "auc": round(auc, 6),
            "auc_ci_low": round(auc_low, 6),
            "auc_ci_high": round(auc_high, 6),
            "auc_rows": len(y),
            "auc_sample": round(summary.auc, 4) if summary.auc is not None else None,
            "champion_holdout_auc": round(holdout_auc, 6),
            "auc_drop": round(auc_drop, 6),
            "auc_drop_significant": round(holdout_auc - auc_high, 6),
            "model_version": version,
            "model_version_url": mlflow_store.model_version_url(spec.name, version),
            "reference_window": model.tags.get("training_window", ""),
            "missing_features": missing_table(missing, scored.height),
            "rows_current": summary.rows_current,
            "rows_reference": summary.rows_reference,
            "open_report": platform.report_link(folder / "drift_report.html"),
            "report_json": platform.report_link(folder / "drift_report.json"),
        }
    )


def build_drift_report_asset(spec: ModelSpec, keys: ModelKeys) -> dg.AssetsDefinition:
    """Evidently report of a month's prediction log against the champion's training data."""

    @dg.asset(
        key=keys.drift_report,
        group_name=keys.prefix,
        partitions_def=monthly_partitions,
        deps=[keys.predictions],
        kinds={"evidently", "html"},
        description=f"Evidently report of the month vs {spec.name}'s champion's training data: "
        f"feature drift, prediction drift, AUC. {NOT_SCORED}",
    )
    def drift_report(
        context: dg.AssetExecutionContext,
        config: DriftConfig,
        platform: PlatformPathsResource,
        mlflow_store: MLflowResource,
    ) -> dg.MaterializeResult:
        return report_month(spec, keys, context, config, platform, mlflow_store)

    return drift_report
