"""A hyperparameter search as a job that fans its trials out: one step per worker, each a pod on k8s.

plan_search creates the Optuna study in storage every worker reaches (PLATFORM_OPTUNA_STORAGE, e.g.
Postgres on a cluster; a SQLite file under PLATFORM_HOME on one machine) and an MLflow parent run,
then fans out one `search_worker` per worker (a Dagster dynamic output). Under the k8s executor each
worker is its own pod (the training pod's GPU spec), pulling trials from the shared study until
the budget is spent; on one machine they run one after another in the run's process. collect_search
picks the winner and logs it on the parent run; `delay_model` trains it with `search_study`.
"""


from collections.abc import Iterator, Mapping
from typing import Any

import dagster as dg
from pydantic import Field

from platform_assets import constants
from platform_assets.lib.resources import MLflowResource, PlatformPathsResource
from platform_assets.ml.params import DEFAULT_PARAMS, TrainParams
from platform_assets.ml.search import SearchBudget, SearchSpace
from platform_assets.ml.spec import ModelSpec
from platform_assets.paths import PlatformPaths

__all__ = ["SearchJobConfig", "build_search_job", "study_recipe", "study_storage"]


def study_storage(paths: PlatformPaths) -> str:
    """Where studies live: the configured RDB URL, else a SQLite file in PLATFORM_HOME."""
    from platform_assets.settings import settings

    configured = settings().optuna_storage
    if configured:
        return configured
    target = paths.home / "optuna" / "studies.db"
    target.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{target}"


class SearchJobConfig(dg.Config):
    start_month: str = Field(default=constants.TRAINING_SET_START_MONTH, description="First month of the window.")
    end_month: str = Field(default=constants.TRAINING_SET_END_MONTH, description="Last month of the window.")
    study_name: str = Field(default="", description="Study name; empty: <model>-<window>-<run id>.")
    trials: int = Field(default=constants.SEARCH_TRIALS, ge=1, description="Trials over all workers.")
    workers: int = Field(default=2, ge=1, description="Parallel search steps (pods on k8s).")
    trial_members: int = Field(default=1, ge=1, description="Ensemble members each trial trains.")
    seed: int = Field(default=DEFAULT_PARAMS.seed, description="Sampler seed; worker k samples with seed + k.")


def build_search_job(
    spec: ModelSpec, *, training_set: str, name: str, op_tags: Mapping[str, Any] | None = None, op_prefix: str = ""
) -> dg.JobDefinition:
    """The search job; `op_prefix` (the model's key prefix) keeps op names unique across models."""

    @dg.op(name=f"{op_prefix}plan_search", out=dg.DynamicOut(dict), tags={"kind": "optuna"})
    def plan_search(
        context: dg.OpExecutionContext,
        config: SearchJobConfig,
        platform: PlatformPathsResource,
        mlflow_store: MLflowResource,
    ) -> Iterator[dg.DynamicOutput[dict]]:
        """Create the study and the MLflow parent run; one output per worker, with its trial share."""
        yield from _plan_search(spec, training_set, context, config, platform, mlflow_store)

    @dg.op(name=f"{op_prefix}search_worker", tags={"kind": "pytorch", **(op_tags or {})})
    def search_worker(context: dg.OpExecutionContext, mlflow_store: MLflowResource, plan: dict) -> dict:
        """Run this worker's share of trials against the shared study (trials: MLflow child runs)."""
        return _search_worker(spec, context, mlflow_store, plan)

    @dg.op(name=f"{op_prefix}collect_search", tags={"kind": "optuna"})
    def collect_search(
        context: dg.OpExecutionContext, mlflow_store: MLflowResource, plans: list[dict]
    ) -> dg.Output[dict]:
        """The winner over every worker's trials, logged on the parent run; train it with search_study."""
        return _collect_search(context, mlflow_store, plans)

    @dg.job(
        name=name,
        tags={"platform/gpu": "true"},
        description=f"Optuna search for {spec.name}'s hyperparameters, its trials fanned out over "
        "`workers` steps that share one study (parallel pods on k8s).",
    )
    def _search_job() -> None:
        collect_search(plan_search().map(search_worker).collect())

    return _search_job


def _budget(plan: Mapping[str, Any]) -> SearchBudget:
    return SearchBudget(trials=plan["total_trials"], trial_ensemble_size=plan["trial_members"])


