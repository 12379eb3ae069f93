"""Preprocessing fitted on training rows only, stored with the model so serving applies the same.

numpy, pandas, polars and scipy only: no torch, so scoring paths that only transform load fast.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
from scipy.special import ndtri

from platform_assets.ml.params import NUMERIC_BINS, QUANTILE_KNOTS

TIME_COLUMN = "event_timestamp"
UNKNOWN = 0  # index of unseen and missing categories in every vocabulary


def feature_columns(
    frame: pl.DataFrame | pd.DataFrame, categorical: Sequence[str], exclude: Iterable[str]
) -> tuple[list[str], list[str]]:
    """Numeric and categorical feature columns a frame offers, in a stable order.

    `exclude` names identifiers, the timestamp, labels and anything known only after the
    prediction time: they never become features.
    """
    excluded = frozenset(exclude) | {TIME_COLUMN}
    if isinstance(frame, pl.DataFrame):
        numeric_cols = [c for c, t in frame.schema.items() if t.is_numeric() or t == pl.Boolean]
    else:
        numeric_cols = [c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c])]
    present = [c for c in categorical if c in frame.columns]
    numeric = [c for c in numeric_cols if c not in excluded and c not in present]
    return numeric, present


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
    """Categories as text; integers stay integral ('7', not '7.0') whatever nulls did to the dtype.

    Missing values are None. Vectorised: a per-value Python function cost most of a transform.
    """
    out = np.full(len(values), None, dtype=object)
    if pd.api.types.is_numeric_dtype(values):
        numbers = pd.to_numeric(values, errors="coerce")
        present = numbers.notna().to_numpy()
        kept = numbers.to_numpy()[present]
        if kept.dtype.kind == "f":
            kept = np.trunc(kept)  # as int() truncates
        out[present] = kept.astype(np.int64).astype(str)
    else:
        present = values.notna().to_numpy()
        out[present] = values.to_numpy(dtype=object)[present].astype(str)
    return pd.Series(out, index=values.index, dtype=object)


def category_codes(values: pd.Series, vocab: Sequence[str]) -> np.ndarray:
    """Each value's index in the vocabulary plus one; unseen and missing values get UNKNOWN (0)."""
    index = pd.Index(vocab, dtype=object).get_indexer(category_strings(values))
    return np.where(index < 0, UNKNOWN, index + 1).astype(np.int64)


# Rank-to-normal output is clipped here (about +-3.1 sd): values beyond the training range map to
# the training extremes, so the network never extrapolates a trend past what it saw.
_RANK_CLIP = 1e-3


def rank_normal(
    matrix: np.ndarray, knots: Sequence[Any], levels: Sequence[Any]
) -> tuple[np.ndarray, np.ndarray]:
    """Each column through its training rank (knots -> levels) and the normal quantile; missing
    values at 0.0, the training median. Returns (ranked, missing)."""
    missing = np.isnan(matrix)
    ranked = np.zeros_like(matrix)
    for j, (column_knots, column_levels) in enumerate(zip(knots, levels)):
        if len(column_knots) > 1:
            rank = np.interp(matrix[:, j], column_knots, column_levels)
            ranked[:, j] = ndtri(np.clip(rank, _RANK_CLIP, 1 - _RANK_CLIP))
    ranked[missing] = 0.0
    return ranked, missing


