"""The retraining policy replayed over a grid of its threshold: retrains used against mean AUC.

Every model any policy of this family can field is one of the replay's monthly models: M(m), trained
on the `window_months` months before m (M of the first scored month is the first champion). So
the AUC of every model on every later month, with its bootstrap interval, is enough to replay the
policy exactly at any threshold: score the month with the champion, retrain on the report when the
top of the month's interval lies `threshold` or more below the champion's held-out AUC, promote the
retrained model when it gains at least `min_auc_gain` on the report's month (the gate), and move on.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.figure import Figure


@dataclass(frozen=True)
class MonthScore:
    """One model's AUC on one month: the point estimate and the top of its 95% bootstrap interval."""

    auc: float
    auc_high: float


@dataclass
class PolicyOutcome:
    threshold: float
    retrains: int = 0
    promotions: int = 0
    aucs: list[float] = field(default_factory=list)
    champions: list[str] = field(default_factory=list)

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
) -> PolicyOutcome:
    """The policy at one threshold: model_of[m] is M(m); scores[(model, month)]; holdout[model]."""
    out = PolicyOutcome(threshold)
    champion = model_of[months[0]]
    for month in months:
        score = scores[(champion, month)]
        out.aucs.append(score.auc)
        out.champions.append(champion)
        candidate = model_of[month]
        if candidate == champion:  # the champion already trained on this month's window
            continue
        if holdout[champion] - score.auc_high >= threshold:
            out.retrains += 1
            if scores[(candidate, month)].auc - score.auc >= min_auc_gain:
                champion = candidate
                out.promotions += 1
    return out


def gain_share(mean_auc: float, frozen: float, monthly: float) -> float:
    """Share of retraining-every-month's AUC gain over the frozen model that a policy gets."""
    return (mean_auc - frozen) / (monthly - frozen) if monthly != frozen else math.nan


def plot(
    points: Sequence[PolicyOutcome],
    frozen: float,
    monthly: tuple[int, float],
    default: float,
) -> Figure:
    from platform_assets.ml.figures import figure

    fig, ax = figure(7, 4)
    finite = sorted((p for p in points if math.isfinite(p.threshold)), key=lambda p: (p.retrains, p.mean_auc))
    ax.plot([p.retrains for p in finite], [p.mean_auc for p in finite], marker="o", color="tab:blue",
            label="AUC-drop policy at each threshold")
    for p in finite:
        ax.annotate(f"{p.threshold:g}", (p.retrains, p.mean_auc), textcoords="offset points", xytext=(4, 4), fontsize=7)
    chosen = [p for p in points if p.threshold == default]
    if chosen:
        ax.scatter([chosen[0].retrains], [chosen[0].mean_auc], s=120, facecolors="none", edgecolors="red",
                   label=f"default threshold {default:g}", zorder=3)
    ax.scatter([0], [frozen], marker="s", color="grey", label="frozen first model", zorder=3)
    ax.scatter([monthly[0]], [monthly[1]], marker="^", color="tab:green", label="retrain every month", zorder=3)
    ax.set_xlabel("retrains over the replay")
    ax.set_ylabel("mean AUC of the months scored")
    ax.set_title("Retraining policy frontier (labels: AUC-drop threshold)")
    ax.legend(fontsize=7)
    return fig
