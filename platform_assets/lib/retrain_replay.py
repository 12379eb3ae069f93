"""The retraining policies replayed over a model's scored months: the drift-triggered policy that ran,
a frozen first model, retraining every month, and the drift policy's frontier over its triggers and
thresholds (the replay_summary asset, defs/monitoring/assets.py, tabulates them for every declared
model the replay scored)."""

import functools
import math
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import dagster as dg

from platform_assets import constants
from platform_assets.lib.frontier_table import Halves, chosen_on_first_half, frontier_table
from platform_assets.lib.models.keys import ModelKeys
from platform_assets.ml.declaration import ModelDeclaration, declared
from platform_assets.ml.figures import figure
from platform_assets.ml.frontier import (
    AUC_DROP,
    DRIFT_SHARE,
    IMPORTANT_DRIFT,
    MonthScore,
    PolicyOutcome,
    paired_intervals,
    simulate,
)
from platform_assets.ml.metrics import rank_auc
from platform_assets.ml.params import RUNTIME_PARAMS, TrainParams
from platform_assets.ml.policy import RetrainPolicy
from platform_assets.ml.registry import version_with_recipe
from platform_assets.ml.spec import ModelSpec
from platform_assets.months import MonthWindow, all_months
from platform_assets.paths import PlatformPaths

if TYPE_CHECKING:
    import polars as pl
    from matplotlib.figure import Figure
    from mlflow import MlflowClient

    from platform_assets.lib.trigger_signals import Signals


@dataclass(frozen=True)
class Replayed:
    """A declared model as the replay summary reads it: its spec, asset keys and policy."""

    declaration: ModelDeclaration

    @classmethod
    def of(cls, key_prefix: str) -> "Replayed":
        return cls(declared(key_prefix))

    @property
    def spec(self) -> ModelSpec:
        return self.declaration.spec

    @property
    def keys(self) -> ModelKeys:
        return ModelKeys(self.declaration.key_prefix)

    @property
    def policy(self) -> RetrainPolicy:
        return self.declaration.retrain.policy

    @property
    def predictions(self) -> str:
        return self.keys.name("predictions")

    @property
    def training_set(self) -> str:
        return self.keys.name("training_set")


# The model make run replays by default (its declaration under defs/models/); `make run --models`
# replays others beside it, and the summary covers every declared model the replay scored.
DEFAULT = Replayed.of(constants.REPLAY_MODEL)
REPLAYED: ModelDeclaration = DEFAULT.declaration
MODEL, KEYS, PREDICTIONS, TRAINING_SET = DEFAULT.spec, DEFAULT.keys, DEFAULT.predictions, DEFAULT.training_set


def scored_months(paths: PlatformPaths, first: str, model: Replayed = DEFAULT) -> list[str]:
    keys = all_months()
    return [m for m in keys[keys.index(first) :] if paths.predictions_file(m, model.predictions).exists()]


def labelled_rows(paths: PlatformPaths, month: str, model: Replayed = DEFAULT) -> "pl.DataFrame":
    import polars as pl

    scored = pl.read_parquet(paths.predictions_file(month, model.predictions))
    return scored.filter(pl.col(model.spec.label).is_not_null())


def month_features(
    paths: PlatformPaths, initial_set: "pl.DataFrame", month: str, model: Replayed = DEFAULT
) -> "pl.DataFrame":
    """Point-in-time features + label of a month: the first training set, or the prediction log."""
    import polars as pl

    columns = initial_set.columns
    if paths.predictions_file(month, model.predictions).exists():
        return labelled_rows(paths, month, model).select(columns).cast(initial_set.schema)
    return initial_set.filter(pl.col("flight_month") == month)


def latest_report(instance: dg.DagsterInstance, month: str, model: Replayed = DEFAULT) -> dict:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=model.keys.drift_report, asset_partitions=[month]),
        limit=1,
    ).records
    return (
        {k: v.value for k, v in records[0].asset_materialization.metadata.items()}
        if records
        else {}
    )


def retrain_outcome(instance: dg.DagsterInstance, month: str, model: Replayed = DEFAULT) -> tuple[bool, bool]:
    """(did the drift sensor retrain on this month's report, did the candidate pass the gate)."""
    keys = model.keys
    runs = instance.get_runs(filters=dg.RunsFilter(tags={"platform/drift_report_month": month, "platform/model": keys.prefix}))
    if not runs:
        return False, False
    run_ids = {run.run_id for run in runs}
    # champion materializes only when the promotion gate passed.
    champions = instance.fetch_materializations(keys.champion, limit=100).records
    return True, any(record.event_log_entry.run_id in run_ids for record in champions)


