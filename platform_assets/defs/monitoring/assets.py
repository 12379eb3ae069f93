"""The replay's outcome as an asset: the drift-triggered policy that ran, next to two it did not."""

from dataclasses import dataclass

import dagster as dg
from pydantic import Field

from platform_assets import constants
from platform_assets.lib.frontier_table import markdown
from platform_assets.lib.resources import MLflowResource, PlatformPathsResource
from platform_assets.lib.retrain_replay import (
    DEFAULT,
    Frontier,
    Replayed,
    frontier,
    monthly_policy,
    plot,
    replay_table,
    score_policies,
    scored_months,
)
from platform_assets.lib.trigger_signals import Signals, trigger_signals
from platform_assets.ml.declaration import declared_models
from platform_assets.ml.figures import bars, markdown_image, png_bytes
from platform_assets.ml.frontier import gain_share
from platform_assets.ml.frontier import plot as plot_frontier
from platform_assets.paths import write_parquet_atomic

# Every declared model the summary may cover: make run replays the default one, `--models` others.
REPLAYABLE = [DEFAULT, *(Replayed(d) for d in declared_models().values() if d.key_prefix != DEFAULT.keys.prefix)]


class ReplayConfig(dg.Config):
    first_month: str = Field(
        default=constants.REPLAY_FIRST_SCORED_MONTH,
        description="First month the champion scored; earlier months trained the first champion.",
    )


def write_reports(platform: PlatformPathsResource, table, found: Frontier, model: Replayed = DEFAULT) -> dict:
    """The table, frontier and charts under PLATFORM_HOME/reports/replay (another model's under
    reports/replay/<its prefix>); their metadata entries."""
    policy = model.policy
    folder = platform.paths.replay_reports
    if model != DEFAULT:
        folder = folder / model.keys.prefix
    folder.mkdir(parents=True, exist_ok=True)
    write_parquet_atomic(table, folder / "replay.parquet")
    table.write_csv(folder / "replay.csv")
    found.table.write_csv(folder / "frontier.csv")
    if found.chosen is not None:
        found.chosen.write_csv(folder / "frontier_chosen.csv")
    chart = plot(table, model)
    (folder / "replay.png").write_bytes(png_bytes(chart, dpi=110))
    means = found.means
    frontier_chart = plot_frontier(
        found.outcomes, means["auc_frozen"], (found.monthly_retrains, means["auc_monthly"]), found.default
    )
    (folder / "frontier.png").write_bytes(png_bytes(frontier_chart, dpi=110))
    drift = bars(
        table["month"].to_list(), [v or 0.0 for v in table["drift_share"].to_list()], "drift share",
        threshold=policy.drift_share_threshold,
    )
    return {
        "table": dg.MetadataValue.md(markdown(table)),
        "plot": dg.MetadataValue.md(markdown_image(chart, "replay: AUC per month under three policies")),
        "frontier": dg.MetadataValue.md(markdown(found.table)),
        "frontier_plot": dg.MetadataValue.md(
            markdown_image(
                frontier_chart, "retraining policy frontier",
                "Retrains against mean AUC for each trigger and threshold of the policy, for both "
                "designs (promote the gated candidate, or its refit through the report's month): the "
                "AUC rule (retrain when the top of the month's 95% bootstrap AUC interval lies at least "
                "the threshold below the champion's held-out AUC), the share of features drifted, and "
                "the share of the champion's permutation importance that drifted; between the frozen "
                "model and retraining every month.",
            )
        ),
        "frontier_chosen_on_first_half": dg.MetadataValue.md(
            markdown(found.chosen) if found.chosen is not None and found.chosen.height else "no rule within budget"
        ),
        "drift_share_per_month": dg.MetadataValue.md(
            markdown_image(
                drift, "drift share per month",
                "Share of the model's features that drifted each month"
                + (
                    f"; the dashed line is the policy's drift-share trigger ({policy.drift_share_threshold:.2f})."
                    if policy.drift_share_threshold is not None
                    else " (reported; not a retraining trigger by default)."
                ),
            )
        ),
        "plot_png": platform.report_link(folder / "replay.png"),
        "frontier_png": platform.report_link(folder / "frontier.png"),
        "csv": platform.report_link(folder / "replay.csv"),
        "frontier_csv": platform.report_link(folder / "frontier.csv"),
    }


