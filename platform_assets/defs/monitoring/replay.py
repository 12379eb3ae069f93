"""The replay's outcome as an asset: the drift-triggered policy that ran, next to two it did not."""

from dataclasses import replace
from typing import TYPE_CHECKING

import dagster as dg
from pydantic import Field

from platform_assets.core import constants
from platform_assets.core.figures import bars, figure, markdown_image, png_bytes
from platform_assets.core.metrics import rank_auc
from platform_assets.core.partitions import MonthWindow, all_months
from platform_assets.core.paths import PlatformPaths, write_parquet_atomic
from platform_assets.core.registry import version_with_recipe
from platform_assets.core.resources import MLflowResource, PlatformPathsResource
from platform_assets.core.tabular.params import RUNTIME_PARAMS, TrainParams
from platform_assets.defs.monitoring.resources import RetrainPolicy
from platform_assets.delay_model.spec import MODEL

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
    """Replay table per month: drift share, retrained?, champion version and AUC, vs frozen and monthly retraining."""
    import numpy as np
    import polars as pl

    from platform_assets.core.tabular.training import predict_proba
    from platform_assets.delay_model.registry import predict_version
    from platform_assets.delay_model.training import fit

    paths = platform.paths
    months = scored_months(paths, config.first_month)
    if not months:
        raise dg.Failure(
            f"no scored months from {config.first_month}: run the replay (make run) first"
        )
    first_scores = pl.read_parquet(paths.predictions_file(months[0]))
    first_version = first_scores["model_version"][0]
    initial_window = MonthWindow.parse(first_scores["training_window"][0])
    initial_set = pl.read_parquet(paths.training_set_file(initial_window.start, initial_window.end))
    params = replace(TrainParams(), device="cpu")
    mlflow_store.activate(MODEL.experiment)
    client = mlflow_store.client()

    rows = []
    for month in months:
        scored = labelled_rows(paths, month)
        y = scored[TARGET].to_numpy()
        features = month_features(paths, initial_set, month).to_pandas()
        frozen = predict_version(first_version, features)
        window = retrain_policy.training_window(month)
        if window is None:
            raise dg.Failure(f"no {retrain_policy.window_months}-month window before {month}")
        reused = registered_version(client, window, params)
        if reused is not None:
            monthly_scores = predict_version(reused, features)
        else:
            train = pl.concat([month_features(paths, initial_set, m) for m in window.months])
            monthly = fit(train, params)
            monthly_scores = predict_proba(monthly.model, monthly.preprocessor, features)
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
                "auc_frozen": rank_auc(y, frozen),
                "auc_monthly": rank_auc(y, monthly_scores),
                "monthly_model": f"v{reused} (registered)" if reused else "trained here",
                "rows": len(y),
            }
        )
        context.log.info(f"{rows[-1]}")
    table = pl.DataFrame(rows)
    folder = paths.replay_reports
    folder.mkdir(parents=True, exist_ok=True)
    write_parquet_atomic(table, folder / "replay.parquet")
    table.write_csv(folder / "replay.csv")
    chart = plot(table)
    (folder / "replay.png").write_bytes(png_bytes(chart, dpi=110))
    drift = bars(
        table["month"].to_list(), [v or 0.0 for v in table["drift_share"].to_list()], "drift share",
        threshold=retrain_policy.drift_share_threshold,
    )
    means = {
        c: float(np.mean(table[c].to_numpy()))
        for c in ("auc_drift_policy", "auc_frozen", "auc_monthly")
    }
    return dg.MaterializeResult(
        metadata={
            "table": dg.MetadataValue.md(markdown(table)),
            "plot": dg.MetadataValue.md(
                markdown_image(chart, "replay: AUC per month under three policies")
            ),
            "drift_share_per_month": dg.MetadataValue.md(
                markdown_image(
                    drift, "drift share per month",
                    f"Share of the model's features that drifted each month; the dashed line is the "
                    f"sensor's threshold ({retrain_policy.drift_share_threshold:.2f}).",
                )
            ),
            "plot_png": platform.report_link(folder / "replay.png"),
            "csv": platform.report_link(folder / "replay.csv"),
            "retrains_drift_policy": int(table["retrained"].sum()),
            "promotions_drift_policy": int(table["promoted"].sum()),
            "retrains_monthly_policy": table.height,
            "mean_auc_drift_policy": round(means["auc_drift_policy"], 4),
            "mean_auc_frozen": round(means["auc_frozen"], 4),
            "mean_auc_monthly": round(means["auc_monthly"], 4),
        }
    )


def markdown(table: "pl.DataFrame") -> str:
    header = "| " + " | ".join(table.columns) + " |\n|" + "---|" * table.width + "\n"

    def cell(v: object) -> str:
        return f"{v:.4f}" if isinstance(v, float) else ("" if v is None else str(v))

    return header + "\n".join(
        "| " + " | ".join(cell(v) for v in row) + " |" for row in table.iter_rows()
    )
