"""Scores of a candidate, its champion and two baselines on months the candidate never saw."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import polars as pl

from platform_assets.ml.metrics import binary_metrics, rank_auc, reliability_table
from platform_assets.ml.preprocessing import Columns, category_strings, labelled, split_by_time
from platform_assets.ml.pyfunc import predict_version
from platform_assets.ml.registry import CHAMPION, alias_version
from platform_assets.ml.spec import ModelSpec

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion
    from sklearn.ensemble import HistGradientBoostingClassifier


def _hgb_matrix(
    frame: pd.DataFrame, numeric: list[str], categorical: list[str], vocab: dict[str, list[str]]
) -> pd.DataFrame:
    out = {c: pd.to_numeric(frame[c], errors="coerce").astype("float64") for c in numeric}
    for c in categorical:
        out[c] = pd.Categorical(category_strings(frame[c]), categories=vocab[c])
    return pd.DataFrame(out)


@dataclass
class HgbBaseline:
    model: HistGradientBoostingClassifier
    numeric: list[str]
    categorical: list[str]
    vocab: dict[str, list[str]]

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        matrix = _hgb_matrix(frame, self.numeric, self.categorical, self.vocab)
        return self.model.predict_proba(matrix)[:, 1]


def hgb_baseline(
    training_set: pl.DataFrame, columns: Columns, validation_days: int, seed: int
) -> HgbBaseline:
    """HistGradientBoosting on the candidate's own train rows, early-stopped on its validation rows."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from threadpoolctl import threadpool_limits

    label = columns.label
    train, valid, _ = split_by_time(labelled(training_set, label), validation_days)
    numeric, categorical = columns.features(train)
    train_pd, valid_pd = train.to_pandas(), valid.to_pandas()
    vocab = {
        c: sorted(category_strings(train_pd[c]).dropna().unique().tolist()) for c in categorical
    }
    model = HistGradientBoostingClassifier(
        max_iter=500,
        learning_rate=0.1,
        early_stopping=True,
        n_iter_no_change=20,
        categorical_features="from_dtype",
        random_state=seed,
    )
    # One OpenMP thread: the same trees (histograms are summed per feature, whatever the thread
    # count), and on cores the other lanes of `make run` keep busy a second thread mostly spins:
    # 1.5 s of CPU against 1.8-2.4 s with two threads, in about the same wall time (Jan-Apr 2013).
    with threadpool_limits(limits=1, user_api="openmp"):
        model.fit(
            _hgb_matrix(train_pd, numeric, categorical, vocab),
            train_pd[label].to_numpy(),
            X_val=_hgb_matrix(valid_pd, numeric, categorical, vocab),
            y_val=valid_pd[label].to_numpy(),
        )
    return HgbBaseline(model, numeric, categorical, vocab)


@dataclass
class EvaluationReport:
    months: list[str]
    rows: int
    champion_version: str | None
    metrics: dict[str, dict[str, float]]
    reliability: dict[str, list[dict[str, float]]] = field(default_factory=dict)
    slices: list[dict[str, Any]] = field(default_factory=list)

    def flat_metrics(self) -> dict[str, float]:
        return {
            f"{model}_{name}": value
            for model, values in self.metrics.items()
            for name, value in values.items()
            if name not in ("rows", "positive_rate")
        }

    def markdown(self) -> str:
        names = ["auc", "log_loss", "brier", "ece"]
        lines = ["| model | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
        for model, values in self.metrics.items():
            lines.append(f"| {model} | " + " | ".join(f"{values[n]:.4f}" for n in names) + " |")
        return "\n".join(lines)


def evaluate_candidate(
    spec: ModelSpec,
    client: MlflowClient,
    candidate: ModelVersion,
    holdout: pd.DataFrame,
    months: list[str],
) -> EvaluationReport:
    """Candidate, champion, HGB baseline and base rate on the hold-out months' labelled flights
    (their point-in-time features, as the feature service serves them)."""
    label = spec.label
    y = holdout[label].to_numpy(np.float64)
    scores = {"candidate": predict_version(spec.name, candidate.version, holdout)}

    champion = alias_version(client, CHAMPION, spec.name)
    champion_version = None
    if champion is not None and str(champion.version) != str(candidate.version):
        champion_version = str(champion.version)
        scores["champion"] = predict_version(spec.name, champion_version, holdout)

    run = client.get_run(candidate.run_id)
    training_set = pl.read_parquet(candidate.tags["training_data_path"])
    hgb = hgb_baseline(
        training_set,
        spec.columns,
        int(run.data.params["validation_days"]),
        int(run.data.params["seed"]),
    )
    scores["hgb_baseline"] = hgb.predict_proba(holdout)
    base_rate = float(labelled(training_set, label)[label].mean())
    scores["base_rate"] = np.full(len(y), base_rate)

    return EvaluationReport(
        months=months,
        rows=len(y),
        champion_version=champion_version,
        metrics={name: binary_metrics(y, p) for name, p in scores.items()},
        reliability={
            name: reliability_table(y, p) for name, p in scores.items() if name != "base_rate"
        },
        slices=slice_metrics(holdout, y, scores),
    )


# Slices of the held-out flights the model card reports, and when a slice's AUC is flagged.
HOUR_BANDS = ((0, 5, "00-04"), (5, 10, "05-09"), (10, 15, "10-14"), (15, 20, "15-19"), (20, 24, "20-23"))
SLICE_MIN_ROWS = 200
SLICE_AUC_GAP = 0.05


def hour_band(hour: float) -> str:
    return next((name for low, high, name in HOUR_BANDS if low <= hour < high), "unknown")


def slice_metrics(holdout: pd.DataFrame, y: np.ndarray, scores: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """Candidate AUC (and HGB's beside it) per origin, carrier, month and departure-hour band.

    A slice with at least SLICE_MIN_ROWS flights whose AUC is SLICE_AUC_GAP or more below the
    candidate's overall AUC is flagged.
    """
    overall = rank_auc(y, scores["candidate"])
    keys = {
        "origin": holdout["origin"].astype(str).to_numpy() if "origin" in holdout else None,
        "carrier": holdout["carrier"].astype(str).to_numpy() if "carrier" in holdout else None,
        "month": holdout["flight_month"].astype(str).to_numpy() if "flight_month" in holdout else None,
        "hour band": (
            np.array([hour_band(h) for h in pd.to_numeric(holdout["sched_dep_hour"], errors="coerce").fillna(-1)])
            if "sched_dep_hour" in holdout
            else None
        ),
    }
    rows = []
    for dimension, values in keys.items():
        if values is None:
            continue
        for value in sorted(set(values)):
            mask = values == value
            auc = rank_auc(y[mask], scores["candidate"][mask])
            hgb = rank_auc(y[mask], scores["hgb_baseline"][mask]) if "hgb_baseline" in scores else float("nan")
            rows.append(
                {
                    "slice": dimension,
                    "value": value,
                    "rows": int(mask.sum()),
                    "positive_rate": round(float(y[mask].mean()), 4),
                    "auc": round(auc, 4),
                    "hgb_auc": round(hgb, 4),
                    "flagged": bool(mask.sum() >= SLICE_MIN_ROWS and np.isfinite(auc) and auc <= overall - SLICE_AUC_GAP),
                }
            )
    return rows
