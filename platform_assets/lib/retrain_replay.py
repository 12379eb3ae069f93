"""The retraining policies replayed over a model's scored months: the drift-triggered policy that ran,
a frozen first model, retraining every month, and the drift policy's frontier over its thresholds
(the replay_summary asset, defs/monitoring/assets.py, tabulates them)."""

import functools
import math
from collections.abc import Collection
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import dagster as dg

from platform_assets import constants
from platform_assets.lib.models.keys import ModelKeys
from platform_assets.ml.declaration import ModelDeclaration, declared
from platform_assets.ml.figures import figure
from platform_assets.ml.frontier import (
    MonthScore,
    PolicyOutcome,
    gain_share,
    paired_intervals,
    simulate,
)
from platform_assets.ml.metrics import rank_auc
from platform_assets.ml.params import RUNTIME_PARAMS, TrainParams
from platform_assets.ml.policy import RetrainPolicy
from platform_assets.ml.registry import version_with_recipe
from platform_assets.months import MonthWindow, all_months
from platform_assets.paths import PlatformPaths

if TYPE_CHECKING:
    import polars as pl
    from matplotlib.figure import Figure
    from mlflow import MlflowClient

# The model make run replays (its declaration under defs/models/).
REPLAYED: ModelDeclaration = declared(constants.REPLAY_MODEL)
MODEL, KEYS = REPLAYED.spec, ModelKeys(REPLAYED.key_prefix)
TARGET, PREDICTION = MODEL.label, MODEL.prediction
PREDICTIONS, TRAINING_SET = KEYS.name("predictions"), KEYS.name("training_set")


def scored_months(paths: PlatformPaths, first: str) -> list[str]:
    keys = all_months()
    return [m for m in keys[keys.index(first) :] if paths.predictions_file(m, PREDICTIONS).exists()]


def labelled_rows(paths: PlatformPaths, month: str) -> "pl.DataFrame":
    import polars as pl

    return pl.read_parquet(paths.predictions_file(month, PREDICTIONS)).filter(pl.col(TARGET).is_not_null())


def month_features(paths: PlatformPaths, initial_set: "pl.DataFrame", month: str) -> "pl.DataFrame":
    """Point-in-time features + label of a month: the first training set, or the prediction log."""
    import polars as pl

    columns = initial_set.columns
    if paths.predictions_file(month, PREDICTIONS).exists():
        return labelled_rows(paths, month).select(columns).cast(initial_set.schema)
    return initial_set.filter(pl.col("flight_month") == month)


def latest_report(instance: dg.DagsterInstance, month: str) -> dict:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=KEYS.drift_report, asset_partitions=[month]),
        limit=1,
    ).records
    return (
        {k: v.value for k, v in records[0].asset_materialization.metadata.items()}
        if records
        else {}
    )


def retrain_outcome(instance: dg.DagsterInstance, month: str) -> tuple[bool, bool]:
    """(did the drift sensor retrain on this month's report, did the candidate pass the gate)."""
    runs = instance.get_runs(filters=dg.RunsFilter(tags={"platform/drift_report_month": month, "platform/model": KEYS.prefix}))
    if not runs:
        return False, False
    run_ids = {run.run_id for run in runs}
    # champion materializes only when the promotion gate passed.
    champions = instance.fetch_materializations(KEYS.champion, limit=100).records
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
    first_scores = pl.read_parquet(paths.predictions_file(months[0], PREDICTIONS))
    first_version = first_scores["model_version"][0]
    initial_window = MonthWindow.parse(first_scores["training_window"][0])
    initial_set = pl.read_parquet(paths.training_set_file(initial_window.start, initial_window.end, TRAINING_SET))
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


def interval_label(interval: tuple[float, float]) -> str:
    return f"[{interval[0]:+.4f}, {interval[1]:+.4f}]"


def frontier_table(
    outcomes: "list[PolicyOutcome]", frozen: float, monthly: float, monthly_retrains: int, default: PolicyOutcome
) -> "pl.DataFrame":
    import polars as pl

    rows = [
        {
            "policy": f"AUC drop >= {threshold_label(o.threshold)}",
            # What a promotion serves: the gated candidate (trained through the month before the
            # report, as this replay ran), or its refit through the report's month.
            "design": "refit through m" if o.refit else "candidate (through m-1)",
            "retrains": o.retrains,
            "promotions": o.promotions,
            "mean_auc": o.mean_auc,
            "share_of_monthly_gain": gain_share(o.mean_auc, frozen, monthly),
            # Paired bootstrap 95% intervals (flights resampled within each month) of its mean AUC
            # minus the frozen model's and minus retraining every month's.
            "vs_frozen_95": interval_label(o.intervals["frozen"]),
            "vs_monthly_95": interval_label(o.intervals["monthly"]),
            "default": o is default,
        }
        for o in sorted(outcomes, key=lambda o: (o.refit, -o.threshold))
    ]
    rows.append(
        {
            "policy": "retrain every month (ungated, trained through the month before)",
            "design": "every month",
            "retrains": monthly_retrains,
            "promotions": monthly_retrains,
            "mean_auc": monthly,
            "share_of_monthly_gain": 1.0,
            "vs_frozen_95": "",
            "vs_monthly_95": "",
            "default": False,
        }
    )
    return pl.DataFrame(rows)