def registered_version(
    client: "MlflowClient", window: MonthWindow, params: TrainParams, model: Replayed = DEFAULT
) -> str | None:
    """The newest registered version trained on exactly this window with this recipe (no search), if any.

    A retrain the drift policy already ran is the model the retrain-every-month policy would have
    trained (retraining is reproducible).
    """
    version = version_with_recipe(
        client, model.spec.name, {"training_window": str(window)}, params.as_mlflow_params(), RUNTIME_PARAMS
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
    model: Replayed = DEFAULT
    window_of: dict[str, MonthWindow] = field(default_factory=dict)  # a model's training window


def monthly_policy(
    paths: PlatformPaths,
    client: "MlflowClient",
    policy: RetrainPolicy,
    first_month: str,
    through: str | None = None,
    settled: Collection[str] = (),
    model: Replayed = DEFAULT,
) -> MonthlyPolicy:
    """The policy's models for the months scored from `first_month` (to `through`, when given).
    Models named in `settled` (a caller already trained them) get no frame in `to_train`."""
    import polars as pl

    months = [m for m in scored_months(paths, first_month, model) if through is None or m <= through]
    if not months:
        raise ValueError(f"no scored months of {model.spec.name} from {first_month}: run the replay (make run) first")
    first_scores = pl.read_parquet(paths.predictions_file(months[0], model.predictions))
    first_version = first_scores["model_version"][0]
    initial_window = MonthWindow.parse(first_scores["training_window"][0])
    initial_set = pl.read_parquet(paths.training_set_file(initial_window.start, initial_window.end, model.training_set))
    # Retrains keep the first champion's recipe (its search's winner): so do the monthly models.
    first = client.get_model_version(model.spec.name, first_version)
    params = replace(TrainParams.from_mlflow_params(client.get_run(first.run_id).data.params), device="cpu")
    plan = MonthlyPolicy(months, initial_set, params, {}, set(), {}, model)
    for month in months:
        window = policy.training_window(month)
        if window is None:
            raise ValueError(f"no {policy.window_months}-month window before {month}")
        version = first_version if window == initial_window else registered_version(client, window, params, model)
        name = version or f"trained here on {window}"
        plan.model_of[month] = name
        plan.window_of[name] = initial_window if name == first_version else window
        if version is not None:
            plan.registered.add(name)
        elif name not in plan.to_train and name not in settled:
            plan.to_train[name] = pl.concat([month_features(paths, initial_set, m, model) for m in window.months])
    return plan


def plot(table: "pl.DataFrame", model: Replayed = DEFAULT) -> "Figure":
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
    ax.set_title(f"{model.spec.name}: the replay (grey: drift sensor retrained after this month's report)")
    ax.legend()
    fig.autofmt_xdate()
    return fig


# Thresholds the frontier replays per trigger. For the AUC rule -inf retrains on every report
# (gated) and +inf never (frozen); the others retrain when their signal reaches the threshold.
FRONTIER_THRESHOLDS = (
    -math.inf, 0.0, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, math.inf,
)
SIGNAL_THRESHOLDS = {
    # Share of the model's features that drifted from its training data (as the drift report counts them).
    DRIFT_SHARE: (0.3, 0.4, 0.5, 0.6, 0.7, 0.8),
    # Share of the champion's permutation importance carried by the features that drifted.
    IMPORTANT_DRIFT: (0.1, 0.25, 0.5, 0.75, 0.9),
}


@dataclass
class PolicyScores:
    """Every policy model's AUC on the months it would have served, and its gate's held-out AUC."""

    scores: dict[tuple[str, str], MonthScore]
    holdout: dict[str, float]
    labelled: dict[str, "pl.DataFrame"]
    fits: Any
    probabilities: dict[tuple[str, str], Any]  # (model, month) -> scores of the month's labelled flights
    scorers: dict[str, Any] = field(default_factory=dict)  # model -> probabilities of a feature frame
    features: dict[str, Any] = field(default_factory=dict)  # scored month -> its `month_features`, in pandas


def score_policies(paths: PlatformPaths, client: "MlflowClient", plan: MonthlyPolicy) -> PolicyScores:
    """Score each model of the monthly policy on the month it would have served and every later month."""
    from platform_assets.ml.metrics import auc_interval
    from platform_assets.ml.parallel import start_fits
    from platform_assets.ml.pyfunc import load_version, predict_loaded
    from platform_assets.ml.training import predict_proba

    spec = plan.model.spec
    months, model_of, registered = plan.months, plan.model_of, plan.registered
    labelled = {m: labelled_rows(paths, m, plan.model) for m in months}
    features = {m: month_features(paths, plan.initial_set, m, plan.model).to_pandas() for m in months}
    load = functools.cache(lambda version: load_version(spec.name, version))  # each version loaded once
    scorers: dict[str, Any] = {
        name: lambda frame, v=name: predict_loaded(load(v), frame) for name in registered
    }
    # The models no run registered train side by side in worker processes while this process
    # scores the registered ones; those the replay pre-trained (make run) come from the fit cache.
    fits = start_fits(plan.to_train, plan.params, spec.columns, cache=paths.fit_cache, overlap=True)
    # Each model scores the month it would have served and every later month (a window repeats:
    # the same model, scored once).
    pairs = list(dict.fromkeys((model_of[start], month) for k, start in enumerate(months) for month in months[k:]))
    scores: dict[tuple[str, str], MonthScore] = {}
    probabilities: dict[tuple[str, str], Any] = {}

    def score(model: str, month: str) -> MonthScore:
        y = labelled[month][spec.label].to_numpy()
        logged = labelled[month]
        if logged["model_version"][0] == model:
            proba = logged[spec.prediction].to_numpy()  # exactly what the drift report decided on
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
        tag = client.get_model_version(spec.name, model).tags.get("holdout_auc") if model in registered else None
        # The gate's held-out month of M(m) is m; the tag keeps 5 decimals.
        holdout[model] = float(tag) if tag else round(scores[(model, month)].auc, 5)
    return PolicyScores(scores, holdout, labelled, fits, probabilities, scorers, features)


def replay_table(instance: dg.DagsterInstance, plan: MonthlyPolicy, scored: PolicyScores) -> "pl.DataFrame":
    """Month by month: drift share, retrained?, the champion's AUC next to frozen and monthly."""
    import polars as pl

    model = plan.model
    months, model_of = plan.months, plan.model_of
    rows = []
    for month in months:
        logged = scored.labelled[month]
        y = logged[model.spec.label].to_numpy()
        report = latest_report(instance, month, model)
        retrained, promoted = retrain_outcome(instance, month, model)
        rows.append(
            {
                "month": month,
                "drift_share": report.get("drift_share"),
                "auc_drop": report.get("auc_drop"),
                "retrained": retrained,
                "promoted": promoted,
                "champion_version": logged["model_version"][0],
                "auc_drift_policy": rank_auc(y, logged[model.spec.prediction].to_numpy()),
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
    chosen: "pl.DataFrame | None" = None


def frontier(
    table: "pl.DataFrame", plan: MonthlyPolicy, scored: PolicyScores, policy: RetrainPolicy,
    signals: "Signals | None" = None,
) -> Frontier:
    """The drift policy replayed over its triggers and thresholds, with the frozen and monthly
    policies' means (without `signals`, the AUC rule's alone)."""
    import numpy as np

    means = {c: float(np.mean(table[c].to_numpy())) for c in ("auc_drift_policy", "auc_frozen", "auc_monthly")}
    # Retraining every month retrains on every month after the first scored one.
    monthly_retrains = len(plan.months) - 1
    grids: dict[str, tuple[Any, ...]] = {AUC_DROP: tuple(sorted({*FRONTIER_THRESHOLDS, policy.auc_drop_threshold}))}
    signal_of: dict[str, Any] = {AUC_DROP: None}
    if signals is not None:
        grids.update(SIGNAL_THRESHOLDS)
        signal_of.update({DRIFT_SHARE: signals.drift_share, IMPORTANT_DRIFT: signals.important_drift})
    outcomes = [
        simulate(
            t, plan.months, plan.model_of, scored.scores, scored.holdout, policy.min_auc_gain, refit,
            trigger, signal_of[trigger],
        )
        for trigger, grid in grids.items()
        for refit in (False, True)
        for t in grid
    ]
    intervals = paired_intervals(
        plan.months,
        {m: scored.labelled[m][plan.model.spec.label].to_numpy() for m in plan.months},
        scored.probabilities,
        {str(i): o.champions for i, o in enumerate(outcomes)},
        {"frozen": [plan.model_of[plan.months[0]]] * len(plan.months), "monthly": [plan.model_of[m] for m in plan.months]},
        resamples=constants.POLICY_INTERVAL_RESAMPLES,
    )
    for i, outcome in enumerate(outcomes):
        outcome.intervals = {base: intervals[(str(i), base)] for base in ("frozen", "monthly")}
    # The replay ran the policy's own design: the default row is that design at its threshold.
    default = next(
        o for o in outcomes if o.trigger == AUC_DROP and o.threshold == policy.auc_drop_threshold and o.refit == policy.refit
    )
    halves = Halves.of(table)
    rows = frontier_table(outcomes, means["auc_frozen"], means["auc_monthly"], monthly_retrains, default, halves)
    matches = (
        default.retrains == int(table["retrained"].sum())
        and abs(default.mean_auc - means["auc_drift_policy"]) < 1e-9
    )
    chosen = chosen_on_first_half(outcomes, halves, means["auc_frozen"], means["auc_monthly"], monthly_retrains)
    return Frontier(outcomes, rows, default, means, monthly_retrains, matches, chosen)
