"""The retraining policy replayed over a grid of its threshold: retrains used against mean AUC.

Every model any policy of this family can field is one of the replay's monthly models: M(m), trained
on the `window_months` months before m (M of the first scored month is the first champion). So
the AUC of every model on every later month, with its bootstrap interval, is enough to replay the
policy exactly at any threshold: score the month with the champion, retrain on the report when the
trigger fires, promote the retrained model when it gains at least `min_auc_gain` on the report's
month (the gate), and move on.

Triggers (TRIGGERS): the AUC rule the drift sensor applies (the top of the month's interval lies
`threshold` or more below the champion's held-out AUC), or a signal of the champion and the month
at or above the threshold: the share of features that drifted from the champion's training data,
or the share of the champion's permutation importance held by the features that drifted.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    from matplotlib.figure import Figure


@dataclass(frozen=True)
class MonthScore:
    """One model's AUC on one month: the point estimate and the top of its 95% bootstrap interval."""

    auc: float
    auc_high: float


AUC_DROP, DRIFT_SHARE, IMPORTANT_DRIFT = "auc_drop", "drift_share", "important_drift"
TRIGGERS = {
    AUC_DROP: "AUC drop",
    DRIFT_SHARE: "drift share",
    IMPORTANT_DRIFT: "drifted importance",
}


@dataclass
class PolicyOutcome:
    threshold: float
    refit: bool = False
    trigger: str = AUC_DROP
    retrains: int = 0
    promotions: int = 0
    aucs: list[float] = field(default_factory=list)
    champions: list[str] = field(default_factory=list)
    retrained: list[bool] = field(default_factory=list)  # per month: a retrain on its report
    # Paired bootstrap intervals of its mean AUC minus a baseline's ("frozen", "monthly").
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)

    @property
    def mean_auc(self) -> float:
        return sum(self.aucs) / len(self.aucs) if self.aucs else math.nan


def simulate(
    threshold: float,
    months: Sequence[str],
    model_of: Mapping[str, str],
    scores: Mapping[tuple[str, str], MonthScore],
    holdout: Mapping[str, float],
    min_auc_gain: float,
    refit: bool = False,
    trigger: str = AUC_DROP,
    signal: Mapping[tuple[str, str], float] | None = None,
) -> PolicyOutcome:
    """The policy at one threshold: model_of[m] is M(m); scores[(model, month)]; holdout[model].
    With the AUC_DROP trigger it retrains when the champion's held-out AUC minus the top of the
    month's interval is at least the threshold; with another, when signal[(champion, month)] is.

    A retrain on month m's report trains M(m) (through m-1) and gates it on m. Without `refit` the
    gated candidate is promoted and serves from m+1, a month staler than M(m+1); with `refit` the
    same recipe is refitted through m, M(m+1), and that is promoted (its reference AUC for the next
    decisions is the gate's AUC of the candidate on m)."""
    if (trigger == AUC_DROP) != (signal is None):
        raise ValueError(f"the {trigger} trigger needs {'no signal' if trigger == AUC_DROP else 'its signal'}")
    out = PolicyOutcome(threshold, refit, trigger)
    champion = model_of[months[0]]
    reference = holdout[champion]
    for i, month in enumerate(months):
        score = scores[(champion, month)]
        out.aucs.append(score.auc)
        out.champions.append(champion)
        out.retrained.append(False)
        candidate = model_of[month]
        if candidate == champion:  # the champion already trained on this month's window
            continue
        value = reference - score.auc_high if signal is None else signal[(champion, month)]
        if value >= threshold:
            out.retrains += 1
            out.retrained[-1] = True
            gate_auc = scores[(candidate, month)].auc
            if gate_auc - score.auc >= min_auc_gain:
                out.promotions += 1
                if not refit:
                    champion, reference = candidate, holdout[candidate]
                elif i + 1 < len(months):  # the refit serves from the next month on
                    champion, reference = model_of[months[i + 1]], holdout[candidate]
    return out


