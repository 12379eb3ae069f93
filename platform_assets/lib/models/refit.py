"""A declared model's refit: after the gate passes on the report's month m, the same recipe is
trained on the window through m and promoted in the candidate's place.

Without it a retrain on m's report trains through m-1, is gated on m, and serves from m+1: a month
staler than the model retraining every month would serve. The candidate stays registered as the
gate's evidence; the refit's tags and model card carry both windows and the gate's numbers. The
first model does not refit: it serves its hold-out month itself.
"""

from typing import Any

import dagster as dg
from pydantic import Field

from platform_assets.events import EVENTS_TABLE
from platform_assets.lib.models.keys import ModelKeys
from platform_assets.lib.models.promotion import EVALUATION_REPORT, write_card
from platform_assets.lib.models.training import LINEAGE_TAGS, fit_and_log, register
from platform_assets.lib.models.training_set import training_frame
from platform_assets.lib.resources import MLflowResource, PlatformPathsResource
from platform_assets.ml.registry import CANDIDATE
from platform_assets.ml.spec import ModelSpec
from platform_assets.months import MonthWindow

# Tags the refit copies from the candidate: the gate it passed, and the reference AUC the drift
# rule compares later months with (the candidate's AUC on the gate's months).
GATE_TAGS = ("gate_passed", "gate_reason", "holdout_auc", "evaluation_run_id")


class RefitConfig(dg.Config):
    refit: bool = Field(
        default=False,
        description="After the gate passes, train the candidate's recipe on its window moved to end at the "
        "last hold-out month, and promote that. The drift sensor's retrains set it (the declaration's "
        "retrain.refit); the first model does not, as it serves its own hold-out month.",
    )


def refit_window(gated: MonthWindow, holdout: list[str]) -> MonthWindow:
    """The candidate's window moved forward over its hold-out months, keeping its length: it ends at
    the last month whose labels the gate read, never later."""
    months = gated.months + holdout
    return MonthWindow(months[-len(gated.months)], months[-1])


def skip(candidate: Any, why: str) -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"refit": why, "candidate_version": str(candidate.version)})