def _quantiles(column: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Quantiles of the column's present values; empty when every value is missing."""
    values = column[~np.isnan(column)]
    return np.quantile(values, levels) if values.size else np.zeros(0)


def _rank_knots(column: np.ndarray, knots: int) -> tuple[list[float], list[float]]:
    """Distinct training quantiles and their mid-rank levels (tied quantiles share one level)."""
    levels = np.linspace(0.0, 1.0, knots)
    quantiles = _quantiles(column, levels)
    if quantiles.size == 0:
        return [], []
    distinct, which = np.unique(quantiles, return_inverse=True)
    mid = np.bincount(which, weights=levels) / np.bincount(which)
    return distinct.tolist(), mid.tolist()


def _bin_edges(column: np.ndarray, bins: int) -> list[float]:
    """Distinct inner edges of `bins` equal-count bins."""
    return np.unique(_quantiles(column, np.linspace(0.0, 1.0, bins + 1)[1:-1])).tolist()


@dataclass
class Preprocessor:
    """Numeric and categorical encodings learnt from the training rows only.

    Each numeric feature enters the network twice: standardised by rank (its training quantiles
    mapped to a standard normal, as scikit-learn's QuantileTransformer does) and as the index of its
    quantile bin, embedded like a category. Ranks make heavy tails (precipitation, mean delays)
    harmless and clip out-of-range values to the training extremes; bins let one narrow layer learn
    step-shaped effects the way tree splits do. Missing numerics become the median (0) plus a flag
    and bin 0; unseen or missing categories become index 0.
    """

    numeric: list[str]
    knots: list[list[float]]
    levels: list[list[float]]
    bin_edges: list[list[float]]
    indicators: list[str]
    vocabs: dict[str, list[str]]

    @classmethod
    def fit(
        cls,
        frame: pd.DataFrame,
        numeric: Sequence[str],
        categorical: Sequence[str],
        knots: int = QUANTILE_KNOTS,
        bins: int = NUMERIC_BINS,
    ) -> Preprocessor:
        matrix = _numeric_matrix(frame, numeric)
        ranks = [_rank_knots(matrix[:, j], knots) for j in range(len(numeric))]
        has_nulls = np.isnan(matrix).any(axis=0)
        vocabs = {
            c: sorted(category_strings(frame[c]).dropna().unique().tolist()) for c in categorical
        }
        return cls(
            numeric=list(numeric),
            knots=[k for k, _ in ranks],
            levels=[lv for _, lv in ranks],
            bin_edges=[_bin_edges(matrix[:, j], bins) for j in range(len(numeric))],
            indicators=[c for c, n in zip(numeric, has_nulls) if n],
            vocabs=vocabs,
        )

    @property
    def n_inputs(self) -> int:
        return len(self.numeric) + len(self.indicators)

    @property
    def cardinalities(self) -> list[int]:
        """Embedding sizes: each vocabulary, then each numeric's bins, with slot 0 for unknown/missing."""
        return [len(v) + 1 for v in self.vocabs.values()] + [len(e) + 2 for e in self.bin_edges]

    def input_columns(self) -> list[str]:
        return [*self.numeric, *self.vocabs]

    def transform(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Rank-normal numerics with missing flags (float32); category then bin indices (int64)."""
        matrix = _numeric_matrix(frame, self.numeric)
        ranked, missing = rank_normal(matrix, self.knots, self.levels)
        index = {c: self.numeric.index(c) for c in self.indicators}
        flags = missing[:, [index[c] for c in self.indicators]].astype(np.float64)
        numeric = np.hstack([ranked, flags]).astype(np.float32)
        codes = []
        for column, vocab in self.vocabs.items():
            if column not in frame.columns:
                raise KeyError(f"model input lacks categorical feature column {column!r}")
            codes.append(category_codes(frame[column], vocab))
        for j, edges in enumerate(self.bin_edges):
            bin_index = np.searchsorted(np.asarray(edges), matrix[:, j], side="right") + 1
            codes.append(np.where(missing[:, j], UNKNOWN, bin_index).astype(np.int64))
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


def labelled(frame: pl.DataFrame, label: str) -> pl.DataFrame:
    """Rows with a known outcome, in time order."""
    return frame.filter(pl.col(label).is_not_null()).sort(
        [TIME_COLUMN, "flight_id"] if "flight_id" in frame.columns else [TIME_COLUMN]
    )


@dataclass(frozen=True)
class Columns:
    """What a model reads from a training-set frame: its label, its categories, what is never a feature."""

    label: str
    categorical: tuple[str, ...]
    exclude: frozenset[str]

    def features(self, frame: pl.DataFrame | pd.DataFrame) -> tuple[list[str], list[str]]:
        return feature_columns(frame, self.categorical, self.exclude | {self.label})
