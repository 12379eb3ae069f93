"""Scores of the candidate, the champion and two baselines on months the candidate never saw."""

from dataclasses import dataclass, field

import mlflow
import numpy as np
import pandas as pd
import polars as pl
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from sklearn.ensemble import HistGradientBoostingClassifier

from platform_assets.lib import constants
from platform_assets.lib.mlflow_utils import CHAMPION, alias_version, load_version
from platform_assets.lib.model import (
    LABEL,
    binary_metrics,
    category_strings,
    feature_columns,
    labelled,
    reliability_table,
    split_by_time,
)
from platform_assets.lib.model_features import flight_events, point_in_time_features
from platform_assets.lib.partitions import monthly_partitions
from platform_assets.lib.paths import PlatformPaths


def holdout_months(training_end_month: str, count: int) -> list[str]:
    """The `count` months right after the training window."""
    keys = monthly_partitions.get_partition_keys()
    if training_end_month not in keys:
        raise ValueError(
            f"training window ends at {training_end_month!r}, not a month of {keys[0]}..{keys[-1]}"
        )
    start = keys.index(training_end_month) + 1
    months = keys[start : start + count]
    if len(months) < count or count < 1:
        raise ValueError(f"no {count} month(s) after {training_end_month} to hold out")
    return months


def signature_input(model: mlflow.pyfunc.PyFuncModel, frame: pd.DataFrame) -> pd.DataFrame:
    """The columns a logged version's signature names, typed as it says: floats or category strings."""
    out = {}
    for spec in model.metadata.get_input_schema().inputs:
        column = frame[spec.name]
        out[spec.name] = (
            category_strings(column)
            if spec.type.name == "string"
            else pd.to_numeric(column, errors="coerce").astype("float64")
        )
    return pd.DataFrame(out)


def predict_version(name: str, version: str, frame: pd.DataFrame) -> np.ndarray:
    model = load_version(name, version)
    return np.asarray(model.predict(signature_input(model, frame)), dtype=np.float64)


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


def hgb_baseline(training_set: pl.DataFrame, validation_days: int, seed: int) -> HgbBaseline:
    """HistGradientBoosting on the candidate's own train rows, early-stopped on its validation rows."""
    train, valid, _ = split_by_time(labelled(training_set), validation_days)
    numeric, categorical = feature_columns(train)
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
    model.fit(
        _hgb_matrix(train_pd, numeric, categorical, vocab),
        train_pd[LABEL].to_numpy(),
        X_val=_hgb_matrix(valid_pd, numeric, categorical, vocab),
        y_val=valid_pd[LABEL].to_numpy(),
    )
    return HgbBaseline(model, numeric, categorical, vocab)


@dataclass
class EvaluationReport:
    months: list[str]
    rows: int
    champion_version: str | None
    metrics: dict[str, dict[str, float]]
    reliability: dict[str, list[dict[str, float]]] = field(default_factory=dict)

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
    paths: PlatformPaths,
    client: MlflowClient,
    candidate: ModelVersion,
    store: object,
    months: list[str],
    feature_service: str,
) -> EvaluationReport:
    events = flight_events(paths, months).filter(pl.col(LABEL).is_not_null())
    if events.is_empty():
        raise ValueError(f"no labelled flights in the hold-out months {months}")
    holdout = point_in_time_features(store, events, feature_service)
    y = holdout[LABEL].to_numpy(np.float64)
    scores = {"candidate": predict_version(constants.MODEL_NAME, candidate.version, holdout)}

    champion = alias_version(client, CHAMPION)
    champion_version = None
    if champion is not None and str(champion.version) != str(candidate.version):
        champion_version = str(champion.version)
        scores["champion"] = predict_version(constants.MODEL_NAME, champion_version, holdout)

    run = client.get_run(candidate.run_id)
    training_set = pl.read_parquet(candidate.tags["training_data_path"])
    hgb = hgb_baseline(
        training_set, int(run.data.params["validation_days"]), int(run.data.params["seed"])
    )
    scores["hgb_baseline"] = hgb.predict_proba(holdout)
    base_rate = float(labelled(training_set)[LABEL].mean())
    scores["base_rate"] = np.full(len(y), base_rate)

    return EvaluationReport(
        months=months,
        rows=len(y),
        champion_version=champion_version,
        metrics={name: binary_metrics(y, p) for name, p in scores.items()},
        reliability={
            name: reliability_table(y, p) for name, p in scores.items() if name != "base_rate"
        },
    )
