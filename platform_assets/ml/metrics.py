"""Metrics of binary classifiers: numpy only (scikit-learn for the reference AUC, imported when used)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd


def rank_auc(y_true: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC from average ranks (Mann-Whitney); numpy only, so the epoch loop wakes no extra thread pools."""
    y = np.asarray(y_true) > 0.5
    positives, negatives = int(y.sum()), int((~y).sum())
    if positives == 0 or negatives == 0:
        return float("nan")
    _, inverse, counts = np.unique(score, return_inverse=True, return_counts=True)
    average_rank = np.cumsum(counts) - (counts - 1) / 2.0
    ranks = average_rank[inverse]
    return float((ranks[y].sum() - positives * (positives + 1) / 2.0) / (positives * negatives))


def binary_metrics(y_true: np.ndarray, proba: np.ndarray, bins: int = 10) -> dict[str, float]:
    """AUC, log loss, Brier score and expected calibration error of probabilities."""
    y = np.asarray(y_true, dtype=np.float64)
    p = np.clip(np.asarray(proba, dtype=np.float64), 1e-7, 1 - 1e-7)
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    ece = sum(
        abs(y[which == b].mean() - p[which == b].mean()) * (which == b).mean()
        for b in range(bins)
        if (which == b).any()
    )
    from sklearn.metrics import roc_auc_score

    return {
        "auc": float(roc_auc_score(y, p)) if 0 < y.sum() < len(y) else float("nan"),
        "log_loss": float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))),
        "brier": float(np.mean((p - y) ** 2)),
        "ece": float(ece),
        "rows": float(len(y)),
        "positive_rate": float(y.mean()) if len(y) else float("nan"),
    }


def reliability_table(
    y_true: np.ndarray, proba: np.ndarray, bins: int = 10
) -> list[dict[str, float]]:
    y, p = np.asarray(y_true, float), np.asarray(proba, float)
    which = np.clip(np.digitize(p, np.linspace(0, 1, bins + 1)[1:-1]), 0, bins - 1)
    return [
        {
            "bin": f"{b / bins:.1f}-{(b + 1) / bins:.1f}",
            "rows": int((which == b).sum()),
            "mean_predicted": round(float(p[which == b].mean()), 4),
            "observed_rate": round(float(y[which == b].mean()), 4),
        }
        for b in range(bins)
        if (which == b).any()
    ]


def resampled_aucs(y_true: np.ndarray, score: np.ndarray, draws: np.ndarray) -> np.ndarray:
    """The AUC of each resample, a row of `draws` (row indices drawn with replacement). The scores are
    sorted once; a resample is its count of draws per row, and its AUC is Mann-Whitney over those
    counts (ties count a half): the same number as ranking the resample afresh, 4-5x sooner."""
    y, s = np.asarray(y_true) > 0.5, np.asarray(score, dtype=np.float64)
    n = len(y)
    order = np.argsort(s, kind="stable")
    _, starts = np.unique(s[order], return_index=True)  # first row of each run of tied scores
    positive = y[order]
    aucs = np.empty(len(draws))
    for r, rows in enumerate(draws):
        counts = np.bincount(rows, minlength=n)[order]
        pos = np.add.reduceat(np.where(positive, counts, 0), starts)
        neg = np.add.reduceat(np.where(positive, 0, counts), starts)
        pairs = pos.sum() * neg.sum()
        below = np.cumsum(neg) - neg  # negatives scored strictly lower
        aucs[r] = (pos * (below + 0.5 * neg)).sum() / pairs if pairs else np.nan
    return aucs


def auc_interval(
    y_true: np.ndarray, score: np.ndarray, resamples: int = 200, level: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the AUC: `resamples` draws of the rows with replacement.

    Seeded, so the same rows and scores give the same interval every time: the retraining policy
    decides on its upper end, and the replay's frontier recomputes that decision.
    """
    y = np.asarray(y_true) > 0.5
    n = len(y)
    if n == 0 or y.all() or not y.any():
        return float("nan"), float("nan")
    draws = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    aucs = resampled_aucs(y, score, draws)
    aucs = aucs[np.isfinite(aucs)]
    tail = (1 - level) / 2
    return float(np.quantile(aucs, tail)), float(np.quantile(aucs, 1 - tail))


def permutation_importance(
    predict: Callable[[pd.DataFrame], np.ndarray],
    frame: pd.DataFrame,
    y_true: np.ndarray,
    columns: list[str],
    seed: int = 0,
) -> dict[str, float]:
    """Each column's permutation importance: the model's AUC on `frame` minus its AUC with that one
    column's values shuffled across the rows (seeded), so the column carries no information about
    the label. Measured on the model's own predictions, not assumed from its inputs."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    copies = [frame]
    for column in columns:
        shuffled = frame.copy()
        shuffled[column] = frame[column].to_numpy()[rng.permutation(len(frame))]
        copies.append(shuffled)
    # One call scores the frame and every shuffled copy: a model call costs more than its rows.
    scores = np.asarray(predict(pd.concat(copies, ignore_index=True))).reshape(len(copies), len(frame))
    base = rank_auc(y_true, scores[0])
    return {column: base - rank_auc(y_true, scores[i + 1]) for i, column in enumerate(columns)}
