"""The delay model: trained in torch and tracked in MLflow, gated on a held-out window, promoted by alias."""

import time
from dataclasses import replace
from typing import Any

import dagster as dg
import mlflow
import numpy as np
import polars as pl
from pydantic import Field

from platform_assets.defs.training.checks import PROMOTION_GATE, gate_result, gate_spec
from platform_assets.defs.training.evaluation import evaluate_candidate, holdout_months
from platform_assets.defs.training.resources import MLflowResource
from platform_assets.lib import constants
from platform_assets.lib.k8s import training_op_tags
from platform_assets.lib.mlflow_utils import CANDIDATE, alias_version, log_delay_model, promote
from platform_assets.lib.model import FitResult, TrainParams, fit, labelled
from platform_assets.lib.model_features import file_sha256, raw_lineage
from platform_assets.lib.partitions import monthly_partitions
from platform_assets.lib.resources import PlatformPathsResource

# Hyperparameter variations tried, in order, when the search is on; the first is the default.
SEARCH_SPACE: tuple[dict[str, Any], ...] = (
    {},
    {"learning_rate": 3e-3},
    {"hidden_sizes": (128,)},
    {"hidden_sizes": (32,), "dropout": 0.3},
    {"learning_rate": 3e-4, "weight_decay": 1e-3},
    {"hidden_sizes": (128, 64), "dropout": 0.3},
)


class TrainingConfig(dg.Config):
    start_month: str = Field(
        default=constants.TRAINING_SET_START_MONTH,
        description="First month (YYYY-MM) of the training window; must match training_set's.",
    )
    end_month: str = Field(
        default=constants.TRAINING_SET_END_MONTH,
        description="Last month (YYYY-MM) of the training window; must match training_set's.",
    )
    hidden_sizes: list[int] = Field(
        default=list(constants.TRAIN_HIDDEN_SIZES), description="Widths of the MLP's hidden layers."
    )
    dropout: float = Field(
        default=constants.TRAIN_DROPOUT, description="Dropout after each hidden layer."
    )
    learning_rate: float = Field(
        default=constants.TRAIN_LEARNING_RATE, description="AdamW learning rate."
    )
    weight_decay: float = Field(
        default=constants.TRAIN_WEIGHT_DECAY, description="AdamW weight decay."
    )
    batch_size: int = Field(
        default=constants.TRAIN_BATCH_SIZE, description="Rows per optimiser step."
    )
    max_epochs: int = Field(
        default=constants.TRAIN_MAX_EPOCHS,
        description="Upper bound on epochs; early stopping usually ends sooner.",
    )
    patience: int = Field(
        default=constants.TRAIN_PATIENCE,
        description="Epochs without a better validation loss before stopping.",
    )
    min_epochs: int = Field(
        default=constants.TRAIN_MIN_EPOCHS,
        description="Epochs always trained before early stopping may keep an earlier epoch; guards "
        "against an atypical validation window (late April 2013) stopping training after one epoch.",
    )
    validation_days: int = Field(
        default=constants.TRAIN_VALIDATION_DAYS,
        description="The last N days of the window validate (time split, never random).",
    )
    seed: int = Field(
        default=constants.TRAIN_SEED,
        description="Seed of weights and batch order (member k uses seed + k); same data + config "
        "gives the same model.",
    )
    ensemble_size: int = Field(
        default=constants.TRAIN_ENSEMBLE_SIZE,
        ge=1,
        description="Networks trained from consecutive seeds and averaged (mean logit); 1 trains a "
        "single network in a fifth of the time, at the cost of 0.01-0.02 AUC of seed-to-seed spread.",
    )
    device: str = Field(
        default="auto", description="'auto' (CUDA when available, else CPU), 'cpu' or 'cuda'."
    )
    mixed_precision: bool = Field(
        default=True, description="bf16 autocast on CUDA; the CPU path always runs float32."
    )
    search: bool = Field(
        default=False,
        description="Try a few hyperparameter variations as MLflow child runs and keep the best on validation loss.",
    )
    search_trials: int = Field(
        default=constants.SEARCH_TRIALS,
        description="How many variations the search tries (at most 6).",
    )

    def params(self) -> TrainParams:
        return TrainParams(
            hidden_sizes=tuple(self.hidden_sizes),
            dropout=self.dropout,
            learning_rate=self.learning_rate,
            weight_decay=self.weight_decay,
            batch_size=self.batch_size,
            max_epochs=self.max_epochs,
            patience=self.patience,
            min_epochs=self.min_epochs,
            validation_days=self.validation_days,
            seed=self.seed,
            ensemble_size=self.ensemble_size,
            device=self.device,
            mixed_precision=self.mixed_precision,
        )


class EvaluationConfig(dg.Config):
    holdout_months: int = Field(
        default=constants.HOLDOUT_MONTHS,
        description="Months right after the candidate's training window that it is scored on.",
    )
    min_auc_gain: float = Field(
        default=constants.PROMOTION_MIN_AUC_GAIN,
        description="Candidate AUC must be at least the champion's plus this (negative tolerates a small loss).",
    )
    min_auc: float = Field(
        default=constants.BASELINE_MIN_AUC,
        description="AUC the candidate must exceed; 0.5 is the base-rate predictor's.",
    )
    feature_service: str = Field(
        default=constants.FEATURE_SERVICE,
        description="Feast feature service the held-out rows are fetched through.",
    )


