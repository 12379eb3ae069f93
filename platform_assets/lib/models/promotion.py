"""A declared model's gate and promotion: the candidate evaluated on the months after its window
(check `promotion_gate`, model card), then promoted to the MLflow alias `champion` if it passed."""

import dataclasses
import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import dagster as dg

from platform_assets.lib.models.config import EvaluationConfig
from platform_assets.lib.models.keys import GATE_CHECK, ModelKeys
from platform_assets.lib.models.metadata import reliability_metadata
from platform_assets.lib.resources import MLflowResource, PlatformPathsResource
from platform_assets.ml.figures import calibration, markdown_image
from platform_assets.ml.registry import CANDIDATE
from platform_assets.ml.spec import ModelSpec
from platform_assets.months import MonthWindow

EVALUATION_REPORT = "evaluation_report.json"

if TYPE_CHECKING:
    from platform_assets.ml.evaluation import EvaluationReport


def write_card(
    spec: ModelSpec, paths: Any, client: Any, version: Any, report: "EvaluationReport", **facts: Any
) -> Any:
    """Render a registered version's model card to PLATFORM_HOME/reports/model_cards/<model>/v<version>.html:
    its data, features and recipe from its tags and run, the gate and held-out metrics of `report`, and
    the `facts` that differ by caller (gate_passed, gate_reason, search_trials, refit_of)."""
    import polars as pl

    from platform_assets.ml.model_card import CardFacts, raw_files_of, render
    from platform_assets.paths import write_text_atomic

    columns = pl.read_parquet_schema(version.tags["training_data_path"])
    numeric, categorical = spec.columns.features(pl.DataFrame(schema=columns))
    card = CardFacts(
        model_name=spec.name,
        version=str(version.version),
        label=spec.label,
        feature_service=spec.feature_service,
        training_window=version.tags.get("training_window", ""),
        training_data_sha256=version.tags.get("training_data_sha256", ""),
        raw_files=raw_files_of(version.tags.get("raw_files")),
        numeric_features=numeric,
        categorical_features=categorical,
        params=dict(client.get_run(version.run_id).data.params),
        **facts,
    )
    target = paths.model_card(spec.name, str(version.version))
    write_text_atomic(render(card, report), target)
    return target


def write_model_card(
    spec: ModelSpec, paths: Any, client: Any, candidate: Any, report: "EvaluationReport", decision: dg.AssetCheckResult
) -> Any:
    """The candidate's model card, with its gate's decision and the trials of its search, if any."""
    return write_card(
        spec, paths, client, candidate, report,
        gate_passed=bool(decision.passed),
        gate_reason=decision.description or "",
        search_trials=tuple(search_trials_of(client, candidate.run_id)),
    )


def search_trials_of(client: Any, run_id: str) -> list[dict[str, Any]]:
    """The Optuna trials a training run logged (search_trials.json), or none."""
    import mlflow

    if not any(a.path == "search_trials.json" for a in client.list_artifacts(run_id)):
        return []
    return list(mlflow.artifacts.load_dict(f"runs:/{run_id}/search_trials.json")["trials"])


def gate_spec(asset: dg.AssetKey) -> dg.AssetCheckSpec:
    # Not `blocking=True`: Dagster fails the step, and so the run, when a blocking check fails. A
    # rejected candidate is the gate working, not a crash: the run succeeds, this check fails with
    # the reason, and the champion step, which promotes only a candidate that passed, skips.
    return dg.AssetCheckSpec(
        GATE_CHECK,
        asset=asset,
        blocking=False,
        description="The promotion gate: the candidate beats the base-rate predictor (AUC and log "
        "loss) and the champion's AUC by the configured margin on the held-out months. The champion "
        "asset promotes only a candidate that passed; a failed gate skips the promotion.",
    )


