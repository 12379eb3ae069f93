"""Scoring a few rows without pandas: the stored preprocessing and the stacked ensemble on arrays.

`core.tabular`'s transform works column by column on a DataFrame, which costs milliseconds per
request before any arithmetic. `RecordTransform` applies the same stored parameters (rank knots,
bin edges, missing flags, vocabularies) with the same numpy calls to plain lists, so its arrays
are bit-for-bit those of `Preprocessor.transform` (tested), and `score` runs the model exactly as
`core.tabular.training.predict_proba` does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from platform_assets.ml.preprocessing import UNKNOWN, Preprocessor, rank_normal


def _category(value: Any) -> str | None:
    # As core.tabular.preprocessing.category_strings: integers stay integral ('7', not '7.0').
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool):
        return str(int(value))
    return str(value)


class RecordTransform:
    def __init__(self, preprocessor: Preprocessor) -> None:
        self.pre = preprocessor
        self.knots = [np.asarray(k, dtype=np.float64) for k in preprocessor.knots]
        self.levels = [np.asarray(lv, dtype=np.float64) for lv in preprocessor.levels]
        self.edges = [np.asarray(e, dtype=np.float64) for e in preprocessor.bin_edges]
        self.lookups = {
            c: {v: i + 1 for i, v in enumerate(vocab)} for c, vocab in preprocessor.vocabs.items()
        }
        self.flag_index = [preprocessor.numeric.index(c) for c in preprocessor.indicators]

    def transform(self, columns: Mapping[str, Sequence[Any]], rows: int) -> tuple[np.ndarray, np.ndarray]:
        lacking = [c for c in [*self.pre.numeric, *self.pre.vocabs] if c not in columns]
        if lacking:
            raise KeyError(f"model input lacks feature columns {lacking}")
        matrix = np.array(
            [[np.nan if v is None else float(v) for v in columns[c]] for c in self.pre.numeric],
            dtype=np.float64,
        ).reshape(len(self.pre.numeric), rows).T
        ranked, missing = rank_normal(matrix, self.knots, self.levels)
        flags = missing[:, self.flag_index].astype(np.float64)
        numeric = np.hstack([ranked, flags]).astype(np.float32)
        codes = [
            np.array([lookup.get(_category(v), UNKNOWN) for v in columns[c]], dtype=np.int64)
            for c, lookup in self.lookups.items()
        ]
        for j, edges in enumerate(self.edges):
            bin_index = np.searchsorted(edges, matrix[:, j], side="right") + 1
            codes.append(np.where(missing[:, j], UNKNOWN, bin_index).astype(np.int64))
        categorical = np.column_stack(codes) if codes else np.zeros((rows, 0), np.int64)
        return numeric, categorical


@torch.no_grad()
def score(model: torch.nn.Module, numeric: np.ndarray, categorical: np.ndarray) -> np.ndarray:
    """Probabilities as predict_proba computes them: float32 logits, sigmoid, then float64."""
    logits = model(torch.from_numpy(numeric), torch.from_numpy(categorical)).float()
    return torch.sigmoid(logits).numpy().astype(np.float64)
