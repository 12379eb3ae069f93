"""The delay model: preprocessing fitted on training rows, a small torch network, and its training loop.

Nothing here knows about Dagster or MLflow, so benchmarks and GPU runs call `fit` directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import torch

from platform_assets.lib.torch_model import (  # noqa: F401  (re-exported: one import site for callers)
    DelayNet,
    EpochCallback,
    Tensors,
    TrainParams,
    _autocast,
    binary_metrics,
    configure_threads,
    predict_logits,
    rank_auc,
    reliability_table,
    resolve_device,
    seed_everything,
    train_tensors,
)

LABEL = "is_delayed"
TIME_COLUMN = "event_timestamp"
# Identifiers, the timestamp and anything known only after departure never become features.
NON_FEATURES = frozenset(
    {
        "flight_id",
        TIME_COLUMN,
        "flight_month",
        "tailnum",
        "route",
        LABEL,
        "arr_delay",
        "dep_delay",
        "dep_time",
        "arr_time",
        "air_time",
    }
)
CATEGORICAL = ("origin", "dest", "carrier", "sched_dep_hour", "sched_dep_dow")
UNKNOWN = 0  # index of unseen and missing categories in every vocabulary


def feature_columns(frame: pl.DataFrame | pd.DataFrame) -> tuple[list[str], list[str]]:
    """Numeric and categorical feature columns a frame offers, in a stable order."""
    if isinstance(frame, pl.DataFrame):
        numeric_cols = [c for c, t in frame.schema.items() if t.is_numeric() or t == pl.Boolean]
    else:
        numeric_cols = [c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c])]
    categorical = [c for c in CATEGORICAL if c in frame.columns]
    numeric = [c for c in numeric_cols if c not in NON_FEATURES and c not in categorical]
    return numeric, categorical


def _numeric_matrix(frame: pd.DataFrame, columns: Sequence[str]) -> np.ndarray:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise KeyError(f"model input lacks numeric feature columns {missing}")
    return (
        np.column_stack(
            [
                pd.to_numeric(frame[c], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
                for c in columns
            ]
        )
        if columns
        else np.zeros((len(frame), 0))
    )


def category_strings(values: pd.Series) -> pd.Series:
    """Categories as text; integers stay integral ('7', not '7.0') whatever nulls did to the dtype."""
    if pd.api.types.is_numeric_dtype(values):
        numbers = pd.to_numeric(values, errors="coerce")
        return numbers.map(lambda v: None if pd.isna(v) else str(int(v)))
    return (
        values.astype(object)
        .where(values.notna(), None)
        .map(lambda v: None if v is None else str(v))
    )


@dataclass
class Preprocessor:
    """Standardisation, imputation and vocabularies learnt from the training rows only."""

    numeric: list[str]
    means: list[float]
    stds: list[float]
    indicators: list[str]
    vocabs: dict[str, list[str]]

    @classmethod
    def fit(
        cls, frame: pd.DataFrame, numeric: Sequence[str], categorical: Sequence[str]
    ) -> Preprocessor:
        matrix = _numeric_matrix(frame, numeric)
        with np.errstate(all="ignore"):
            means = np.nanmean(matrix, axis=0) if len(frame) else np.zeros(len(numeric))
            stds = np.nanstd(matrix, axis=0) if len(frame) else np.ones(len(numeric))
        means = np.where(np.isfinite(means), means, 0.0)
        stds = np.where(np.isfinite(stds) & (stds > 1e-12), stds, 1.0)
        has_nulls = np.isnan(matrix).any(axis=0)
        vocabs = {
            c: sorted(category_strings(frame[c]).dropna().unique().tolist()) for c in categorical
        }
        return cls(
            numeric=list(numeric),
            means=means.tolist(),
            stds=stds.tolist(),
            indicators=[c for c, n in zip(numeric, has_nulls) if n],
            vocabs=vocabs,
        )

    @property
    def n_inputs(self) -> int:
        return len(self.numeric) + len(self.indicators)

    @property
    def cardinalities(self) -> list[int]:
        return [len(v) + 1 for v in self.vocabs.values()]  # + the unknown slot

    def input_columns(self) -> list[str]:
        return [*self.numeric, *self.vocabs]

    def transform(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Standardised numerics with missing indicators (float32) and category indices (int64)."""
        matrix = _numeric_matrix(frame, self.numeric)
        missing = np.isnan(matrix)
        scaled = (matrix - np.asarray(self.means)) / np.asarray(self.stds)
        scaled[missing] = 0.0  # the training mean, after scaling
        index = {c: self.numeric.index(c) for c in self.indicators}
        flags = missing[:, [index[c] for c in self.indicators]].astype(np.float64)
        numeric = np.hstack([scaled, flags]).astype(np.float32)
        codes = []
        for column, vocab in self.vocabs.items():
            if column not in frame.columns:
                raise KeyError(f"model input lacks categorical feature column {column!r}")
            lookup = {v: i + 1 for i, v in enumerate(vocab)}
            codes.append(
                category_strings(frame[column])
                .map(lookup)
                .fillna(UNKNOWN)
                .to_numpy(np.int64)
            )
        categorical = np.column_stack(codes) if codes else np.zeros((len(frame), 0), np.int64)
        return numeric, categorical

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preprocessor:
        return cls(**data)