def recomputed_drift(table, signals: Signals) -> str:
    """How many months' drift share, recomputed for the frontier's triggers, equals the drift
    report's for the champion that ran (the frontier's drift signals are the reports' own)."""
    pairs = [
        (row["drift_share"], signals.drift_share.get((row["champion_version"], row["month"])))
        for row in table.iter_rows(named=True)
    ]
    known = [(reported, mine) for reported, mine in pairs if reported is not None and mine is not None]
    same = sum(abs(reported - mine) < 1e-4 for reported, mine in known)
    return f"{same} of {len(known)} months equal to the drift report's"


@dataclass
class ModelReplay:
    model: Replayed
    table: object
    found: Frontier
    metadata: dict


def summarize(
    context: dg.AssetExecutionContext, model: Replayed, first_month: str, platform: PlatformPathsResource, client
) -> ModelReplay:
    plan = monthly_policy(platform.paths, client, model.policy, first_month, model=model)
    scored = score_policies(platform.paths, client, plan)
    table = replay_table(context.instance, plan, scored)
    for row in table.iter_rows(named=True):
        context.log.info(f"{model.keys.prefix}: {row}")
    signals = trigger_signals(platform.paths, plan, scored)
    found = frontier(table, plan, scored, model.policy, signals)
    fits, means = scored.fits, found.means
    metadata = {
        **write_reports(platform, table, found, model),
        "monthly_policy_models": (
            f"{len(plan.registered)} registered by runs, {len(fits.cache_hits) + len(fits.from_others)} from "
            f"the fit cache (pre-trained during the replay), {len(fits.names)} trained in this step"
        ),
        "policy_threshold": model.policy.auc_drop_threshold,
        "retrains_drift_policy": int(table["retrained"].sum()),
        "promotions_drift_policy": int(table["promoted"].sum()),
        "retrains_monthly_policy": found.monthly_retrains,
        "mean_auc_drift_policy": round(means["auc_drift_policy"], 4),
        "mean_auc_frozen": round(means["auc_frozen"], 4),
        "mean_auc_monthly": round(means["auc_monthly"], 4),
        "share_of_monthly_gain": round(
            gain_share(means["auc_drift_policy"], means["auc_frozen"], means["auc_monthly"]), 3
        ),
        "frontier_default_matches_replay": found.matches,
        "drift_share_recomputed": recomputed_drift(table, signals),
        "permutation_importance": dg.MetadataValue.md(importance_table(signals)),
    }
    return ModelReplay(model, table, found, metadata)


def importance_table(signals: Signals) -> str:
    """Each policy model's five most important features (AUC lost when shuffled) and where measured."""
    rows = [
        f"| {name} | {signals.measured_on[name]} | "
        + ", ".join(f"{c} {v:+.4f}" for c, v in sorted(imp.items(), key=lambda kv: -kv[1])[:5])
        + " |"
        for name, imp in signals.importance.items()
    ]
    return "| model | measured on | top features (AUC lost when shuffled) |\n|---|---|---|\n" + "\n".join(rows)


def models_table(replays: list[ModelReplay]):
    import polars as pl

    return pl.DataFrame(
        [
            {
                "model": r.model.spec.name,
                "months": r.table.height,
                "retrains_drift_policy": r.metadata["retrains_drift_policy"],
                "promotions_drift_policy": r.metadata["promotions_drift_policy"],
                "mean_auc_drift_policy": r.found.means["auc_drift_policy"],
                "mean_auc_frozen": r.found.means["auc_frozen"],
                "mean_auc_monthly": r.found.means["auc_monthly"],
                "share_of_monthly_gain": r.metadata["share_of_monthly_gain"],
                "frontier_default_matches_replay": r.found.matches,
            }
            for r in replays
        ]
    )