def _log_epoch(member: int, epoch: int, metrics: dict[str, float]) -> None:
    mlflow.log_metrics({f"member_{member}/{k}": v for k, v in metrics.items()}, step=epoch)


def _search(frame: pl.DataFrame, base: TrainParams, trials: int, log: Any) -> tuple[FitResult, int]:
    """Child run per variation; the one with the lowest best validation loss wins."""
    results: list[FitResult] = []
    for trial, change in enumerate(SEARCH_SPACE[: max(1, min(trials, len(SEARCH_SPACE)))]):
        params = replace(base, **change)
        with mlflow.start_run(run_name=f"trial-{trial}", nested=True):
            mlflow.log_params({**params.as_mlflow_params(), "trial": trial})
            result = fit(frame, params, on_epoch_end=_log_epoch)
            mlflow.log_metrics({f"best_{k}": v for k, v in result.val_metrics.items()})
        log.info(
            f"trial {trial} {change or 'defaults'}: val log loss {result.val_metrics['log_loss']:.4f}"
        )
        results.append(result)
    best = min(range(len(results)), key=lambda i: results[i].val_metrics["log_loss"])
    return results[best], best


@dg.asset(
    group_name="training",
    deps=["training_set"],
    kinds={"pytorch", "mlflow"},
    tags={"compute": "gpu"},
    # On k8s this step's pod asks for nvidia.com/gpu on the GPU node pool; ignored locally.
    op_tags=training_op_tags(),
)
def delay_model(
    context: dg.AssetExecutionContext,
    config: TrainingConfig,
    platform: PlatformPathsResource,
    mlflow_store: MLflowResource,
) -> dg.MaterializeResult:
    """PyTorch delay classifier (the mean of `ensemble_size` small MLPs) trained on the point-in-time
    training set, registered in MLflow as the candidate."""
    paths = platform.paths
    source = paths.training_set_file(config.start_month, config.end_month)
    if not source.exists():
        raise dg.Failure(
            f"training set {source} does not exist: materialize training_set with start_month="
            f"{config.start_month}, end_month={config.end_month} first"
        )
    data_hash = file_sha256(source)
    frame = labelled(pl.read_parquet(source))
    window = monthly_partitions.get_partition_keys_in_range(
        dg.PartitionKeyRange(config.start_month, config.end_month)
    )
    params = config.params()
    experiment_id = mlflow_store.activate()
    tags = {
        "dagster_run_id": context.run.run_id,
        "training_window": f"{config.start_month}..{config.end_month}",
        "training_data_sha256": data_hash,
        "training_data_path": str(source),
    }
    started = time.perf_counter()
    with mlflow.start_run(
        experiment_id=experiment_id,
        run_name=f"delay_model {config.start_month}..{config.end_month}",
        tags=tags,
    ) as run:
        mlflow.log_params(
            {
                **params.as_mlflow_params(),
                "search": config.search,
                "training_rows_total": frame.height,
            }
        )
        if config.search:
            result, best_trial = _search(frame, params, config.search_trials, context.log)
            mlflow.log_params(
                {f"best_{k}": v for k, v in result.params.as_mlflow_params().items()}
                | {"best_trial": best_trial}
            )
        else:
            result = fit(frame, params, on_epoch_end=_log_epoch)
        mlflow.log_metrics(
            {f"val_{k}": v for k, v in result.val_metrics.items()}
            | {
                **{f"member_{k}/best_epoch": e for k, e in enumerate(result.best_epochs)},
                "samples_per_second": result.samples_per_second,
                "train_rows": result.train_rows,
                "validation_rows": result.validation_rows,
            }
        )
        mlflow.set_tags({"device": result.device, "validation_start": result.validation_start})
        info = log_delay_model(result, frame.head(256), registered_name=constants.MODEL_NAME)
    version = str(info.registered_model_version)
    client = mlflow_store.client()
    version_tags = {
        **tags,
        "mlflow_run_id": run.info.run_id,
        "raw_files": raw_lineage(paths, window),
        "feature_service": constants.FEATURE_SERVICE,
        "training_start_month": config.start_month,
        "training_end_month": config.end_month,
    }
    for key, value in version_tags.items():
        client.set_model_version_tag(constants.MODEL_NAME, version, key, value)
    client.set_registered_model_alias(constants.MODEL_NAME, CANDIDATE, version)
    context.log.info(
        f"registered {constants.MODEL_NAME} v{version}: val AUC {result.val_metrics['auc']:.4f} on {result.device}"
    )
    return dg.MaterializeResult(
        metadata={
            "model_name": constants.MODEL_NAME,
            "model_version": version,
            "model_uri": f"models:/{constants.MODEL_NAME}/{version}",
            "mlflow_run_id": run.info.run_id,
            "mlflow_run_url": mlflow_store.run_url(experiment_id, run.info.run_id),
            "val_auc": result.val_metrics["auc"],
            "val_log_loss": result.val_metrics["log_loss"],
            "ensemble_size": len(result.best_epochs),
            "best_epochs": ",".join(map(str, result.best_epochs)),
            "epochs_run": len(result.history),
            "train_rows": result.train_rows,
            "validation_rows": result.validation_rows,
            "validation_start": result.validation_start,
            "training_window": tags["training_window"],
            "training_data_sha256": data_hash,
            "device": result.device,
            "samples_per_second": round(result.samples_per_second),
            "train_seconds": round(time.perf_counter() - started, 1),
        }
    )