def model_input(frame: pl.DataFrame | pd.DataFrame, preprocessor: Preprocessor) -> pd.DataFrame:
    """The columns the served model takes, typed as its signature says: floats and strings."""
    pdf = frame.to_pandas() if isinstance(frame, pl.DataFrame) else frame
    out = pd.DataFrame(index=pdf.index)
    for c in preprocessor.numeric:
        out[c] = pd.to_numeric(pdf[c], errors="coerce").astype("float64")
    for c in preprocessor.vocabs:
        out[c] = category_strings(pdf[c])
    return out.reset_index(drop=True)


@dataclass
class FitResult:
    model: DelayNet
    preprocessor: Preprocessor
    params: TrainParams
    device: str
    history: list[dict[str, float]]
    best_epoch: int
    train_rows: int
    validation_rows: int
    validation_start: str
    val_metrics: dict[str, float]
    samples_trained: int
    loop_seconds: int | float
    callback_seconds: float
    epoch_seconds: list[float] = field(default_factory=list)

    @property
    def samples_per_second(self) -> float:
        return self.samples_trained / self.loop_seconds if self.loop_seconds else 0.0

    def architecture(self) -> dict[str, Any]:
        return {
            "n_numeric": self.preprocessor.n_inputs,
            "cardinalities": self.preprocessor.cardinalities,
            "hidden": list(self.params.hidden_sizes),
            "dropout": self.params.dropout,
        }


def split_by_time(
    frame: pl.DataFrame, validation_days: int
) -> tuple[pl.DataFrame, pl.DataFrame, str]:
    """Earlier weeks train, the last `validation_days` validate: no random split across time."""
    if frame.is_empty():
        raise ValueError("training set is empty")
    cutoff = frame.select(pl.col(TIME_COLUMN).max() - pl.duration(days=validation_days)).item()
    train = frame.filter(pl.col(TIME_COLUMN) < cutoff)
    valid = frame.filter(pl.col(TIME_COLUMN) >= cutoff)
    if train.is_empty() or valid.is_empty():
        raise ValueError(
            f"time split at {cutoff} leaves an empty side: {train.height} train, {valid.height} validation rows"
        )
    return train, valid, str(cutoff)


def labelled(frame: pl.DataFrame) -> pl.DataFrame:
    """Rows with a known outcome (cancelled flights have none), in time order."""
    return frame.filter(pl.col(LABEL).is_not_null()).sort(
        [TIME_COLUMN, "flight_id"] if "flight_id" in frame.columns else [TIME_COLUMN]
    )


def to_tensors(frame: pd.DataFrame, preprocessor: Preprocessor) -> Tensors:
    numeric, categorical = preprocessor.transform(frame)
    label = (
        frame[LABEL].to_numpy(np.float32)
        if LABEL in frame.columns
        else np.zeros(len(frame), np.float32)
    )
    return Tensors(
        torch.from_numpy(numeric), torch.from_numpy(categorical), torch.from_numpy(label)
    )


def build_model(preprocessor: Preprocessor, params: TrainParams) -> DelayNet:
    return DelayNet(
        preprocessor.n_inputs, preprocessor.cardinalities, params.hidden_sizes, params.dropout
    )


def prepare(frame: pl.DataFrame, params: TrainParams) -> tuple[Preprocessor, Tensors, Tensors, str]:
    """Split by time, fit preprocessing on the training side only, and tensorise both sides."""
    train, valid, validation_start = split_by_time(labelled(frame), params.validation_days)
    train_pd, valid_pd = train.to_pandas(), valid.to_pandas()
    numeric, categorical = feature_columns(train)
    preprocessor = Preprocessor.fit(train_pd, numeric, categorical)
    return (
        preprocessor,
        to_tensors(train_pd, preprocessor),
        to_tensors(valid_pd, preprocessor),
        validation_start,
    )


def train_loop(
    train: Tensors,
    valid: Tensors,
    preprocessor: Preprocessor,
    params: TrainParams,
    on_epoch_end: EpochCallback | None = None,
) -> FitResult:
    """`train_tensors` on the preprocessor's inputs, with validation metrics of the best epoch."""
    loop = train_tensors(
        train, valid, preprocessor.n_inputs, preprocessor.cardinalities, params, on_epoch_end
    )
    val_proba = torch.sigmoid(predict_logits(loop.model, valid)).numpy()
    return FitResult(
        model=loop.model,
        preprocessor=preprocessor,
        params=params,
        device=loop.device,
        history=loop.history,
        best_epoch=loop.best_epoch,
        train_rows=len(train),
        validation_rows=len(valid),
        validation_start="",
        val_metrics=binary_metrics(valid.label.numpy(), val_proba),
        samples_trained=loop.samples_trained,
        loop_seconds=loop.loop_seconds,
        callback_seconds=loop.callback_seconds,
        epoch_seconds=loop.epoch_seconds,
    )


def fit(
    frame: pl.DataFrame, params: TrainParams, on_epoch_end: EpochCallback | None = None
) -> FitResult:
    """Train the delay model on a point-in-time training set (one row per flight, label is_delayed)."""
    preprocessor, train, valid, validation_start = prepare(frame, params)
    result = train_loop(train, valid, preprocessor, params, on_epoch_end)
    result.validation_start = validation_start
    return result


def predict_proba(model: DelayNet, preprocessor: Preprocessor, frame: pd.DataFrame) -> np.ndarray:
    """Delay probabilities for feature rows, on CPU, with exactly the training-time transform."""
    configure_threads()
    numeric, categorical = preprocessor.transform(frame)
    data = Tensors(
        torch.from_numpy(numeric), torch.from_numpy(categorical), torch.zeros(len(frame))
    )
    return torch.sigmoid(predict_logits(model.cpu(), data)).numpy().astype(np.float64)
