"""A declared model's training asset: a torch ensemble trained in an MLflow run, registered as the
candidate. Heavy libraries are imported inside the asset bodies, so loading the code location does
not pay for them."""

import json
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import dagster as dg

from platform_assets.lib.models.config import TrainingConfig
from platform_assets.lib.models.keys import ModelKeys
from platform_assets.lib.resources import MLflowResource, PlatformPathsResource
from platform_assets.ml.figures import markdown_image, training_curves
from platform_assets.ml.params import TrainParams
from platform_assets.ml.registry import CANDIDATE, CHAMPION
from platform_assets.ml.spec import ModelSpec
from platform_assets.months import MonthWindow

if TYPE_CHECKING:
    import polars as pl

    from platform_assets.ml.search import SearchOutcome
    from platform_assets.ml.training import FitResult

# Tags a registered version gets after training, the last of them written last: a version without
# all of them was interrupted and is never reused.
LINEAGE_TAGS = frozenset(
    {
        "dagster_run_id", "training_window", "training_data_sha256", "training_data_path",
        "mlflow_run_id", "raw_files", "feature_service", "label", "training_start_month",
        "training_end_month",
    }
)


def _log_epoch(member: int, epoch: int, metrics: dict[str, float]) -> None:
    import mlflow

    mlflow.log_metrics({f"member_{member}/{k}": v for k, v in metrics.items()}, step=epoch)


def _search(
    spec: ModelSpec, frame: "pl.DataFrame", base: TrainParams, config: TrainingConfig, study_name: str, log: Any
) -> "SearchOutcome":
    """An Optuna study run here, trial by trial, inside the training run (trials are child runs)."""
    from platform_assets.ml.search import create_study, optimize, outcome
    from platform_assets.settings import settings

    space, budget = config.search_space(), config.search_budget()
    study = create_study(study_name, base.seed, budget, storage=settings().optuna_storage)
    optimize(study, frame, spec.columns, base, space, budget, budget.trials, log_epoch=_log_epoch)
    found = outcome(study, base, space)
    log.info(
        f"search {study_name}: {len(found.trials)} trials ({found.completed} complete, {found.pruned} "
        f"pruned); best trial {found.best_trial}, val log loss {found.best_value:.4f}"
    )
    return found


def champion_recipe(client: Any, name: str) -> tuple[str, TrainParams] | None:
    """The champion's version and the hyperparameters it was trained with, if there is a champion."""
    from platform_assets.ml.registry import alias_version

    champion = alias_version(client, CHAMPION, name)
    if champion is None:
        return None
    return str(champion.version), TrainParams.from_mlflow_params(client.get_run(champion.run_id).data.params)


def resolve_recipe(
    context: dg.AssetExecutionContext, config: TrainingConfig, client: Any, spec: ModelSpec, paths: Any
) -> tuple[TrainParams, str]:
    """The hyperparameters this run trains with, and where they came from."""
    params = config.params()
    if config.search_study:
        from platform_assets.lib.models.search_job import study_recipe

        params = study_recipe(paths, config.search_study, params)
        context.log.info(f"hyperparameters of study {config.search_study}: {params.as_mlflow_params()}")
        return params, f"Optuna study {config.search_study}"
    if config.hyperparameters == "champion":
        found = champion_recipe(client, spec.name)
        if found is not None:
            # The champion's recipe; where this run trains (device) stays this run's.
            champion_version, recipe = found
            params = replace(recipe, device=params.device, mixed_precision=params.mixed_precision)
            context.log.info(f"hyperparameters of champion v{champion_version}: {params.as_mlflow_params()}")
            return params, f"champion v{champion_version}'s recipe"
    return params, "a search in this run" if config.search else "the configured ones"


