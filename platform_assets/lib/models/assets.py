"""Asset factories every model uses: training set, training, evaluation with its gate, promotion,
batch scoring and drift report, built from a model package's ModelSpec.

A group folder calls these with its asset names and group; adding a model adds no code here.
Heavy libraries (torch, MLflow, Feast, Evidently, scikit-learn) are imported inside the asset
functions, so loading the code location does not pay for them.
"""

import json
import math
import time
from collections.abc import Iterator, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Literal

import dagster as dg
from pydantic import Field

from platform_assets import constants
from platform_assets.events import EVENTS_TABLE, FEATURE_TABLES, FLIGHT_COLUMNS
from platform_assets.lib.partitions import monthly_partitions
from platform_assets.lib.resources import MLflowResource, PlatformPathsResource
from platform_assets.ml.figures import bars, calibration, markdown_image, training_curves
from platform_assets.ml.params import DEFAULT_PARAMS, TrainParams
from platform_assets.ml.registry import CANDIDATE, CHAMPION
from platform_assets.ml.search import SearchBudget, SearchSpace
from platform_assets.ml.spec import ModelSpec
from platform_assets.months import MonthWindow

if TYPE_CHECKING:
    import polars as pl

    from platform_assets.ml.evaluation import EvaluationReport
    from platform_assets.ml.search import SearchOutcome

FEAST_REGISTRY = "feast_registry"


class WindowConfig(dg.Config):
    start_month: str = Field(
        default=constants.TRAINING_SET_START_MONTH,
        description="First month (YYYY-MM) whose labelled flights enter the training set.",
    )
    end_month: str = Field(
        default=constants.TRAINING_SET_END_MONTH,
        description="Last month (YYYY-MM, inclusive) of the training window.",
    )

    def window(self) -> MonthWindow:
        try:
            return MonthWindow(self.start_month, self.end_month)
        except ValueError as error:
            raise dg.Failure(f"training window {self.start_month}..{self.end_month}: {error}") from error


class TrainingSetConfig(WindowConfig):
    pass