def refit_candidate(
    spec: ModelSpec,
    keys: ModelKeys,
    context: dg.AssetExecutionContext,
    config: RefitConfig,
    platform: PlatformPathsResource,
    mlflow_store: MLflowResource,
    feast: Any,
) -> dg.MaterializeResult:
    """Refit the gated candidate through its hold-out months (or say why not)."""
    import mlflow
    import polars as pl

    from platform_assets.events import file_sha256
    from platform_assets.featurestore.lineage import raw_files_json, write_model_lineage
    from platform_assets.ml.params import RUNTIME_PARAMS, TrainParams
    from platform_assets.ml.preprocessing import labelled
    from platform_assets.ml.registry import alias_version, version_with_recipe
    from platform_assets.paths import write_parquet_atomic

    client = mlflow_store.client()
    candidate = alias_version(client, CANDIDATE, spec.name)
    if candidate is None:
        raise dg.Failure(f"{spec.name} has no '{CANDIDATE}' version: materialize {keys.model.to_user_string()} first")
    if candidate.tags.get("gate_passed") != "true":
        return skip(candidate, "none: the gate kept the champion")
    if not config.refit:
        return skip(candidate, "off: the candidate itself is promoted")
    gated = MonthWindow.parse(candidate.tags["training_window"])
    holdout = client.get_run(candidate.tags["evaluation_run_id"]).data.tags["holdout_months"].split(",")
    window = refit_window(gated, holdout)
    store = feast.store()
    store.refresh_registry()
    frame, _ = training_frame(store, spec, platform.paths.feature_table(EVENTS_TABLE), window)
    source = platform.paths.training_set_file(window.start, window.end, keys.name("training_set"))
    write_parquet_atomic(pl.from_pandas(frame), source)
    data_hash = file_sha256(source)
    params = TrainParams.from_mlflow_params(client.get_run(candidate.run_id).data.params)
    existing = version_with_recipe(
        client, spec.name, {"training_data_sha256": data_hash}, params.as_mlflow_params(), RUNTIME_PARAMS,
        required_tags=LINEAGE_TAGS,
    )
    if existing is not None:
        version, run_id = str(existing.version), existing.run_id
    else:
        tags = {
            "dagster_run_id": context.run.run_id, "training_window": str(window),
            "training_data_sha256": data_hash, "training_data_path": str(source),
        }
        experiment_id = mlflow_store.activate(spec.experiment)
        with mlflow.start_run(experiment_id=experiment_id, run_name=f"{keys.refit.to_user_string()} {window}", tags=tags) as run:
            training = labelled(pl.read_parquet(source), spec.label)
            logged = {"search": False, "hyperparameters_from": f"v{candidate.version}'s recipe (refit)"}
            _, info = fit_and_log(spec, training, source, params, logged)
        version, run_id = str(info.registered_model_version), run.info.run_id
        lineage = raw_files_json(write_model_lineage(platform.paths, spec.name, version, window.months, str(source)))
        register(client, spec, version, {**tags, "mlflow_run_id": run_id}, lineage, window, candidate=False)
    for key in GATE_TAGS:
        client.set_model_version_tag(spec.name, version, key, candidate.tags.get(key, ""))
    client.set_model_version_tag(spec.name, version, "refit_of", str(candidate.version))
    client.set_model_version_tag(spec.name, version, "gated_window", str(gated))
    card = write_refit_card(spec, platform, client, candidate, version, holdout)
    client.set_model_version_tag(spec.name, version, "model_card", str(card.relative_to(platform.paths.reports)))
    client.set_model_version_tag(spec.name, str(candidate.version), "refit_version", version)
    context.log.info(f"refit v{version} of v{candidate.version}: {window} (the candidate trained on {gated})")
    return dg.MaterializeResult(
        metadata={
            "refit": f"v{version} on {window}",
            "refit_version": version,
            "candidate_version": str(candidate.version),
            "training_window": str(window),
            "gated_window": str(gated),
            "holdout_months": ",".join(holdout),
            "reused_version": existing is not None,
            "mlflow_run_id": run_id,
            "model_version_url": mlflow_store.model_version_url(spec.name, version),
            "model_card": platform.report_link(card),
        }
    )


def write_refit_card(
    spec: ModelSpec, platform: PlatformPathsResource, client: Any, candidate: Any, version: str, holdout: list[str]
) -> Any:
    """The refit's model card: its own window and data, the candidate's gate and held-out metrics."""
    from platform_assets.ml.evaluation import EvaluationReport

    report = EvaluationReport(**_load_dict(candidate.tags["evaluation_run_id"], EVALUATION_REPORT))
    return write_card(
        spec, platform.paths, client, client.get_model_version(spec.name, version), report,
        gate_passed=True,
        gate_reason=candidate.tags.get("gate_reason", ""),
        refit_of=f"v{candidate.version}, trained on {candidate.tags['training_window']}, gated on {', '.join(holdout)}",
    )


def _load_dict(run_id: str, path: str) -> dict:
    import mlflow

    return mlflow.artifacts.load_dict(f"runs:/{run_id}/{path}")


def build_refit_asset(spec: ModelSpec, keys: ModelKeys, op_tags: dict[str, Any]) -> dg.AssetsDefinition:
    @dg.asset(
        key=keys.refit,
        group_name=keys.prefix,
        deps=[keys.evaluation],
        kinds={"pytorch", "mlflow"},
        tags={"compute": "gpu"},
        op_tags=op_tags,
        description=f"After {spec.name}'s candidate passed the gate on its hold-out months, the same recipe "
        "refitted through them, promoted in its place (set by the drift sensor's retrains): no retrain serves "
        "a month staler than retraining every month. Says why not when the gate failed or the run did not ask.",
    )
    def refit(
        context: dg.AssetExecutionContext,
        config: RefitConfig,
        platform: PlatformPathsResource,
        mlflow_store: MLflowResource,
        feast: dg.ResourceParam[Any],
    ) -> dg.MaterializeResult:
        return refit_candidate(spec, keys, context, config, platform, mlflow_store, feast)

    return refit
