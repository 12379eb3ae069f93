"""The replay's outcome as an asset: the drift-triggered policy that ran, next to two it did not."""

import dagster as dg
from pydantic import Field

from platform_assets import constants
from platform_assets.lib.resources import MLflowResource, PlatformPathsResource
from platform_assets.lib.retrain_replay import (
    KEYS,
    MODEL,
    REPLAYED,
    Frontier,
    frontier,
    markdown,
    monthly_policy,
    plot,
    replay_table,
    score_policies,
)
from platform_assets.ml.figures import bars, markdown_image, png_bytes
from platform_assets.ml.frontier import gain_share
from platform_assets.ml.frontier import plot as plot_frontier
from platform_assets.paths import write_parquet_atomic


class ReplayConfig(dg.Config):
    first_month: str = Field(
        default=constants.REPLAY_FIRST_SCORED_MONTH,
        description="First month the champion scored; earlier months trained the first champion.",
    )


def write_reports(platform: PlatformPathsResource, table, found: Frontier) -> dict:
    """The table, frontier and charts under PLATFORM_HOME/reports/replay; their metadata entries."""
    policy = REPLAYED.retrain.policy
    folder = platform.paths.replay_reports
    folder.mkdir(parents=True, exist_ok=True)
    write_parquet_atomic(table, folder / "replay.parquet")
    table.write_csv(folder / "replay.csv")
    found.table.write_csv(folder / "frontier.csv")
    chart = plot(table)
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
                "Retrains against mean AUC for each AUC-drop threshold of the policy (rule: retrain "
                "when the top of the month's 95% bootstrap AUC interval lies at least the threshold "
                "below the champion's held-out AUC), between the frozen model and retraining every month.",
            )
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


FRONTIER_CHECK = "frontier_default_matches_replay"


@dg.asset(
    group_name="monitoring",
    deps=[KEYS.drift_report, KEYS.champion],
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
    """Replay table per month (drift share, retrained?, champion version and AUC, vs frozen and monthly
    retraining) and the retraining policy's frontier: retrains against mean AUC over its thresholds."""
    policy = REPLAYED.retrain.policy
    mlflow_store.activate(MODEL.experiment)
    client = mlflow_store.client()
    try:
        plan = monthly_policy(platform.paths, client, policy, config.first_month)
    except ValueError as error:
        raise dg.Failure(str(error)) from error
    scored = score_policies(platform.paths, client, plan)
    table = replay_table(context.instance, plan, scored)
    for row in table.iter_rows(named=True):
        context.log.info(f"{row}")
    found = frontier(table, plan, scored, policy)
    fits, means = scored.fits, found.means
    return dg.MaterializeResult(
        metadata={
            **write_reports(platform, table, found),
            "monthly_policy_models": (
                f"{len(plan.registered)} registered by runs, {len(fits.cache_hits) + len(fits.from_others)} from "
                f"the fit cache (pre-trained during the replay), {len(fits.names)} trained in this step"
            ),
            "policy_threshold": policy.auc_drop_threshold,
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
        },
        check_results=[frontier_check(found, table, policy)],
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
