"""Evidently drift reports: a month's features and predictions against the champion's training data."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class DriftSummary:
    drift_share: float
    drifted_columns: list[str]
    column_scores: dict[str, float]
    prediction_drift_score: float
    prediction_drifted: bool
    auc: float | None
    rows_current: int
    rows_reference: int

    def as_dict(self) -> dict:
        return asdict(self)


def deterministic_sample(frame: pd.DataFrame, n: int, key: str = "flight_id") -> pd.DataFrame:
    """At most n rows chosen by a hash of the key: the same rows every time, whatever the row order."""
    if len(frame) <= n:
        return frame.reset_index(drop=True)
    digest = frame[key].astype(str).map(lambda k: hashlib.blake2b(k.encode(), digest_size=8).hexdigest())
    return frame.assign(__h=digest).sort_values("__h").head(n).drop(columns="__h").reset_index(drop=True)


def run_drift_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    numerical: list[str],
    categorical: list[str],
    html_path: Path,
    json_path: Path,
    target: str,
    prediction: str,
) -> DriftSummary:
    """Data drift per feature, prediction drift and (labelled rows) classification quality; saves HTML + JSON."""
    from evidently import BinaryClassification, DataDefinition, Dataset, Report
    from evidently.metrics import RocAuc, ValueDrift
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(
        numerical_columns=[*numerical, prediction],
        categorical_columns=categorical,
        classification=[BinaryClassification(target=target, prediction_probas=prediction)],
    )
    columns = [*numerical, *categorical, target, prediction]
    prepared = [_prepare(frame[columns], categorical, target) for frame in (current, reference)]
    report = Report(
        [DataDriftPreset(columns=[*numerical, *categorical]), ValueDrift(column=prediction), RocAuc()],
        include_tests=True,
    )
    snapshot = report.run(
        Dataset.from_pandas(prepared[0], data_definition=definition),
        Dataset.from_pandas(prepared[1], data_definition=definition),
    )
    html_path.parent.mkdir(parents=True, exist_ok=True)
    snapshot.save_html(str(html_path))
    document = json.loads(snapshot.json())
    json_path.write_text(json.dumps(document, indent=1))
    return summarize(
        document, features=[*numerical, *categorical], rows=(len(current), len(reference)), prediction=prediction
    )


def _prepare(frame: pd.DataFrame, categorical: list[str], target: str) -> pd.DataFrame:
    out = frame.copy()
    for column in categorical:
        out[column] = out[column].astype("string").fillna("<missing>")
    out[target] = out[target].astype(int)
    return out


def summarize(document: dict, features: list[str], rows: tuple[int, int], prediction: str) -> DriftSummary:
    scores: dict[str, float] = {}
    drifted: set[str] = set()
    share = auc = None
    for metric in document["metrics"]:
        kind = metric["config"]["type"].rsplit(":", 1)[-1]
        if kind == "DriftedColumnsCount":
            share = float(metric["value"]["share"])
        elif kind == "ValueDrift":
            scores[metric["config"]["column"]] = float(metric["value"])
        elif kind == "RocAuc":
            auc = float(metric["value"])
    for test in document.get("tests", []):
        params = test["metric_config"]["params"]
        if params["type"].endswith(":ValueDrift") and test["status"] == "FAIL":
            drifted.add(params["column"])
    if share is None:
        raise ValueError("Evidently report holds no DriftedColumnsCount metric")
    return DriftSummary(
        drift_share=share,
        drifted_columns=sorted(drifted & set(features)),
        column_scores={c: round(scores[c], 6) for c in features if c in scores},
        prediction_drift_score=scores.get(prediction, float("nan")),
        prediction_drifted=prediction in drifted,
        auc=auc,
        rows_current=rows[0],
        rows_reference=rows[1],
    )
