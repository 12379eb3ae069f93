"""Drift reports: each month's features and predictions against the champion's training data."""

import dagster as dg
import polars as pl
from pydantic import Field

from platform_assets.defs.training.evaluation import predict_version
from platform_assets.defs.training.resources import MLflowResource
from platform_assets.lib import constants
from platform_assets.lib.drift import PREDICTION, TARGET, deterministic_sample, run_drift_report
from platform_assets.lib.model import feature_columns
from platform_assets.lib.partitions import monthly_partitions
from platform_assets.lib.resources import PlatformPathsResource


class DriftConfig(dg.Config):
    sample_rows: int = Field(
        default=constants.DRIFT_SAMPLE_ROWS,
        description="Rows per side compared; larger months are sampled by a hash of flight_id, so the same rows every time.",
    )


@dg.asset(
    group_name="monitoring",
    partitions_def=monthly_partitions,
    deps=["flight_predictions"],
    kinds={"evidently", "html"},
)
def drift_report(
    context: dg.AssetExecutionContext,
    config: DriftConfig,
    platform: PlatformPathsResource,
    mlflow_store: MLflowResource,
) -> dg.MaterializeResult:
    """Evidently report of the month vs the champion's training data: feature drift, prediction drift, AUC."""
    month = context.partition_key
    paths = platform.paths
    scored = pl.read_parquet(paths.predictions_file(month))
    version = scored["model_version"][0]
    model = mlflow_store.client().get_model_version(constants.MODEL_NAME, version)
    reference = pl.read_parquet(model.tags["training_data_path"])
    numeric, categorical = feature_columns(reference)

    current = deterministic_sample(scored.filter(pl.col(TARGET).is_not_null()).to_pandas(), config.sample_rows)
    baseline = deterministic_sample(reference.to_pandas(), config.sample_rows)
    baseline[PREDICTION] = predict_version(constants.MODEL_NAME, version, baseline)

    folder = paths.drift_report_dir(month)
    summary = run_drift_report(
        baseline, current, numeric, categorical, folder / "drift_report.html", folder / "drift_report.json"
    )
    holdout_auc = float(model.tags.get("holdout_auc", "nan"))
    auc_drop = holdout_auc - summary.auc if summary.auc is not None else None
    context.log.info(
        f"{month}: drift share {summary.drift_share:.2f} ({', '.join(summary.drifted_columns) or 'none'}), "
        f"AUC {summary.auc:.4f} vs champion's held-out {holdout_auc:.4f}"
    )
    return dg.MaterializeResult(
        metadata={
            "drift_share": summary.drift_share,
            "drifted_columns": summary.drifted_columns,
            "n_drifted_columns": len(summary.drifted_columns),
            "column_drift_scores": summary.column_scores,
            "prediction_drift_score": summary.prediction_drift_score,
            "prediction_drifted": summary.prediction_drifted,
            "auc": summary.auc,
            "champion_holdout_auc": holdout_auc,
            "auc_drop": auc_drop,
            "model_version": version,
            "reference_window": model.tags.get("training_window", ""),
            "rows_compared": {"current": summary.rows_current, "reference": summary.rows_reference},
            "report_html": dg.MetadataValue.path(str(folder / "drift_report.html")),
            "report_json": dg.MetadataValue.path(str(folder / "drift_report.json")),
            "open_report": dg.MetadataValue.url((folder / "drift_report.html").resolve().as_uri()),
        }
    )