@dg.asset(
    group_name="training",
    deps=[delay_model],
    kinds={"mlflow", "scikit-learn"},
    check_specs=[gate_spec()],
)
def model_evaluation(
    context: dg.AssetExecutionContext,
    config: EvaluationConfig,
    platform: PlatformPathsResource,
    mlflow_store: MLflowResource,
    feast: dg.ResourceParam[Any],
) -> dg.MaterializeResult:
    """The candidate against the champion, a HistGradientBoosting baseline and the base rate on unseen months."""
    experiment_id = mlflow_store.activate()
    client = mlflow_store.client()
    candidate = alias_version(client, CANDIDATE)
    if candidate is None:
        raise dg.Failure(
            f"{constants.MODEL_NAME} has no '{CANDIDATE}' version: materialize delay_model first"
        )
    months = holdout_months(candidate.tags["training_end_month"], config.holdout_months)
    report = evaluate_candidate(
        platform.paths, client, candidate, feast.store(), months, config.feature_service
    )
    decision = gate_result(report, config.min_auc_gain, config.min_auc)
    flat = report.flat_metrics()
    with mlflow.start_run(
        experiment_id=experiment_id,
        run_name=f"evaluate v{candidate.version}",
        tags={
            "dagster_run_id": context.run.run_id,
            "candidate_version": candidate.version,
            "champion_version": report.champion_version or "",
            "holdout_months": ",".join(months),
        },
    ) as run:
        mlflow.log_params(
            {
                "min_auc_gain": config.min_auc_gain,
                "min_auc": config.min_auc,
                "holdout_rows": report.rows,
            }
        )
        mlflow.log_metrics({k: v for k, v in flat.items() if np.isfinite(v)})
        mlflow.log_dict(report.reliability, "reliability.json")
        mlflow.set_tag("gate_passed", str(decision.passed).lower())
    client.set_model_version_tag(
        constants.MODEL_NAME, candidate.version, "gate_passed", str(decision.passed).lower()
    )
    client.set_model_version_tag(
        constants.MODEL_NAME,
        candidate.version,
        "holdout_auc",
        f"{report.metrics['candidate']['auc']:.5f}",
    )
    client.set_model_version_tag(
        constants.MODEL_NAME, candidate.version, "evaluation_run_id", run.info.run_id
    )
    return dg.MaterializeResult(
        metadata={
            "candidate_version": candidate.version,
            "champion_version": report.champion_version or "none",
            "holdout_months": ",".join(months),
            "holdout_rows": report.rows,
            **{k: round(v, 5) for k, v in flat.items() if np.isfinite(v)},
            "comparison": dg.MetadataValue.md(report.markdown()),
            "candidate_reliability": dg.MetadataValue.json(report.reliability["candidate"]),
            "mlflow_run_id": run.info.run_id,
            "mlflow_run_url": mlflow_store.run_url(experiment_id, run.info.run_id),
        },
        check_results=[decision],
    )


@dg.asset(group_name="training", deps=[model_evaluation], kinds={"mlflow"})
def champion(
    context: dg.AssetExecutionContext, mlflow_store: MLflowResource
) -> dg.MaterializeResult:
    """Gives the gated candidate the MLflow alias `champion`; the replaced champion keeps `previous`."""
    client = mlflow_store.client()
    candidate = alias_version(client, CANDIDATE)
    if candidate is None:
        raise dg.Failure(f"{constants.MODEL_NAME} has no '{CANDIDATE}' version")
    # The blocking check already stops this step in the evaluating run; this also covers runs of `champion` alone.
    if candidate.tags.get("gate_passed") != "true":
        raise dg.Failure(
            f"{constants.MODEL_NAME} v{candidate.version} has not passed the {PROMOTION_GATE}"
        )
    promotion = promote(client, candidate.version)
    client.set_model_version_tag(
        constants.MODEL_NAME, candidate.version, "promoted_by_dagster_run", context.run.run_id
    )
    context.log.info(f"champion is now v{promotion.champion} (previous: {promotion.previous})")
    return dg.MaterializeResult(
        metadata={
            "champion_version": promotion.champion,
            "previous_version": promotion.previous or "none",
            "holdout_auc": float(candidate.tags.get("holdout_auc", "nan")),
            "training_window": candidate.tags.get("training_window", ""),
            "model_url": mlflow_store.model_version_url(constants.MODEL_NAME, promotion.champion),
        }
    )
