"""The replay's outcome as an asset: the drift-triggered policy that ran, next to two it did not."""

import functools
import math
from collections.abc import Collection
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import dagster as dg
from pydantic import Field

from platform_assets import constants
from platform_assets.defs.monitoring.resources import RetrainPolicy
from platform_assets.delay_model.spec import MODEL
from platform_assets.lib.resources import MLflowResource, PlatformPathsResource
from platform_assets.ml.figures import bars, figure, markdown_image, png_bytes
from platform_assets.ml.frontier import MonthScore, PolicyOutcome, gain_share, simulate
from platform_assets.ml.frontier import plot as plot_frontier
from platform_assets.ml.metrics import rank_auc
from platform_assets.ml.params import RUNTIME_PARAMS, TrainParams
from platform_assets.ml.registry import version_with_recipe
from platform_assets.months import MonthWindow, all_months
from platform_assets.paths import PlatformPaths, write_parquet_atomic

if TYPE_CHECKING:
    import polars as pl
    from matplotlib.figure import Figure
    from mlflow import MlflowClient

TARGET, PREDICTION = MODEL.label, MODEL.prediction


class ReplayConfig(dg.Config):
    first_month: str = Field(
        default=constants.REPLAY_FIRST_SCORED_MONTH,
        description="First month the champion scored; earlier months trained the first champion.",
    )


def scored_months(paths: PlatformPaths, first: str) -> list[str]:
    keys = all_months()
    return [m for m in keys[keys.index(first) :] if paths.predictions_file(m).exists()]


def labelled_rows(paths: PlatformPaths, month: str) -> "pl.DataFrame":
    import polars as pl

    return pl.read_parquet(paths.predictions_file(month)).filter(pl.col(TARGET).is_not_null())


def month_features(paths: PlatformPaths, initial_set: "pl.DataFrame", month: str) -> "pl.DataFrame":
    """Point-in-time features + label of a month: the first training set, or the prediction log."""
    import polars as pl

    columns = initial_set.columns
    if paths.predictions_file(month).exists():
        return labelled_rows(paths, month).select(columns).cast(initial_set.schema)
    return initial_set.filter(pl.col("flight_month") == month)


def latest_report(instance: dg.DagsterInstance, month: str) -> dict:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("drift_report"), asset_partitions=[month]),
        limit=1,
    ).records
    return (
        {k: v.value for k, v in records[0].asset_materialization.metadata.items()}
        if records
        else {}
    )


def retrain_outcome(instance: dg.DagsterInstance, month: str) -> tuple[bool, bool]:
    """(did the drift sensor retrain on this month's report, did the candidate pass the gate)."""
    runs = instance.get_runs(filters=dg.RunsFilter(tags={"platform/drift_report_month": month}))
    if not runs:
        return False, False
    run_ids = {run.run_id for run in runs}
    # champion materializes only when the promotion gate passed.
    champions = instance.fetch_materializations(dg.AssetKey("champion"), limit=100).records
    return True, any(record.event_log_entry.run_id in run_ids for record in champions)


def registered_version(
    client: "MlflowClient", window: MonthWindow, params: TrainParams
) -> str | None:
    """The newest registered version trained on exactly this window with this recipe (no search), if any.

    A retrain the drift policy already ran is the model the retrain-every-month policy would have
    trained (retraining is reproducible).
    """
    version = version_with_recipe(
        client, MODEL.name, {"training_window": str(window)}, params.as_mlflow_params(), RUNTIME_PARAMS
    )
    return None if version is None else str(version.version)


@dataclass
class MonthlyPolicy:
    """The retrain-every-month policy over the scored months: M(m), the model trained on the window
    before m (as a retrain on m's report trains it), is a registered version when a run already
    trained that window with the same recipe, and otherwise a frame still to train on."""

    months: list[str]
    initial_set: "pl.DataFrame"
    params: TrainParams
    model_of: dict[str, str]  # month -> M(month)'s name: a registered version or "trained here on ..."
    registered: set[str]
    to_train: dict[str, "pl.DataFrame"]


