"""The frontier's other triggers: for every (policy model, later month) a policy could meet, the
share of the model's features that drifted from its training data, and the share of its
permutation importance those drifted features carry."""

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING

from platform_assets import constants
from platform_assets.lib.retrain_replay import MonthlyPolicy, PolicyScores, month_features
from platform_assets.paths import PlatformPaths

if TYPE_CHECKING:
    import pandas as pd


@dataclass
class Signals:
    """The other triggers' signals for every (model, later month) a policy could meet: the share of
    the model's features that drifted from its training data on the month, and the share of its
    permutation importance those drifted features carry."""

    drift_share: dict[tuple[str, str], float]
    important_drift: dict[tuple[str, str], float]
    importance: dict[str, dict[str, float]]  # model -> feature -> AUC lost when it is shuffled
    measured_on: dict[str, str]  # model -> the month its importance was measured on


def trigger_signals(paths: PlatformPaths, plan: MonthlyPolicy, scored: PolicyScores) -> Signals:
    """Drift as the model's drift report measures it (Evidently's per-column tests on the same
    deterministic samples of the training window and the month) for every pair a policy could
    meet; each model's importance measured on the first month it would serve (the gate's month of a
    retrain), whose labels are known when any later report is read."""
    import pandas as pd

    from platform_assets.ml.drift import column_drift, sample_of_hashed, with_sample_hash
    from platform_assets.ml.metrics import permutation_importance

    model, months, n = plan.model, plan.months, constants.DRIFT_SAMPLE_ROWS
    numeric, categorical = model.spec.columns.features(plan.initial_set)
    def frame(month: str) -> "pd.DataFrame":  # the scored months' frames are score_policies' own
        if month in scored.features:
            return scored.features[month]
        return month_features(paths, plan.initial_set, month, model).to_pandas()

    hashed = functools.cache(lambda m: with_sample_hash(frame(m)))

    def sample(window: list[str]) -> "pd.DataFrame":  # the drift report's sample of these months
        return sample_of_hashed(pd.concat([hashed(m) for m in window], ignore_index=True), n)

    current = {m: sample([m]) for m in months}
    first_served: dict[str, str] = {}
    for month in months:
        first_served.setdefault(plan.model_of[month], month)
    out = Signals({}, {}, {}, first_served)
    for name, start in first_served.items():
        reference = sample(plan.window_of[name].months)
        served = current[start].head(constants.IMPORTANCE_SAMPLE_ROWS)  # already in hash order
        importance = permutation_importance(
            scored.scorers[name], served, served[model.spec.label].to_numpy(), [*numeric, *categorical]
        )
        out.importance[name] = importance
        weight = {c: max(v, 0.0) for c, v in importance.items()}  # a feature that helps nothing weighs nothing
        total = sum(weight.values())
        for month in months[months.index(start):]:
            drifted = [c for c, (_, hit) in column_drift(reference, current[month], numeric, categorical).items() if hit]
            out.drift_share[(name, month)] = len(drifted) / (len(numeric) + len(categorical))
            out.important_drift[(name, month)] = sum(weight[c] for c in drifted) / total if total > 0 else 0.0
    return out
