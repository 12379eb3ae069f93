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
    return sample_of_hashed(with_sample_hash(frame, key), n)


def with_sample_hash(frame: pd.DataFrame, key: str = "flight_id") -> pd.DataFrame:
    """The frame with the hash `deterministic_sample` orders rows by (hash a month once, then sample
    any window of months with `sample_of_hashed` over their concatenation)."""
    digest = frame[key].astype(str).map(lambda k: hashlib.blake2b(k.encode(), digest_size=8).hexdigest())
    return frame.assign(__h=digest)


def sample_of_hashed(hashed: pd.DataFrame, n: int) -> pd.DataFrame:
    """`deterministic_sample`'s rows of a frame that carries `with_sample_hash`'s column."""
    if len(hashed) <= n:
        return hashed.drop(columns="__h").reset_index(drop=True)
    return hashed.sort_values("__h").head(n).drop(columns="__h").reset_index(drop=True)


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


def column_drift(
    reference: pd.DataFrame, current: pd.DataFrame, numerical: list[str], categorical: list[str]
) -> dict[str, tuple[float, bool]]:
    """Each feature's drift score and verdict by the test Evidently's DataDriftPreset picks for it
    (its default per column: the normed Wasserstein distance for a numeric column with more than 5
    values, Jensen-Shannon for the rest when the reference has over 1,000 rows; KS, chi-squared or z
    below that), on the same prepared columns as `run_drift_report`, without building a report:
    milliseconds a column, so the replay summary can ask it of every model and month."""
    import numpy as np
    from evidently.legacy.calculations.stattests.registry import get_stattest
    from evidently.legacy.core import ColumnType

    out: dict[str, tuple[float, bool]] = {}
    for column, kind in [*((c, ColumnType.Numerical) for c in numerical), *((c, ColumnType.Categorical) for c in categorical)]:
        pair = [frame[column] for frame in (reference, current)]
        if kind == ColumnType.Categorical:
            pair = [values.astype("string").fillna("<missing>") for values in pair]
        else:  # Evidently tests a numeric column on its finite values
            pair = [values.astype(float).replace([np.inf, -np.inf], np.nan).dropna() for values in pair]
        test = get_stattest(pair[0], pair[1], kind, None)
        result = test(pair[0], pair[1], kind, None)
        out[column] = (float(result.drift_score), bool(result.drifted))
    return out


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