def _plan_search(
    spec: ModelSpec,
    training_set: str,
    context: dg.OpExecutionContext,
    config: SearchJobConfig,
    platform: PlatformPathsResource,
    mlflow_store: MLflowResource,
) -> Iterator[dg.DynamicOutput[dict]]:
    """plan_search's body: the study (the default recipe enqueued first), the parent run, and one
    plan per worker with a share of the trials."""
    import mlflow

    from platform_assets.ml.search import create_study

    source = platform.paths.training_set_file(config.start_month, config.end_month, training_set)
    if not source.exists():
        raise dg.Failure(
            f"training set {source} does not exist: materialize {training_set} for "
            f"{config.start_month}..{config.end_month} first"
        )
    study = config.study_name or f"{spec.name}-{config.start_month}..{config.end_month}-{context.run.run_id[:8]}"
    storage = study_storage(platform.paths)
    common = {
        "study": study, "storage": storage, "training_set": str(source), "seed": config.seed,
        "total_trials": config.trials, "trial_members": config.trial_members,
    }
    created = create_study(study, config.seed, _budget(common), storage=storage)
    created.enqueue_trial(SearchSpace().values_of(DEFAULT_PARAMS))
    experiment_id = mlflow_store.activate(spec.experiment)
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"search {study}") as run:
        mlflow.log_params(
            {"study": study, "trials": config.trials, "workers": config.workers, "seed": config.seed}
            | SearchSpace().as_mlflow_params()
        )
    shares = [config.trials // config.workers + (k < config.trials % config.workers) for k in range(config.workers)]
    for worker, share in enumerate(shares):
        if share:
            yield dg.DynamicOutput(
                {**common, "worker": worker, "trials": share, "parent_run_id": run.info.run_id},
                mapping_key=f"worker_{worker}",
            )


def _search_worker(
    spec: ModelSpec, context: dg.OpExecutionContext, mlflow_store: MLflowResource, plan: dict
) -> dict:
    """search_worker's body: this worker's trials, under the parent run."""
    import mlflow
    import polars as pl

    from platform_assets.ml.preprocessing import labelled
    from platform_assets.ml.search import create_study, optimize

    frame = labelled(pl.read_parquet(plan["training_set"]), spec.label)
    study = create_study(plan["study"], plan["seed"] + plan["worker"], _budget(plan), storage=plan["storage"])
    mlflow_store.activate(spec.experiment)
    with mlflow.start_run(run_id=plan["parent_run_id"]):
        optimize(study, frame, spec.columns, DEFAULT_PARAMS, SearchSpace(), _budget(plan), plan["trials"])
    context.log.info(f"worker {plan['worker']}: {plan['trials']} trials of {plan['study']} done")
    return plan


def _collect_search(
    context: dg.OpExecutionContext, mlflow_store: MLflowResource, plans: list[dict]
) -> dg.Output[dict]:
    """collect_search's body: the study's winner as the op's output, its recipe on the parent run."""
    import optuna

    from platform_assets.ml.search import outcome

    plan = plans[0]
    study = optuna.load_study(study_name=plan["study"], storage=plan["storage"])
    found = outcome(study, DEFAULT_PARAMS, SearchSpace())
    recipe = found.best_params.as_mlflow_params()
    client = mlflow_store.client()
    for key, value in recipe.items():
        client.log_param(plan["parent_run_id"], f"best_{key}", value)
    client.log_dict(plan["parent_run_id"], {"trials": found.trials}, "search_trials.json")
    context.log.info(f"{plan['study']}: best trial {found.best_trial} ({found.best_value:.4f}) of {len(found.trials)}")
    return dg.Output(
        {"study": plan["study"], **recipe},
        metadata={
            "study": plan["study"],
            "trials": len(found.trials),
            "complete": found.completed,
            "pruned": found.pruned,
            "best_trial": found.best_trial,
            "best_val_log_loss": round(found.best_value, 5),
            "train_it_with": f"delay_model config search_study: {plan['study']}",
        },
    )


def study_recipe(paths: PlatformPaths, study_name: str, base: TrainParams) -> TrainParams:
    """The winning recipe of a finished study, with `base`'s ensemble size, seed and device."""
    import optuna

    from platform_assets.ml.search import outcome

    storage = study_storage(paths)
    try:
        study = optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:
        study = None  # no such study: nothing is created by looking
    if study is None or not study.trials:
        raise dg.Failure(f"Optuna study {study_name!r} has no trials in {storage}")
    return outcome(study, base, SearchSpace()).best_params