FRONTIER_CHECK = "frontier_default_matches_replay"


@dg.asset(
    group_name="monitoring",
    deps=[dep for model in REPLAYABLE for dep in (model.keys.drift_report, model.keys.champion)],
    kinds={"polars", "matplotlib"},
    check_specs=[
        dg.AssetCheckSpec(
            FRONTIER_CHECK,
            asset="replay_summary",
            description="The frontier's simulation of the default policy retrains on the same months and "
            "reaches the same mean AUC as the replay that ran: the frontier's other rows are trustworthy.",
        )
    ],
)
def replay_summary(
    context: dg.AssetExecutionContext,
    config: ReplayConfig,
    platform: PlatformPathsResource,
    mlflow_store: MLflowResource,
) -> dg.MaterializeResult:
    """Per declared model the replay scored: the replay table per month (drift share, retrained?,
    champion version and AUC, vs frozen and monthly retraining) and the retraining policy's frontier
    (retrains against mean AUC over its triggers and thresholds). The default model's entries are
    the top-level ones; `models` has a row per model, and another model's tables are its
    `<prefix>_...` entries."""
    client = mlflow_store.client()
    replays = []
    for model in REPLAYABLE:
        if model != DEFAULT and not scored_months(platform.paths, config.first_month, model):
            context.log.info(f"{model.spec.name}: no month scored from {config.first_month}, not replayed")
            continue
        mlflow_store.activate(model.spec.experiment)
        try:
            replays.append(summarize(context, model, config.first_month, platform, client))
        except ValueError as error:
            raise dg.Failure(str(error)) from error
    main, others = replays[0], replays[1:]
    metadata = {**main.metadata, "models": dg.MetadataValue.md(markdown(models_table(replays)))}
    for other in others:
        prefix = other.model.keys.prefix
        metadata.update({f"{prefix}_{k}": other.metadata[k] for k in ("table", "frontier", "frontier_csv", "csv")})
    checks = [frontier_check(r.found, r.table, r.model.policy) for r in replays]
    return dg.MaterializeResult(
        metadata=metadata,
        check_results=[combine_checks(checks, [r.model.spec.name for r in replays])],
    )


def combine_checks(checks: list[dg.AssetCheckResult], names: list[str]) -> dg.AssetCheckResult:
    """One check over every model replayed: it fails when any model's frontier misses its replay."""
    if len(checks) == 1:
        return checks[0]
    return dg.AssetCheckResult(
        check_name=FRONTIER_CHECK,
        passed=all(c.passed for c in checks),
        severity=dg.AssetCheckSeverity.ERROR,
        description="; ".join(f"{name}: {c.description}" for name, c in zip(names, checks)),
        metadata={
            f"{name}_{key}": value
            for name, c in zip(names, checks)
            for key, value in c.metadata.items()
        },
    )


def frontier_check(found: Frontier, table, policy) -> dg.AssetCheckResult:
    replayed = (int(table["retrained"].sum()), found.means["auc_drift_policy"])
    simulated = (found.default.retrains, found.default.mean_auc)
    if policy.drift_share_threshold is not None:
        # The frontier replays the AUC rule only; with the drift share as a second trigger the two differ.
        verdict, passed = "not comparable: the drift share trigger is on", True
    else:
        passed = found.matches
        verdict = f"replay {replayed[0]} retrains, mean AUC {replayed[1]:.4f}; frontier {simulated[0]}, {simulated[1]:.4f}"
    return dg.AssetCheckResult(
        check_name=FRONTIER_CHECK,
        passed=passed,
        severity=dg.AssetCheckSeverity.ERROR,
        description=verdict,
        metadata={"replay_retrains": replayed[0], "frontier_retrains": simulated[0]},
    )


replay_summary_job = dg.define_asset_job(
    "replay_summary_job",
    selection=dg.AssetSelection.assets("replay_summary"),
    description="Tabulate the replay: drift-triggered retraining vs a frozen model vs monthly retraining.",
)