def monthly_policy(
    paths: PlatformPaths,
    client: "MlflowClient",
    policy: RetrainPolicy,
    first_month: str,
    through: str | None = None,
    settled: Collection[str] = (),
) -> MonthlyPolicy:
    """The policy's models for the months scored from `first_month` (to `through`, when given).
    Models named in `settled` (a caller already trained them) get no frame in `to_train`."""
    import polars as pl

    months = [m for m in scored_months(paths, first_month) if through is None or m <= through]
    if not months:
        raise ValueError(f"no scored months from {first_month}: run the replay (make run) first")
    first_scores = pl.read_parquet(paths.predictions_file(months[0]))
    first_version = first_scores["model_version"][0]
    initial_window = MonthWindow.parse(first_scores["training_window"][0])
    initial_set = pl.read_parquet(paths.training_set_file(initial_window.start, initial_window.end))
    # Retrains keep the first champion's recipe (its search's winner): so do the monthly models.
    first = client.get_model_version(MODEL.name, first_version)
    params = replace(TrainParams.from_mlflow_params(client.get_run(first.run_id).data.params), device="cpu")
    plan = MonthlyPolicy(months, initial_set, params, {}, set(), {})
    for month in months:
        window = policy.training_window(month)
        if window is None:
            raise ValueError(f"no {policy.window_months}-month window before {month}")
        version = first_version if window == initial_window else registered_version(client, window, params)
        name = version or f"trained here on {window}"
        plan.model_of[month] = name
        if version is not None:
            plan.registered.add(name)
        elif name not in plan.to_train and name not in settled:
            plan.to_train[name] = pl.concat([month_features(paths, initial_set, m) for m in window.months])
    return plan


def plot(table: "pl.DataFrame") -> "Figure":
    fig, ax = figure(8, 4)
    months = table["month"].to_list()
    for column, label in (
        ("auc_drift_policy", "drift-triggered"),
        ("auc_frozen", "frozen first model"),
        ("auc_monthly", "retrain every month"),
    ):
        ax.plot(months, table[column].to_list(), marker="o", label=label)
    for i, retrained in enumerate(table["retrained"].to_list()):
        if retrained:
            ax.axvline(i, color="grey", alpha=0.25)
    ax.set_ylabel("AUC of the model scoring the month")
    ax.set_title("2013 replay (grey: drift sensor retrained after this month's report)")
    ax.legend()
    fig.autofmt_xdate()
    return fig


# Thresholds the frontier replays; -inf retrains on every report (gated), +inf never (frozen).
FRONTIER_THRESHOLDS = (
    -math.inf, 0.0, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, math.inf,
)


def threshold_label(t: float) -> str:
    return "every report" if t == -math.inf else "never" if t == math.inf else f"{t:g}"


def frontier_table(
    outcomes: "list[PolicyOutcome]", frozen: float, monthly: float, monthly_retrains: int, default: float
) -> "pl.DataFrame":
    import polars as pl

    rows = [
        {
            "policy": f"AUC drop >= {threshold_label(o.threshold)}",
            "retrains": o.retrains,
            "promotions": o.promotions,
            "mean_auc": o.mean_auc,
            "share_of_monthly_gain": gain_share(o.mean_auc, frozen, monthly),
            "default": o.threshold == default,
        }
        for o in sorted(outcomes, key=lambda o: -o.threshold)
    ]
    rows.append(
        {
            "policy": "retrain every month (ungated, trained through the month before)",
            "retrains": monthly_retrains,
            "promotions": monthly_retrains,
            "mean_auc": monthly,
            "share_of_monthly_gain": 1.0,
            "default": False,
        }
    )
    return pl.DataFrame(rows)