def gate_result(
    report: "EvaluationReport", min_auc_gain: float, min_auc: float
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
        check_name=GATE_CHECK,
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


def holdout_features(spec: ModelSpec, paths: Any, store: Any, months: list[str]) -> Any:
    """The hold-out months' labelled flights with their point-in-time features."""
    import polars as pl

    from platform_assets.events import flight_events
    from platform_assets.featurestore.feast import historical_features

    events = flight_events(paths, months, spec.label).filter(pl.col(spec.label).is_not_null())
    if events.is_empty():
        raise dg.Failure(f"no labelled flights in the hold-out months {months}")
    return historical_features(store, events.to_pandas(), spec.feature_service)


def log_evaluation(
    context: dg.AssetExecutionContext,
    spec: ModelSpec,
    platform: PlatformPathsResource,
    client: Any,
    candidate: Any,
    report: "EvaluationReport",
    decision: dg.AssetCheckResult,
    config: EvaluationConfig,
    experiment_id: str,
) -> tuple[str, Any]:
    """The evaluation's MLflow run (metrics, calibration, slices, model card) and the candidate's
    gate tags; returns the run id and the model card's path."""
    import mlflow
    import numpy as np

    flat = report.flat_metrics()
    with mlflow.start_run(
        experiment_id=experiment_id,
        run_name=f"evaluate v{candidate.version}",
        tags={
            "dagster_run_id": context.run.run_id,
            "candidate_version": candidate.version,
            "champion_version": report.champion_version or "",
            "holdout_months": ",".join(report.months),
        },
    ) as run:
        mlflow.log_params({"min_auc_gain": config.min_auc_gain, "min_auc": config.min_auc, "holdout_rows": report.rows})
        mlflow.log_metrics({k: v for k, v in flat.items() if np.isfinite(v)})
        mlflow.log_dict(report.reliability, "reliability.json")
        mlflow.log_dict(report.slices, "slices.json")
        # The whole report, for the model card of the candidate's refit (lib/models/refit.py).
        mlflow.log_dict(dataclasses.asdict(report), EVALUATION_REPORT)
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
    return run.info.run_id, card


def evaluation_metadata(
    report: "EvaluationReport", decision: dg.AssetCheckResult, months: list[str], platform: PlatformPathsResource, card: Any
) -> dict[str, Any]:
    import numpy as np

    return {
        "champion_version": report.champion_version or "none",
        "holdout_months": ",".join(months),
        "holdout_rows": report.rows,
        **{k: round(v, 4) for k, v in report.flat_metrics().items() if np.isfinite(v)},
        "comparison": dg.MetadataValue.md(report.markdown()),
        "calibration": dg.MetadataValue.md(
            markdown_image(
                calibration(report.reliability),
                "calibration",
                f"Observed delay rate against predicted probability on {', '.join(months)} "
                "(10 bins; the dashed line is perfect calibration).",
            )
        ),
        "candidate_reliability": reliability_metadata(report.reliability["candidate"]),
        "gate": decision.description or "",
        "model_card": platform.report_link(card),
        "flagged_slices": ", ".join(f"{r['slice']} {r['value']}" for r in report.slices if r["flagged"]) or "none",
    }


def build_evaluation_asset(
    spec: ModelSpec, keys: ModelKeys, config_type: type[EvaluationConfig]
) -> dg.AssetsDefinition:
    """The candidate against its champion, an HGB baseline and the base rate, with the gate check."""

    @dg.asset(
        key=keys.evaluation,
        group_name=keys.prefix,
        deps=[keys.model],
        kinds={"mlflow", "scikit-learn"},
        check_specs=[gate_spec(keys.evaluation)],
        description=f"{spec.name}'s candidate against its champion, a HistGradientBoosting baseline "
        "and the base rate on the months after its training window.",
    )
    def evaluation(
        context: dg.AssetExecutionContext,
        config: config_type,  # type: ignore[valid-type]
        platform: PlatformPathsResource,
        mlflow_store: MLflowResource,
        feast: dg.ResourceParam[Any],
    ) -> dg.MaterializeResult:
        from platform_assets.ml.evaluation import evaluate_candidate
        from platform_assets.ml.registry import alias_version

        experiment_id = mlflow_store.activate(spec.experiment)
        client = mlflow_store.client()
        candidate = alias_version(client, CANDIDATE, spec.name)
        if candidate is None:
            raise dg.Failure(f"{spec.name} has no '{CANDIDATE}' version: materialize {keys.model.to_user_string()} first")
        months = MonthWindow.parse(candidate.tags["training_window"]).following(config.holdout_months)
        holdout = holdout_features(spec, platform.paths, feast.store(), months)
        report = evaluate_candidate(spec, client, candidate, holdout, months)
        decision = gate_result(report, config.min_auc_gain, config.min_auc)
        run_id, card = log_evaluation(context, spec, platform, client, candidate, report, decision, config, experiment_id)
        return dg.MaterializeResult(
            metadata={
                **evaluation_metadata(report, decision, months, platform, card),
                "candidate_version": candidate.version,
                "mlflow_run_id": run_id,
                "mlflow_run_url": mlflow_store.run_url(experiment_id, run_id),
            },
            check_results=[decision],
        )

    return evaluation


def build_champion_asset(spec: ModelSpec, keys: ModelKeys) -> dg.AssetsDefinition:
    """The gated candidate becomes the champion (MLflow alias); skipped when the gate failed."""

    @dg.asset(
        key=keys.champion,
        group_name=keys.prefix,
        deps=[keys.refit],
        kinds={"mlflow"},
        # Not materialized when the gate rejected the candidate: the step succeeds and Dagster
        # records the promotion as skipped.
        output_required=False,
        description=f"Gives {spec.name}'s gated candidate the MLflow alias `champion`; the replaced "
        f"champion keeps `previous`. Skipped (not materialized) when {keys.evaluation.to_user_string()}'s {GATE_CHECK} "
        "check failed: the champion stays.",
    )
    def champion(
        context: dg.AssetExecutionContext, mlflow_store: MLflowResource, platform: PlatformPathsResource
    ) -> Iterator[dg.MaterializeResult]:
        from platform_assets.ml.registry import alias_version, promote

        client = mlflow_store.client()
        candidate = alias_version(client, CANDIDATE, spec.name)
        if candidate is None:
            raise dg.Failure(f"{spec.name} has no '{CANDIDATE}' version: materialize {keys.model.to_user_string()} first")
        if "gate_passed" not in candidate.tags:
            raise dg.Failure(
                f"{spec.name} v{candidate.version} has not been evaluated: materialize {keys.evaluation.to_user_string()} first"
            )
        if candidate.tags["gate_passed"] != "true":
            context.log.info(
                f"promotion skipped: {spec.name} v{candidate.version} failed the {GATE_CHECK} "
                f"({candidate.tags.get('gate_reason', 'see the check')}); the champion stays"
            )
            return
        # The refit through the gate's months when the retrain made one (lib/models/refit.py).
        promoted = candidate.tags.get("refit_version", str(candidate.version))
        promotion = promote(client, promoted, spec.name)
        client.set_model_version_tag(
            spec.name, promoted, "promoted_by_dagster_run", context.run.run_id
        )
        context.log.info(f"champion is now v{promotion.champion} (previous: {promotion.previous})")
        yield dg.MaterializeResult(
            metadata={
                "champion_version": promotion.champion,
                "previous_version": promotion.previous or "none",
                "holdout_auc": round(float(candidate.tags.get("holdout_auc", "nan")), 4),
                "training_window": client.get_model_version(spec.name, promoted).tags.get("training_window", ""),
                "refit_of": f"v{candidate.version}" if promoted != str(candidate.version) else "none",
                "model_version_url": mlflow_store.model_version_url(spec.name, promotion.champion),
                "model_card": platform.report_link(platform.paths.model_card(spec.name, promotion.champion)),
            }
        )

    return champion