def reuse_existing(
    context: dg.AssetExecutionContext,
    spec: ModelSpec,
    mlflow_store: MLflowResource,
    params: TrainParams,
    data_hash: str,
    window: MonthWindow,
) -> dg.MaterializeResult | None:
    """Same training set (sha256) and recipe as a registered version: that version is this model."""
    from platform_assets.ml.params import RUNTIME_PARAMS
    from platform_assets.ml.registry import version_with_recipe

    client = mlflow_store.client()
    existing = version_with_recipe(
        client, spec.name, {"training_data_sha256": data_hash}, params.as_mlflow_params(),
        RUNTIME_PARAMS, required_tags=LINEAGE_TAGS,
    )
    if existing is None:
        return None
    client.set_registered_model_alias(spec.name, CANDIDATE, str(existing.version))
    context.log.info(
        f"{spec.name} v{existing.version} was trained on this training set ({data_hash[:12]}) "
        "with this recipe: no new version; it is the candidate"
    )
    return dg.MaterializeResult(
        metadata={
            "model_name": spec.name,
            "model_version": str(existing.version),
            "reused_version": True,
            "model_uri": f"models:/{spec.name}/{existing.version}",
            "mlflow_run_id": existing.run_id,
            "model_version_url": mlflow_store.model_version_url(spec.name, str(existing.version)),
            "training_window": str(window),
            "training_data_sha256": data_hash,
        }
    )


def search_and_log(
    context: dg.AssetExecutionContext,
    spec: ModelSpec,
    frame: "pl.DataFrame",
    params: TrainParams,
    config: TrainingConfig,
    window: MonthWindow,
) -> tuple[TrainParams, dict[str, Any]]:
    """The search's winner and what the run's metadata says about the search (nothing without one)."""
    import mlflow

    if not config.search:
        return params, {}
    found = _search(spec, frame, params, config, f"{spec.name}-{window}-{context.run.run_id[:8]}", context.log)
    mlflow.log_dict({"trials": found.trials}, "search_trials.json")
    return found.best_params, {
        "search_trials_run": len(found.trials),
        "search_trials_complete": found.completed,
        "search_trials_pruned": found.pruned,
        "search_best_trial": found.best_trial,
        "search_best_trial_val_log_loss": round(found.best_value, 5),
        **config.search_space().as_mlflow_params(),
    }


def fit_and_log(
    spec: ModelSpec, frame: "pl.DataFrame", source: Any, params: TrainParams, logged: dict[str, Any]
) -> tuple["FitResult", Any]:
    """Train the ensemble inside the active MLflow run, log its recipe, curves and model."""
    import mlflow

    from platform_assets.ml.pyfunc import log_model
    from platform_assets.ml.training import fit

    # The recipe logged is the one that trained this model (the search's winner, if any).
    mlflow.log_params({**params.as_mlflow_params(), "training_rows_total": frame.height} | logged)
    # The training set as the run's dataset input (MLflow UI: "Datasets used"), named by its file.
    mlflow.log_input(
        mlflow.data.from_polars(frame, source=str(source), name=source.name, targets=spec.label),
        context="training",
    )
    result = fit(frame, params, spec.columns, on_epoch_end=_log_epoch)
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
    return result, log_model(result, frame.head(256), registered_name=spec.name)


def register(
    client: Any, spec: ModelSpec, version: str, tags: dict[str, str], lineage: str, window: MonthWindow,
    candidate: bool = True,
) -> None:
    """Tag the new version with its lineage, then (unless it is a refit) make it the candidate."""
    version_tags = {
        **tags,
        "raw_files": lineage,
        "feature_service": spec.feature_service,
        "label": spec.label,
        "training_start_month": window.start,
        "training_end_month": window.end,
    }
    for key, value in version_tags.items():
        client.set_model_version_tag(spec.name, version, key, value)
    if candidate:
        client.set_registered_model_alias(spec.name, CANDIDATE, version)


def model_metadata(
    spec: ModelSpec, result: "FitResult", version: str, run_url: str, version_url: str, facts: dict[str, Any]
) -> dict[str, Any]:
    return {
        "model_name": spec.name,
        "model_version": version,
        "model_uri": f"models:/{spec.name}/{version}",
        "mlflow_run_url": run_url,
        "model_version_url": version_url,
        "val_auc": round(result.val_metrics["auc"], 4),
        "val_log_loss": round(result.val_metrics["log_loss"], 4),
        "training_curves": dg.MetadataValue.md(
            markdown_image(
                training_curves(result.history),
                "validation loss per epoch",
                f"Validation log loss per epoch of each of the {len(result.best_epochs)} members; "
                f"best epochs {', '.join(map(str, result.best_epochs))}.",
            )
        ),
        "ensemble_size": len(result.best_epochs),
        "best_epochs": ",".join(map(str, result.best_epochs)),
        "epochs_run": len(result.history),
        "train_rows": result.train_rows,
        "validation_rows": result.validation_rows,
        "validation_start": result.validation_start,
        "device": result.device,
        "samples_per_second": round(result.samples_per_second),
        **facts,
    }