def markdown(table: "pl.DataFrame") -> str:
    header = "| " + " | ".join(table.columns) + " |\n|" + "---|" * table.width + "\n"

    def cell(v: object) -> str:
        return f"{v:.4f}" if isinstance(v, float) else ("" if v is None else str(v))

    return header + "\n".join(
        "| " + " | ".join(cell(v) for v in row) + " |" for row in table.iter_rows()
    )


@dataclass
class PolicyScores:
    """Every policy model's AUC on the months it would have served, and its gate's held-out AUC."""

    scores: dict[tuple[str, str], MonthScore]
    holdout: dict[str, float]
    labelled: dict[str, "pl.DataFrame"]
    fits: Any
    probabilities: dict[tuple[str, str], Any]  # (model, month) -> scores of the month's labelled flights


def score_policies(paths: PlatformPaths, client: "MlflowClient", plan: MonthlyPolicy) -> PolicyScores:
    """Score each model of the monthly policy on the month it would have served and every later month."""
    from platform_assets.ml.metrics import auc_interval
    from platform_assets.ml.parallel import start_fits
    from platform_assets.ml.pyfunc import load_version, predict_loaded
    from platform_assets.ml.training import predict_proba

    months, model_of, registered = plan.months, plan.model_of, plan.registered
    labelled = {m: labelled_rows(paths, m) for m in months}
    features = {m: month_features(paths, plan.initial_set, m).to_pandas() for m in months}
    load = functools.cache(lambda version: load_version(MODEL.name, version))  # each version loaded once
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
    probabilities: dict[tuple[str, str], Any] = {}

    def score(model: str, month: str) -> MonthScore:
        y = labelled[month][TARGET].to_numpy()
        logged = labelled[month]
        if logged["model_version"][0] == model:
            proba = logged[PREDICTION].to_numpy()  # exactly what the drift report decided on
        else:
            proba = scorers[model](features[month])
        probabilities[(model, month)] = proba
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
    return PolicyScores(scores, holdout, labelled, fits, probabilities)


def replay_table(instance: dg.DagsterInstance, plan: MonthlyPolicy, scored: PolicyScores) -> "pl.DataFrame":
    """Month by month: drift share, retrained?, the champion's AUC next to frozen and monthly."""
    import polars as pl

    months, model_of = plan.months, plan.model_of
    rows = []
    for month in months:
        logged = scored.labelled[month]
        y = logged[TARGET].to_numpy()
        report = latest_report(instance, month)
        retrained, promoted = retrain_outcome(instance, month)
        rows.append(
            {
                "month": month,
                "drift_share": report.get("drift_share"),
                "auc_drop": report.get("auc_drop"),
                "retrained": retrained,
                "promoted": promoted,
                "champion_version": logged["model_version"][0],
                "auc_drift_policy": rank_auc(y, logged[PREDICTION].to_numpy()),
                "auc_frozen": scored.scores[(model_of[months[0]], month)].auc,
                "auc_monthly": scored.scores[(model_of[month], month)].auc,
                "monthly_model": f"v{model_of[month]} (registered)"
                if model_of[month] in plan.registered
                else model_of[month],
                "rows": len(y),
            }
        )
    return pl.DataFrame(rows)


@dataclass
class Frontier:
    outcomes: list[PolicyOutcome]
    table: "pl.DataFrame"
    default: PolicyOutcome
    means: dict[str, float]
    monthly_retrains: int
    matches: bool
    """Is the replayed default the run that happened (when drift share is not a trigger)?"""


def frontier(table: "pl.DataFrame", plan: MonthlyPolicy, scored: PolicyScores, policy: RetrainPolicy) -> Frontier:
    """The drift policy replayed over its thresholds, with the frozen and monthly policies' means."""
    import numpy as np

    means = {c: float(np.mean(table[c].to_numpy())) for c in ("auc_drift_policy", "auc_frozen", "auc_monthly")}
    # Retraining every month retrains on every month after the first scored one.
    monthly_retrains = len(plan.months) - 1
    grid = sorted({*FRONTIER_THRESHOLDS, policy.auc_drop_threshold})
    outcomes = [
        simulate(t, plan.months, plan.model_of, scored.scores, scored.holdout, policy.min_auc_gain, refit)
        for refit in (False, True)
        for t in grid
    ]
    intervals = paired_intervals(
        plan.months,
        {m: scored.labelled[m][TARGET].to_numpy() for m in plan.months},
        scored.probabilities,
        {str(i): o.champions for i, o in enumerate(outcomes)},
        {"frozen": [plan.model_of[plan.months[0]]] * len(plan.months), "monthly": [plan.model_of[m] for m in plan.months]},
        resamples=constants.POLICY_INTERVAL_RESAMPLES,
    )
    for i, outcome in enumerate(outcomes):
        outcome.intervals = {base: intervals[(str(i), base)] for base in ("frozen", "monthly")}
    # The replay ran the policy's own design: the default row is that design at its threshold.
    default = next(o for o in outcomes if o.threshold == policy.auc_drop_threshold and o.refit == policy.refit)
    rows = frontier_table(outcomes, means["auc_frozen"], means["auc_monthly"], monthly_retrains, default)
    matches = (
        default.retrains == int(table["retrained"].sum())
        and abs(default.mean_auc - means["auc_drift_policy"]) < 1e-9
    )
    return Frontier(outcomes, rows, default, means, monthly_retrains, matches)