def gain_share(mean_auc: float, frozen: float, monthly: float) -> float:
    """Share of retraining-every-month's AUC gain over the frozen model that a policy gets."""
    return (mean_auc - frozen) / (monthly - frozen) if monthly != frozen else math.nan


def plot(
    points: Sequence[PolicyOutcome],
    frozen: float,
    monthly: tuple[int, float],
    default: PolicyOutcome,
) -> Figure:
    from platform_assets.ml.figures import figure

    fig, ax = figure(8, 5)
    colors = dict(zip(TRIGGERS, ("tab:blue", "tab:purple", "tab:brown")))
    for trigger, name in TRIGGERS.items():
        for refit, style, design in ((False, "--", "candidate through m-1"), (True, "-", "refit through m")):
            finite = sorted(
                (p for p in points if math.isfinite(p.threshold) and p.refit == refit and p.trigger == trigger),
                key=lambda p: (p.retrains, p.mean_auc),
            )
            if not finite:
                continue
            ax.plot([p.retrains for p in finite], [p.mean_auc for p in finite], marker="o", linestyle=style,
                    color=colors[trigger], label=f"{name}, {design}")
            for p in finite:
                ax.annotate(f"{p.threshold:g}", (p.retrains, p.mean_auc), textcoords="offset points",
                            xytext=(4, 4), fontsize=6, color=colors[trigger])
    ax.scatter([default.retrains], [default.mean_auc], s=120, facecolors="none", edgecolors="red",
               label=f"default threshold {default.threshold:g} (the replay)", zorder=3)
    ax.scatter([0], [frozen], marker="s", color="grey", label="frozen first model", zorder=3)
    ax.scatter([monthly[0]], [monthly[1]], marker="^", color="tab:green", label="retrain every month", zorder=3)
    ax.set_xlabel("retrains over the replay")
    ax.set_ylabel("mean AUC of the months scored")
    ax.set_title("Retraining policy frontier (labels: each trigger's threshold)")
    ax.legend(fontsize=7)
    return fig


def paired_intervals(
    months: Sequence[str],
    labels: Mapping[str, "np.ndarray"],
    scores: Mapping[tuple[str, str], "np.ndarray"],
    policies: Mapping[str, Sequence[str]],
    baselines: Mapping[str, Sequence[str]],
    resamples: int = 100,
    level: float = 0.95,
    seed: int = 0,
) -> dict[tuple[str, str], tuple[float, float]]:
    """Paired percentile-bootstrap intervals of (policy's mean AUC minus a baseline's), per policy and
    baseline: each resample draws the flights of every month once (with replacement) and scores
    every policy and baseline on the same draw, so the month-to-month noise they share cancels.

    policies and baselines map a name to the model that scored each month (in `months`' order);
    scores[(model, month)] are its probabilities for the month's labelled flights, labels[month].
    """
    import numpy as np

    from platform_assets.ml.metrics import resampled_aucs

    rng = np.random.default_rng(seed)
    everyone = {**policies, **baselines}
    needed = {(model, month) for served in everyone.values() for model, month in zip(served, months)}
    auc: dict[tuple[str, str], np.ndarray] = {}
    for month in months:
        y = labels[month]
        draws = rng.integers(0, len(y), size=(resamples, len(y)))  # the month's draws, shared by all
        for model in sorted({m for m, mo in needed if mo == month}):
            auc[(model, month)] = resampled_aucs(y, scores[(model, month)], draws)
    means = {
        name: sum(auc[(m, mo)] for m, mo in zip(served, months)) / len(months) for name, served in everyone.items()
    }
    tail = (1 - level) / 2
    out = {}
    for name in policies:
        for base in baselines:
            diff = np.asarray(means[name]) - np.asarray(means[base])
            out[(name, base)] = (float(np.quantile(diff, tail)), float(np.quantile(diff, 1 - tail)))
    return out