class TrainingConfig(WindowConfig):
    """The network's hyperparameters; defaults are TrainParams' (core/tabular/params.py)."""

    hidden_sizes: list[int] = Field(
        default=list(DEFAULT_PARAMS.hidden_sizes), description="Widths of the MLP's hidden layers."
    )
    dropout: float = Field(default=DEFAULT_PARAMS.dropout, description="Dropout after each hidden layer.")
    learning_rate: float = Field(default=DEFAULT_PARAMS.learning_rate, description="AdamW learning rate.")
    weight_decay: float = Field(default=DEFAULT_PARAMS.weight_decay, description="AdamW weight decay.")
    batch_size: int = Field(default=DEFAULT_PARAMS.batch_size, description="Rows per optimiser step.")
    max_epochs: int = Field(
        default=DEFAULT_PARAMS.max_epochs,
        description="Upper bound on epochs; early stopping usually ends sooner.",
    )
    patience: int = Field(
        default=DEFAULT_PARAMS.patience,
        description="Epochs without a better validation loss before stopping.",
    )
    min_epochs: int = Field(
        default=DEFAULT_PARAMS.min_epochs,
        description="Epochs always trained before early stopping may keep an earlier epoch; guards "
        "against an atypical validation window (late April 2013) stopping training after one epoch.",
    )
    validation_days: int = Field(
        default=DEFAULT_PARAMS.validation_days,
        description="The last N days of the window validate (time split, never random).",
    )
    seed: int = Field(
        default=DEFAULT_PARAMS.seed,
        description="Seed of weights and batch order (member k uses seed + k); same data + config "
        "gives the same model.",
    )
    ensemble_size: int = Field(
        default=DEFAULT_PARAMS.ensemble_size,
        ge=1,
        description="Networks trained from consecutive seeds and averaged (mean logit); 1 trains a "
        "single network in a fifth of the time, at the cost of 0.01-0.02 AUC of seed-to-seed spread.",
    )
    device: str = Field(
        default=DEFAULT_PARAMS.device,
        description="'auto' (CUDA when available, else CPU), 'cpu' or 'cuda'.",
    )
    mixed_precision: bool = Field(
        default=DEFAULT_PARAMS.mixed_precision,
        description="bf16 autocast on CUDA; the CPU path always runs float32.",
    )
    retrain_unchanged: bool = Field(
        default=False,
        description="Train and register a new version even when one was trained on the same "
        "training set (sha256) with the same recipe; by default that version becomes the candidate.",
    )
    hyperparameters: Literal["config", "champion"] = Field(
        default="config",
        description="'config': the hyperparameters above. 'champion': the recipe the current champion "
        "was trained with (its search's winner, say); retrains launched by the drift sensor use it.",
    )
    search: bool = Field(
        default=False,
        description="Search the hyperparameters with Optuna before training: each trial an MLflow child "
        "run, pruned on validation loss, the configured recipe as the first trial; the best recipe then "
        "trains the full ensemble.",
    )
    search_study: str = Field(
        default="",
        description="Train the winning recipe of this finished Optuna study (the hyperparameter_search "
        "job's, whose workers may have run as parallel pods) instead of the hyperparameters above.",
    )
    search_trials: int = Field(
        default=constants.SEARCH_TRIALS, ge=1, description="Trials the search runs (its budget)."
    )
    search_timeout_seconds: float | None = Field(
        default=None,
        description="Stop starting trials after this many seconds (unset: the trial count alone bounds "
        "the search, which keeps it deterministic).",
    )
    search_trial_members: int = Field(
        default=1, ge=1, description="Ensemble members each trial trains (the winner trains ensemble_size)."
    )
    search_learning_rate: list[float] = Field(
        default=list(SearchSpace.learning_rate), description="[low, high] of the learning rate (log scale)."
    )
    search_weight_decay: list[float] = Field(
        default=list(SearchSpace.weight_decay), description="[low, high] of the weight decay (log scale)."
    )
    search_dropout: list[float] = Field(default=list(SearchSpace.dropout), description="[low, high] of the dropout.")
    search_hidden_widths: list[int] = Field(
        default=list(SearchSpace.hidden_width), description="Hidden-layer widths the search chooses from."
    )

    def search_space(self) -> SearchSpace:
        return SearchSpace(
            learning_rate=(self.search_learning_rate[0], self.search_learning_rate[1]),
            weight_decay=(self.search_weight_decay[0], self.search_weight_decay[1]),
            dropout=(self.search_dropout[0], self.search_dropout[1]),
            hidden_width=tuple(self.search_hidden_widths),
        )

    def search_budget(self) -> SearchBudget:
        return SearchBudget(
            trials=self.search_trials,
            trial_ensemble_size=self.search_trial_members,
            timeout_seconds=self.search_timeout_seconds,
        )

    def params(self) -> TrainParams:
        values = {name: getattr(self, name) for name in TrainParams.field_names()}
        return TrainParams(**{**values, "hidden_sizes": tuple(self.hidden_sizes)})


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


class ScoringConfig(dg.Config):
    model_alias: str = Field(default=CHAMPION, description="Registry alias of the version that scores.")


class DriftConfig(dg.Config):
    sample_rows: int = Field(
        default=constants.DRIFT_SAMPLE_ROWS,
        description="Rows per side compared; larger months are sampled by a hash of flight_id, so "
        "the same rows every time.",
    )


def _log_epoch(member: int, epoch: int, metrics: dict[str, float]) -> None:
    import mlflow

    mlflow.log_metrics({f"member_{member}/{k}": v for k, v in metrics.items()}, step=epoch)


