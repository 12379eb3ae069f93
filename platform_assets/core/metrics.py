"""Metrics of binary classifiers: numpy only (scikit-learn for the reference AUC, imported when used)."""

from __future__ import annotations

import numpy as np


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


def auc_interval(
    y_true: np.ndarray, score: np.ndarray, resamples: int = 200, level: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the AUC: `resamples` draws of the rows with replacement.

    Seeded, so the same rows and scores give the same interval every time: the retraining policy
    decides on its upper end, and the replay's frontier recomputes that decision. About 0.6 s for a
    month (28,000 flights, 200 resamples).
    """
    y, s = np.asarray(y_true) > 0.5, np.asarray(score, dtype=np.float64)
    if len(y) == 0 or y.all() or not y.any():
        return float("nan"), float("nan")
    draws = np.random.default_rng(seed).integers(0, len(y), size=(resamples, len(y)))
    aucs = np.array([rank_auc(y[rows], s[rows]) for rows in draws])
    aucs = aucs[np.isfinite(aucs)]
    tail = (1 - level) / 2
    return float(np.quantile(aucs, tail)), float(np.quantile(aucs, 1 - tail))
