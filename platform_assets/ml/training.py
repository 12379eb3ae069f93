"""`fit` from a training-set frame: split by time, preprocess, train (`loop.train_tensors`), and
the validation metrics of the result; `predict_proba` scores feature rows with a fitted model.

The training code is three modules: the networks (`network`), the loop on tensors (`loop`) and
this one. Their public names stay importable from here. The fit cache (`parallel.fit_key`) hashes
the modules in `TRAINING_MODULES`: a module that decides a fit's result belongs there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import torch

from platform_assets.ml.loop import (
    EpochCallback,
    LoopResult,
    Tensors,
    configure_threads,
    make_optimiser,
    predict_logits,
    resolve_device,
    seed_everything,
    train_tensors,
    training_threads,
)
from platform_assets.ml.metrics import binary_metrics
from platform_assets.ml.network import BatchedEnsemble, Ensemble, StackedNets, TabularNet
from platform_assets.ml.params import TrainParams
from platform_assets.ml.preprocessing import (
    Columns,
    Preprocessor,
    labelled,
    split_by_time,
)

#: The modules whose source decides a fit's result: the fit cache (`parallel.fit_key`) hashes them.
TRAINING_MODULES = (
    __name__,
    "platform_assets.ml.loop",
    "platform_assets.ml.network",
    "platform_assets.ml.preprocessing",
    "platform_assets.ml.params",
    "platform_assets.ml.metrics",
)

__all__ = [
    "TRAINING_MODULES",
    "BatchedEnsemble",
    "Ensemble",
    "EpochCallback",
    "FitResult",
    "LoopResult",
    "StackedNets",
    "TabularNet",
    "Tensors",
    "configure_threads",
    "fit",
    "make_optimiser",
    "predict_logits",
    "predict_proba",
    "prepare",
    "resolve_device",
    "seed_everything",
    "to_tensors",
    "train_loop",
    "train_tensors",
    "training_threads",
]


@dataclass
class FitResult:
    model: Ensemble
    preprocessor: Preprocessor
    params: TrainParams
    device: str
    history: list[dict[str, float]]
    best_epochs: list[int]
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
            "members": len(self.model.members),
        }


def to_tensors(frame: pd.DataFrame, preprocessor: Preprocessor, label_column: str) -> Tensors:
    numeric, categorical = preprocessor.transform(frame)
    label = (
        frame[label_column].to_numpy(np.float32)
        if label_column in frame.columns
        else np.zeros(len(frame), np.float32)
    )
    return Tensors(
        torch.from_numpy(numeric), torch.from_numpy(categorical), torch.from_numpy(label)
    )


def prepare(
    frame: pl.DataFrame, params: TrainParams, columns: Columns
) -> tuple[Preprocessor, Tensors, Tensors, str]:
    """Split by time, fit preprocessing on the training side only, and tensorise both sides."""
    train, valid, validation_start = split_by_time(
        labelled(frame, columns.label), params.validation_days
    )
    train_pd, valid_pd = train.to_pandas(), valid.to_pandas()
    numeric, categorical = columns.features(train)
    preprocessor = Preprocessor.fit(train_pd, numeric, categorical)
    return (
        preprocessor,
        to_tensors(train_pd, preprocessor, columns.label),
        to_tensors(valid_pd, preprocessor, columns.label),
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
        best_epochs=loop.best_epochs,
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
    frame: pl.DataFrame,
    params: TrainParams,
    columns: Columns,
    on_epoch_end: EpochCallback | None = None,
) -> FitResult:
    """Train on a point-in-time training set (one row per prediction, the label in columns.label)."""
    preprocessor, train, valid, validation_start = prepare(frame, params, columns)
    result = train_loop(train, valid, preprocessor, params, on_epoch_end)
    result.validation_start = validation_start
    return result


def predict_proba(
    model: torch.nn.Module, preprocessor: Preprocessor, frame: pd.DataFrame
) -> np.ndarray:
    """Delay probabilities for feature rows, on CPU, with exactly the training-time transform."""
    configure_threads()
    numeric, categorical = preprocessor.transform(frame)
    data = Tensors(
        torch.from_numpy(numeric), torch.from_numpy(categorical), torch.zeros(len(frame))
    )
    return torch.sigmoid(predict_logits(model.cpu(), data)).numpy().astype(np.float64)