def _search(
    spec: ModelSpec, frame: "pl.DataFrame", base: TrainParams, config: "TrainingConfig", study_name: str, log: Any
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


def check_same_home(feast: Any, platform: PlatformPathsResource) -> None:
    home = getattr(feast, "home", None)
    if home is None:
        return
    feast_home, platform_home = home().resolve(), platform.paths.home.resolve()
    if feast_home != platform_home:
        raise ValueError(
            f"Feast reads PLATFORM_HOME={feast_home} but the platform resource points at "
            f"{platform_home}; set PLATFORM_HOME to one folder for both."
        )


def build_training_set_asset(spec: ModelSpec, *, name: str, group: str) -> dg.AssetsDefinition:
    """Point-in-time features of the model's feature service for a window's labelled flights."""

    @dg.asset(
        name=name,
        group_name=group,
        deps=[FEAST_REGISTRY, dg.AssetKey(EVENTS_TABLE), *(dg.AssetKey(t) for t in FEATURE_TABLES)],
        kinds={"feast", "parquet"},
        description=f"Point-in-time correct features of {spec.feature_service} for the window's "
        f"labelled flights (label {spec.label}: {spec.label_rule}).",
    )
    def _training_set(
        context: dg.AssetExecutionContext,
        config: TrainingSetConfig,
        feast: dg.ResourceParam[Any],
        platform: PlatformPathsResource,
    ) -> dg.MaterializeResult:
        import polars as pl

        from platform_assets.featurestore.feast import (
            historical_features,
            service_features,
            service_views,
        )
        from platform_assets.featurestore.table_contracts import (
            TableContract,
            check_table,
            view_contract,
        )
        from platform_assets.paths import write_parquet_atomic

        window = config.window()
        check_same_home(feast, platform)
        paths = platform.paths
        store = feast.store()
        store.refresh_registry()
        events_file = paths.feature_table(EVENTS_TABLE)
        check_table(
            TableContract(events_file, keys=("flight_id", "event_timestamp"), columns=(*FLIGHT_COLUMNS, spec.label))
        )
        for view in service_views(store, spec.feature_service):
            check_table(view_contract(view))
        entity_df = (
            pl.scan_parquet(events_file)
            .filter(
                pl.col("flight_month").is_between(pl.lit(window.start), pl.lit(window.end)),
                pl.col(spec.label).is_not_null(),
            )
            .select(*FLIGHT_COLUMNS, spec.label)
            .sort("event_timestamp", "flight_id")
            .collect()
            .to_pandas(use_pyarrow_extension_array=False)
        )
        if entity_df.empty:
            raise ValueError(f"{name}: no labelled flights in {window} in {events_file}")
        features = service_features(store, spec.feature_service)
        joined = historical_features(store, entity_df, spec.feature_service)
        frame = joined[[*FLIGHT_COLUMNS, *features, spec.label]].astype({spec.label: "int8"})
        target = paths.training_set_file(window.start, window.end, name)
        write_parquet_atomic(pl.from_pandas(frame), target)
        label_rate = float(frame[spec.label].mean())
        context.log.info(f"{len(frame)} flights, label rate {label_rate:.3f}, written to {target}")
        return dg.MaterializeResult(
            metadata={
                "rows": len(frame),
                "dagster/row_count": len(frame),
                "label_rate": label_rate,
                "window": str(window),
                "feature_service": spec.feature_service,
                "features": features,
                "feature_null_share": {f: round(float(frame[f].isna().mean()), 4) for f in features},
                "path": dg.MetadataValue.path(str(target)),
            }
        )

    return _training_set


# Tags a registered version gets after training, the last of them written last: a version without
# all of them was interrupted and is never reused.
LINEAGE_TAGS = frozenset(
    {
        "dagster_run_id", "training_window", "training_data_sha256", "training_data_path",
        "mlflow_run_id", "raw_files", "feature_service", "label", "training_start_month",
        "training_end_month",
    }
)

# Why the first months of 2013 show as missing on the scoring and drift partitions.
NOT_SCORED = (
    "Months before the first champion are not scored, by design: in the replay, "
    f"{constants.TRAINING_SET_START_MONTH}..{constants.TRAINING_SET_END_MONTH} train the first champion "
    f"and scoring starts at {constants.REPLAY_FIRST_SCORED_MONTH}, so the earlier partitions stay "
    "missing."
)


def missing_features(frame: "pl.DataFrame", spec: ModelSpec) -> dict[str, int]:
    """Null count per model feature that has any nulls (the model's missing-value path scores them)."""
    numeric, categorical = spec.columns.features(frame.drop(spec.prediction, strict=False))
    counts = frame.select([*numeric, *categorical]).null_count().row(0, named=True)
    return {column: int(n) for column, n in sorted(counts.items(), key=lambda kv: -kv[1]) if n}


def missing_table(missing: dict[str, int], rows: int) -> dg.TableMetadataValue:
    columns = [
        dg.TableColumn("feature", "string"),
        dg.TableColumn("rows_missing", "int"),
        dg.TableColumn("share", "float"),
    ]
    return dg.MetadataValue.table(
        records=[
            dg.TableRecord({"feature": c, "rows_missing": n, "share": round(n / max(rows, 1), 4)})
            for c, n in missing.items()
        ],
        schema=dg.TableSchema(columns=columns),
    )


def reliability_table(rows: list[dict[str, Any]]) -> dg.TableMetadataValue:
    """The calibration bins as a table in the asset page."""
    columns = [
        dg.TableColumn("bin", "string", description="predicted probability range"),
        dg.TableColumn("rows", "int"),
        dg.TableColumn("mean_predicted", "float"),
        dg.TableColumn("observed_rate", "float"),
    ]
    return dg.MetadataValue.table(
        records=[dg.TableRecord({c.name: row[c.name] for c in columns}) for row in rows],
        schema=dg.TableSchema(columns=columns),
    )


def write_model_card(
    spec: ModelSpec, paths: Any, client: Any, candidate: Any, report: "EvaluationReport", decision: dg.AssetCheckResult
) -> Any:
    """Render the candidate's model card to PLATFORM_HOME/reports/model_cards/<model>/v<version>.html."""
    import polars as pl

    from platform_assets.ml.model_card import CardFacts, raw_files_of, render
    from platform_assets.paths import write_text_atomic

    run = client.get_run(candidate.run_id)
    columns = pl.read_parquet_schema(candidate.tags["training_data_path"])
    numeric, categorical = spec.columns.features(pl.DataFrame(schema=columns))
    facts = CardFacts(
        model_name=spec.name,
        version=str(candidate.version),
        label=spec.label,
        feature_service=spec.feature_service,
        training_window=candidate.tags.get("training_window", ""),
        training_data_sha256=candidate.tags.get("training_data_sha256", ""),
        raw_files=raw_files_of(candidate.tags.get("raw_files")),
        numeric_features=numeric,
        categorical_features=categorical,
        params=dict(run.data.params),
        gate_passed=bool(decision.passed),
        gate_reason=decision.description or "",
        search_trials=tuple(search_trials_of(client, candidate.run_id)),
    )
    target = paths.model_card(spec.name, str(candidate.version))
    write_text_atomic(render(facts, report), target)
    return target


def search_trials_of(client: Any, run_id: str) -> list[dict[str, Any]]:
    """The Optuna trials a training run logged (search_trials.json), or none."""
    import mlflow

    if not any(a.path == "search_trials.json" for a in client.list_artifacts(run_id)):
        return []
    return list(mlflow.artifacts.load_dict(f"runs:/{run_id}/search_trials.json")["trials"])


def gate_spec(check: str, asset: str) -> dg.AssetCheckSpec:
    # Not `blocking=True`: Dagster fails the step, and so the run, when a blocking check fails. A
    # rejected candidate is the gate working, not a crash: the run succeeds, this check fails with
    # the reason, and the champion step, which promotes only a candidate that passed, skips.
    return dg.AssetCheckSpec(
        check,
        asset=asset,
        blocking=False,
        description="The promotion gate: the candidate beats the base-rate predictor (AUC and log "
        "loss) and the champion's AUC by the configured margin on the held-out months. The champion "
        "asset promotes only a candidate that passed; a failed gate skips the promotion.",
    )


def gate_result(
    check: str, report: "EvaluationReport", min_auc_gain: float, min_auc: float
) -> dg.AssetCheckResult:
    candidate = report.metrics["candidate"]
    base = report.metrics["base_rate"]
    beats_base = candidate["auc"] > min_auc and candidate["log_loss"] < base["log_loss"]
    champion = report.metrics.get("champion")
    gain = candidate["auc"] - champion["auc"] if champion else math.nan
    beats_champion = champion is None or gain >= min_auc_gain
    held_out = ", ".join(report.months)
    facts = []
    if champion is not None:
        side = "below" if gain < 0 else "above"
        facts.append(
            f"is {side} champion v{report.champion_version}'s {champion['auc']:.3f} by {abs(gain):.3f} "
            f"(a gain of at least {min_auc_gain:+.3f} is needed)"
        )
    if beats_base:
        facts.append(f"beats the base-rate predictor (log loss {candidate['log_loss']:.3f} vs {base['log_loss']:.3f})")
    else:
        facts.append(
            f"does not beat the base-rate predictor (needs AUC above {min_auc:.2f} and log loss below "
            f"{base['log_loss']:.3f}; it has {candidate['log_loss']:.3f})"
        )
    reason = f"AUC {candidate['auc']:.3f} on {held_out} " + " and ".join(facts)
    if champion is None:
        reason += "; no champion yet"
    passed = bool(beats_base and beats_champion)
    return dg.AssetCheckResult(
        check_name=check,
        passed=passed,
        severity=dg.AssetCheckSeverity.ERROR,
        description=f"{'Promote' if passed else 'Keep the champion'}: {reason}.",
        metadata={
            "candidate_auc": round(candidate["auc"], 4),
            "champion_auc": round(champion["auc"], 4) if champion else "none",
            "auc_gain": round(gain, 4) if champion else "none",
            "min_auc_gain": min_auc_gain,
            "holdout_months": held_out,
            "beats_base_rate": beats_base,
            "beats_champion": beats_champion,
        },
    )


def build_training_assets(
    spec: ModelSpec,
    *,
    training_set: str,
    model: str,
    evaluation: str,
    champion: str,
    group: str,
    gate_check: str = "promotion_gate",
    op_tags: Mapping[str, Any] | None = None,
) -> list[dg.AssetsDefinition]:
    """Train a candidate (MLflow run, registered version), evaluate it with a blocking gate, promote it."""

    @dg.asset(
        name=model,
        group_name=group,
        deps=[training_set],
        kinds={"pytorch", "mlflow"},
        tags={"compute": "gpu"},
        # On k8s this step's pod asks for nvidia.com/gpu on the GPU node pool; ignored locally.
        op_tags=op_tags,
        description=f"PyTorch classifier of {spec.label} (the mean of `ensemble_size` small MLPs) "
        f"trained on {training_set}, registered in MLflow as {spec.name}'s candidate.",
    )
    def _model(
        context: dg.AssetExecutionContext,
        config: TrainingConfig,
        platform: PlatformPathsResource,
        mlflow_store: MLflowResource,
    ) -> dg.MaterializeResult:
        import mlflow
        import polars as pl

        from platform_assets.events import file_sha256
        from platform_assets.featurestore.lineage import raw_files_json, write_model_lineage
        from platform_assets.ml.params import RUNTIME_PARAMS
        from platform_assets.ml.preprocessing import labelled
        from platform_assets.ml.pyfunc import log_model
        from platform_assets.ml.registry import version_with_recipe
        from platform_assets.ml.training import fit

        window = config.window()
        paths = platform.paths
        source = paths.training_set_file(window.start, window.end, training_set)
        if not source.exists():
            raise dg.Failure(
                f"training set {source} does not exist: materialize {training_set} with start_month="
                f"{window.start}, end_month={window.end} first"
            )
        data_hash = file_sha256(source)
        params = config.params()
        experiment_id = mlflow_store.activate(spec.experiment)
        client = mlflow_store.client()
        recipe_source = "a search in this run" if config.search else "the configured ones"
        if config.search_study:
            from platform_assets.lib.models.search_job import study_recipe

            params = study_recipe(paths, config.search_study, params)
            recipe_source = f"Optuna study {config.search_study}"
            context.log.info(f"hyperparameters of study {config.search_study}: {params.as_mlflow_params()}")
        elif config.hyperparameters == "champion":
            found = champion_recipe(client, spec.name)
            if found is not None:
                # The champion's recipe; where this run trains (device) stays this run's.
                champion_version, recipe = found
                params = replace(recipe, device=params.device, mixed_precision=params.mixed_precision)
                recipe_source = f"champion v{champion_version}'s recipe"
                context.log.info(f"hyperparameters of champion v{champion_version}: {params.as_mlflow_params()}")
        if not config.search and not config.retrain_unchanged:
            existing = version_with_recipe(
                client, spec.name, {"training_data_sha256": data_hash}, params.as_mlflow_params(),
                RUNTIME_PARAMS, required_tags=LINEAGE_TAGS,
            )
            if existing is not None:
                # Same training set (sha256) and recipe: the registered version is this model.
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
        frame = labelled(pl.read_parquet(source), spec.label)
        tags = {
            "dagster_run_id": context.run.run_id,
            "training_window": str(window),
            "training_data_sha256": data_hash,
            "training_data_path": str(source),
        }
        started = time.perf_counter()
        with mlflow.start_run(
            experiment_id=experiment_id, run_name=f"{model} {window}", tags=tags
        ) as run:
            search_facts: dict[str, Any] = {}
            if config.search:
                found = _search(spec, frame, params, config, f"{spec.name}-{window}-{context.run.run_id[:8]}", context.log)
                params = found.best_params
                search_facts = {
                    "search_trials_run": len(found.trials),
                    "search_trials_complete": found.completed,
                    "search_trials_pruned": found.pruned,
                    "search_best_trial": found.best_trial,
                    "search_best_trial_val_log_loss": round(found.best_value, 5),
                    **config.search_space().as_mlflow_params(),
                }
                mlflow.log_dict({"trials": found.trials}, "search_trials.json")
            # The recipe logged is the one that trained this model (the search's winner, if any).
            mlflow.log_params(
                {**params.as_mlflow_params(), "search": config.search, "training_rows_total": frame.height}
                | {"hyperparameters_from": recipe_source}
                | search_facts
            )
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
            info = log_model(result, frame.head(256), registered_name=spec.name)
        version = str(info.registered_model_version)
        # One read of the validated partitions: the lineage table and the raw_files tag.
        lineage = raw_files_json(write_model_lineage(paths, spec.name, version, window.months, str(source)))
        version_tags = {
            **tags,
            "mlflow_run_id": run.info.run_id,
            "raw_files": lineage,
            "feature_service": spec.feature_service,
            "label": spec.label,
            "training_start_month": window.start,
            "training_end_month": window.end,
        }
        for key, value in version_tags.items():
            client.set_model_version_tag(spec.name, version, key, value)
        client.set_registered_model_alias(spec.name, CANDIDATE, version)
        context.log.info(
            f"registered {spec.name} v{version}: val AUC {result.val_metrics['auc']:.4f} on {result.device}"
        )
        return dg.MaterializeResult(
            metadata={
                "model_name": spec.name,
                "model_version": version,
                "model_uri": f"models:/{spec.name}/{version}",
                "mlflow_run_id": run.info.run_id,
                "mlflow_run_url": mlflow_store.run_url(experiment_id, run.info.run_id),
                "model_version_url": mlflow_store.model_version_url(spec.name, version),
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
                "training_window": tags["training_window"],
                "training_data_sha256": data_hash,
                "raw_files": dg.MetadataValue.json(json.loads(lineage)),
                "device": result.device,
                "samples_per_second": round(result.samples_per_second),
                "train_seconds": round(time.perf_counter() - started, 1),
                "hyperparameters": dg.MetadataValue.json(params.as_mlflow_params()),
                "hyperparameters_from": recipe_source,
                **search_facts,
            }
        )

    @dg.asset(
        name=evaluation,
        group_name=group,
        deps=[_model],
        kinds={"mlflow", "scikit-learn"},
        check_specs=[gate_spec(gate_check, evaluation)],
        description=f"{spec.name}'s candidate against its champion, a HistGradientBoosting baseline "
        "and the base rate on the months after its training window.",
    )
    def _evaluation(
        context: dg.AssetExecutionContext,
        config: EvaluationConfig,
        platform: PlatformPathsResource,
        mlflow_store: MLflowResource,
        feast: dg.ResourceParam[Any],
    ) -> dg.MaterializeResult:
        import mlflow
        import numpy as np
        import polars as pl

        from platform_assets.events import flight_events
        from platform_assets.featurestore.feast import historical_features
        from platform_assets.ml.evaluation import evaluate_candidate
        from platform_assets.ml.registry import alias_version

        experiment_id = mlflow_store.activate(spec.experiment)
        client = mlflow_store.client()
        candidate = alias_version(client, CANDIDATE, spec.name)
        if candidate is None:
            raise dg.Failure(f"{spec.name} has no '{CANDIDATE}' version: materialize {model} first")
        months = MonthWindow.parse(candidate.tags["training_window"]).following(config.holdout_months)
        events = flight_events(platform.paths, months, spec.label).filter(pl.col(spec.label).is_not_null())
        if events.is_empty():
            raise dg.Failure(f"no labelled flights in the hold-out months {months}")
        holdout = historical_features(feast.store(), events.to_pandas(), spec.feature_service)
        report = evaluate_candidate(spec, client, candidate, holdout, months)
        decision = gate_result(gate_check, report, config.min_auc_gain, config.min_auc)
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
                {"min_auc_gain": config.min_auc_gain, "min_auc": config.min_auc, "holdout_rows": report.rows}
            )
            mlflow.log_metrics({k: v for k, v in flat.items() if np.isfinite(v)})
            mlflow.log_dict(report.reliability, "reliability.json")
            mlflow.log_dict(report.slices, "slices.json")
            mlflow.set_tag("gate_passed", str(decision.passed).lower())
            card = write_model_card(spec, platform.paths, client, candidate, report, decision)
            mlflow.log_artifact(str(card))
        version_tags = {
            "gate_passed": str(decision.passed).lower(),
            "gate_reason": decision.description or "",
            "holdout_auc": f"{report.metrics['candidate']['auc']:.5f}",
            "evaluation_run_id": run.info.run_id,
            "model_card": str(card.relative_to(platform.paths.reports)),
        }
        for key, value in version_tags.items():
            client.set_model_version_tag(spec.name, candidate.version, key, value)
        return dg.MaterializeResult(
            metadata={
                "candidate_version": candidate.version,
                "champion_version": report.champion_version or "none",
                "holdout_months": ",".join(months),
                "holdout_rows": report.rows,
                **{k: round(v, 4) for k, v in flat.items() if np.isfinite(v)},
                "comparison": dg.MetadataValue.md(report.markdown()),
                "calibration": dg.MetadataValue.md(
                    markdown_image(
                        calibration(report.reliability),
                        "calibration",
                        f"Observed delay rate against predicted probability on {', '.join(months)} "
                        "(10 bins; the dashed line is perfect calibration).",
                    )
                ),
                "candidate_reliability": reliability_table(report.reliability["candidate"]),
                "gate": decision.description or "",
                "model_card": platform.report_link(card),
                "flagged_slices": ", ".join(f"{r['slice']} {r['value']}" for r in report.slices if r["flagged"]) or "none",
                "mlflow_run_id": run.info.run_id,
                "mlflow_run_url": mlflow_store.run_url(experiment_id, run.info.run_id),
            },
            check_results=[decision],
        )

    @dg.asset(
        name=champion,
        group_name=group,
        deps=[_evaluation],
        kinds={"mlflow"},
        # Not materialized when the gate rejected the candidate: the step succeeds and Dagster
        # records the promotion as skipped.
        output_required=False,
        description=f"Gives {spec.name}'s gated candidate the MLflow alias `champion`; the replaced "
        f"champion keeps `previous`. Skipped (not materialized) when {evaluation}'s {gate_check} "
        "check failed: the champion stays.",
    )
    def _champion(
        context: dg.AssetExecutionContext, mlflow_store: MLflowResource, platform: PlatformPathsResource
    ) -> Iterator[dg.MaterializeResult]:
        from platform_assets.ml.registry import alias_version, promote

        client = mlflow_store.client()
        candidate = alias_version(client, CANDIDATE, spec.name)
        if candidate is None:
            raise dg.Failure(f"{spec.name} has no '{CANDIDATE}' version: materialize {model} first")
        if "gate_passed" not in candidate.tags:
            raise dg.Failure(
                f"{spec.name} v{candidate.version} has not been evaluated: materialize {evaluation} first"
            )
        if candidate.tags["gate_passed"] != "true":
            context.log.info(
                f"promotion skipped: {spec.name} v{candidate.version} failed the {gate_check} "
                f"({candidate.tags.get('gate_reason', 'see the check')}); the champion stays"
            )
            return
        promotion = promote(client, candidate.version, spec.name)
        client.set_model_version_tag(
            spec.name, candidate.version, "promoted_by_dagster_run", context.run.run_id
        )
        context.log.info(f"champion is now v{promotion.champion} (previous: {promotion.previous})")
        yield dg.MaterializeResult(
            metadata={
                "champion_version": promotion.champion,
                "previous_version": promotion.previous or "none",
                "holdout_auc": round(float(candidate.tags.get("holdout_auc", "nan")), 4),
                "training_window": candidate.tags.get("training_window", ""),
                "model_version_url": mlflow_store.model_version_url(spec.name, promotion.champion),
                "model_card": platform.report_link(platform.paths.model_card(spec.name, promotion.champion)),
            }
        )

    return [_model, _evaluation, _champion]