def train_candidate(
    spec: ModelSpec,
    keys: ModelKeys,
    context: dg.AssetExecutionContext,
    config: Any,
    platform: PlatformPathsResource,
    mlflow_store: MLflowResource,
) -> dg.MaterializeResult:
    """Train (or reuse) the candidate for the configured window: an MLflow run and a registered version."""
    import mlflow
    import polars as pl

    from platform_assets.events import file_sha256
    from platform_assets.featurestore.lineage import raw_files_json, write_model_lineage
    from platform_assets.ml.preprocessing import labelled

    window = config.window()
    paths = platform.paths
    source = paths.training_set_file(window.start, window.end, keys.name("training_set"))
    if not source.exists():
        raise dg.Failure(
            f"training set {source} does not exist: materialize {keys.training_set.to_user_string()} "
            f"with start_month={window.start}, end_month={window.end} first"
        )
    data_hash = file_sha256(source)
    experiment_id = mlflow_store.activate(spec.experiment)
    client = mlflow_store.client()
    params, recipe_source = resolve_recipe(context, config, client, spec, paths)
    if not config.search and not config.retrain_unchanged:
        reused = reuse_existing(context, spec, mlflow_store, params, data_hash, window)
        if reused is not None:
            return reused
    frame = labelled(pl.read_parquet(source), spec.label)
    tags = {
        "dagster_run_id": context.run.run_id,
        "training_window": str(window),
        "training_data_sha256": data_hash,
        "training_data_path": str(source),
    }
    started = time.perf_counter()
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"{keys.model.to_user_string()} {window}", tags=tags) as run:
        params, search_facts = search_and_log(context, spec, frame, params, config, window)
        logged = {"search": config.search, "hyperparameters_from": recipe_source} | search_facts
        result, info = fit_and_log(spec, frame, source, params, logged)
    version = str(info.registered_model_version)
    # One read of the validated partitions: the lineage table and the raw_files tag.
    lineage = raw_files_json(write_model_lineage(paths, spec.name, version, window.months, str(source)))
    register(client, spec, version, {**tags, "mlflow_run_id": run.info.run_id}, lineage, window)
    context.log.info(
        f"registered {spec.name} v{version}: val AUC {result.val_metrics['auc']:.4f} on {result.device}"
    )
    facts = {
        "mlflow_run_id": run.info.run_id,
        "training_window": tags["training_window"],
        "training_data_sha256": data_hash,
        "raw_files": dg.MetadataValue.json(json.loads(lineage)),
        "train_seconds": round(time.perf_counter() - started, 1),
        "hyperparameters": dg.MetadataValue.json(params.as_mlflow_params()),
        "hyperparameters_from": recipe_source,
        **search_facts,
    }
    return dg.MaterializeResult(
        metadata=model_metadata(
            spec, result, version, mlflow_store.run_url(experiment_id, run.info.run_id),
            mlflow_store.model_version_url(spec.name, version), facts,
        )
    )


def build_model_asset(
    spec: ModelSpec, keys: ModelKeys, config_type: type[TrainingConfig], op_tags: dict[str, Any]
) -> dg.AssetsDefinition:
    """Train a candidate: an MLflow run and a registered version with the alias `candidate`."""

    @dg.asset(
        key=keys.model,
        group_name=keys.prefix,
        deps=[keys.training_set],
        kinds={"pytorch", "mlflow"},
        tags={"compute": "gpu"},
        # On k8s this step's pod asks for nvidia.com/gpu on the GPU node pool; ignored locally.
        op_tags=op_tags,
        description=f"PyTorch classifier of {spec.label} (the mean of `ensemble_size` small MLPs) "
        f"trained on {keys.training_set.to_user_string()}, registered in MLflow as {spec.name}'s candidate.",
    )
    def model(
        context: dg.AssetExecutionContext,
        config: config_type,  # type: ignore[valid-type]
        platform: PlatformPathsResource,
        mlflow_store: MLflowResource,
    ) -> dg.MaterializeResult:
        return train_candidate(spec, keys, context, config, platform, mlflow_store)

    return model