@dg.asset(
    group_name="monitoring", deps=["drift_report", "champion"], kinds={"polars", "matplotlib"}
)
def replay_summary(
    context: dg.AssetExecutionContext,
    config: ReplayConfig,
    platform: PlatformPathsResource,
    retrain_policy: RetrainPolicy,
    mlflow_store: MLflowResource,
) -> dg.MaterializeResult:
    """Replay table per month (drift share, retrained?, champion version and AUC, vs frozen and monthly
    retraining) and the retraining policy's frontier: retrains against mean AUC over its thresholds."""
    import numpy as np
    import polars as pl

    from platform_assets.delay_model.registry import load_version
    from platform_assets.ml.metrics import auc_interval
    from platform_assets.ml.parallel import start_fits
    from platform_assets.ml.pyfunc import predict_loaded
    from platform_assets.ml.training import predict_proba

    paths = platform.paths
    mlflow_store.activate(MODEL.experiment)
    client = mlflow_store.client()
    try:
        plan = monthly_policy(paths, client, retrain_policy, config.first_month)
    except ValueError as error:
        raise dg.Failure(str(error)) from error
    months, model_of, registered = plan.months, plan.model_of, plan.registered
    labelled = {m: labelled_rows(paths, m) for m in months}
    features = {m: month_features(paths, plan.initial_set, m).to_pandas() for m in months}
    load = functools.cache(load_version)  # each registered version loaded from MLflow once
    scorers: dict[str, Any] = {
        name: lambda frame, v=name: predict_loaded(load(v), frame) for name in registered
    }
    # The models no run registered train side by side in worker processes while this process
    # scores the registered ones; those the replay pre-trained (make run) come from the fit cache.
    fits = start_fits(plan.to_train, plan.params, MODEL.columns, cache=paths.fit_cache, overlap=True)
    # Each model scores the month it would have served and every later month (a window repeats:
    # the same model, scored once).
    pairs = list(dict.fromkeys((model_of[start], month) for k, start in enumerate(months) for month in months[k:]))
    scores: dict[tuple[str, str], MonthScore] = {}

    def score(model: str, month: str) -> MonthScore:
        y = labelled[month][TARGET].to_numpy()
        logged = labelled[month]
        if logged["model_version"][0] == model:
            proba = logged[PREDICTION].to_numpy()  # exactly what the drift report decided on
        else:
            proba = scorers[model](features[month])
        return MonthScore(rank_auc(y, proba), auc_interval(y, proba, resamples=constants.AUC_INTERVAL_RESAMPLES)[1])

    # The registered models and the fit cache's hits score while the other fits train; the rest
    # once they are done.
    for fitted in (fits.hits, fits.wait):
        for name, trained in fitted().items():
            scorers[name] = lambda frame, t=trained: predict_proba(t.model, t.preprocessor, frame)
        for model, month in pairs:
            if model in scorers and (model, month) not in scores:
                scores[(model, month)] = score(model, month)
    holdout = {}
    for month, model in model_of.items():
        tag = client.get_model_version(MODEL.name, model).tags.get("holdout_auc") if model in registered else None
        # The gate's held-out month of M(m) is m; the tag keeps 5 decimals.
        holdout[model] = float(tag) if tag else round(scores[(model, month)].auc, 5)

    rows = []
    for month in months:
        scored = labelled[month]
        y = scored[TARGET].to_numpy()
        report = latest_report(context.instance, month)
        retrained, promoted = retrain_outcome(context.instance, month)
        rows.append(
            {
                "month": month,
                "drift_share": report.get("drift_share"),
                "auc_drop": report.get("auc_drop"),
                "retrained": retrained,
                "promoted": promoted,
                "champion_version": scored["model_version"][0],
                "auc_drift_policy": rank_auc(y, scored[PREDICTION].to_numpy()),
                "auc_frozen": scores[(model_of[months[0]], month)].auc,
                "auc_monthly": scores[(model_of[month], month)].auc,
                "monthly_model": f"v{model_of[month]} (registered)" if model_of[month] in registered else model_of[month],
                "rows": len(y),
            }
        )
        context.log.info(f"{rows[-1]}")
    table = pl.DataFrame(rows)
    means = {
        c: float(np.mean(table[c].to_numpy()))
        for c in ("auc_drift_policy", "auc_frozen", "auc_monthly")
    }
    # Retraining every month retrains on every month after the first scored one.
    monthly_retrains = len(months) - 1
    grid = sorted({*FRONTIER_THRESHOLDS, retrain_policy.auc_drop_threshold})
    outcomes = [
        simulate(t, months, model_of, scores, holdout, retrain_policy.min_auc_gain) for t in grid
    ]
    frontier = frontier_table(
        outcomes, means["auc_frozen"], means["auc_monthly"], monthly_retrains, retrain_policy.auc_drop_threshold
    )
    default = next(o for o in outcomes if o.threshold == retrain_policy.auc_drop_threshold)
    # The replayed default must be the run that happened (when drift share is not a trigger).
    matches = (
        default.retrains == int(table["retrained"].sum())
        and abs(default.mean_auc - means["auc_drift_policy"]) < 1e-9
    )
    if not matches:
        context.log.warning(
            f"the frontier's default ({default.retrains} retrains, mean AUC {default.mean_auc:.4f}) differs "
            f"from the replay ({int(table['retrained'].sum())}, {means['auc_drift_policy']:.4f})"
            + (": the drift share trigger is on" if retrain_policy.drift_share_threshold is not None else "")
        )

    folder = paths.replay_reports
    folder.mkdir(parents=True, exist_ok=True)
    write_parquet_atomic(table, folder / "replay.parquet")
    table.write_csv(folder / "replay.csv")
    frontier.write_csv(folder / "frontier.csv")
    chart = plot(table)
    (folder / "replay.png").write_bytes(png_bytes(chart, dpi=110))
    frontier_chart = plot_frontier(
        outcomes, means["auc_frozen"], (monthly_retrains, means["auc_monthly"]), retrain_policy.auc_drop_threshold
    )
    (folder / "frontier.png").write_bytes(png_bytes(frontier_chart, dpi=110))
    drift = bars(
        table["month"].to_list(), [v or 0.0 for v in table["drift_share"].to_list()], "drift share",
        threshold=retrain_policy.drift_share_threshold,
    )
    return dg.MaterializeResult(
        metadata={
            "table": dg.MetadataValue.md(markdown(table)),
            "plot": dg.MetadataValue.md(
                markdown_image(chart, "replay: AUC per month under three policies")
            ),
            "frontier": dg.MetadataValue.md(markdown(frontier)),
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
                        f"; the dashed line is the policy's drift-share trigger ({retrain_policy.drift_share_threshold:.2f})."
                        if retrain_policy.drift_share_threshold is not None
                        else " (reported; not a retraining trigger by default)."
                    ),
                )
            ),
            "plot_png": platform.report_link(folder / "replay.png"),
            "frontier_png": platform.report_link(folder / "frontier.png"),
            "csv": platform.report_link(folder / "replay.csv"),
            "frontier_csv": platform.report_link(folder / "frontier.csv"),
            "monthly_policy_models": (
                f"{len(registered)} registered by runs, {len(fits.cache_hits) + len(fits.from_others)} from the "
                f"fit cache (pre-trained during the replay), {len(fits.names)} trained in this step"
            ),
            "policy_threshold": retrain_policy.auc_drop_threshold,
            "retrains_drift_policy": int(table["retrained"].sum()),
            "promotions_drift_policy": int(table["promoted"].sum()),
            "retrains_monthly_policy": monthly_retrains,
            "mean_auc_drift_policy": round(means["auc_drift_policy"], 4),
            "mean_auc_frozen": round(means["auc_frozen"], 4),
            "mean_auc_monthly": round(means["auc_monthly"], 4),
            "share_of_monthly_gain": round(
                gain_share(means["auc_drift_policy"], means["auc_frozen"], means["auc_monthly"]), 3
            ),
            "frontier_default_matches_replay": matches,
        }
    )


def markdown(table: "pl.DataFrame") -> str:
    header = "| " + " | ".join(table.columns) + " |\n|" + "---|" * table.width + "\n"

    def cell(v: object) -> str:
        return f"{v:.4f}" if isinstance(v, float) else ("" if v is None else str(v))

    return header + "\n".join(
        "| " + " | ".join(cell(v) for v in row) + " |" for row in table.iter_rows()
    )