def build_predictions_asset(
    spec: ModelSpec, *, name: str, group: str, champion: str
) -> dg.AssetsDefinition:
    """Every flight of a month scored by the model's champion, with features and lineage per row."""

    @dg.asset(
        name=name,
        group_name=group,
        partitions_def=monthly_partitions,
        deps=[champion, EVENTS_TABLE],
        kinds={"mlflow", "feast", "parquet"},
        description=f"{spec.name}'s probability of {spec.label} for every validated flight of the "
        f"month, scored by the champion. {NOT_SCORED}",
    )
    def _predictions(
        context: dg.AssetExecutionContext,
        config: ScoringConfig,
        platform: PlatformPathsResource,
        mlflow_store: MLflowResource,
        feast: dg.ResourceParam[Any],
    ) -> dg.MaterializeResult:
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
        target = paths.predictions_file(month, name)
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

    return _predictions


def build_drift_report_asset(
    spec: ModelSpec, *, name: str, group: str, predictions: str
) -> dg.AssetsDefinition:
    """Evidently report of a month's prediction log against the champion's training data."""

    @dg.asset(
        name=name,
        group_name=group,
        partitions_def=monthly_partitions,
        deps=[predictions],
        kinds={"evidently", "html"},
        description=f"Evidently report of the month vs {spec.name}'s champion's training data: "
        f"feature drift, prediction drift, AUC. {NOT_SCORED}",
    )
    def _drift_report(
        context: dg.AssetExecutionContext,
        config: DriftConfig,
        platform: PlatformPathsResource,
        mlflow_store: MLflowResource,
    ) -> dg.MaterializeResult:
        import polars as pl

        from platform_assets.ml.drift import deterministic_sample, run_drift_report
        from platform_assets.ml.metrics import auc_interval, rank_auc
        from platform_assets.ml.pyfunc import predict_version

        month = context.partition_key
        paths = platform.paths
        scored = pl.read_parquet(paths.predictions_file(month, predictions))
        version = scored["model_version"][0]
        model = mlflow_store.client().get_model_version(spec.name, version)
        reference = pl.read_parquet(model.tags["training_data_path"])
        numeric, categorical = spec.columns.features(reference)

        labelled_month = scored.filter(pl.col(spec.label).is_not_null())
        current = deterministic_sample(labelled_month.to_pandas(), config.sample_rows)
        baseline = deterministic_sample(reference.to_pandas(), config.sample_rows)
        baseline[spec.prediction] = predict_version(spec.name, version, baseline)

        folder = paths.drift_report_dir(month, name)
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
        scores = sorted(summary.column_scores.items(), key=lambda item: -item[1])
        missing = missing_features(scored, spec)
        return dg.MaterializeResult(
            metadata={
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

    return _drift_report
