"""The network, its training loop on tensors, and `fit` from a training-set frame.

The tensor loop (`train_tensors`) needs only torch and numpy, so a GPU machine with only a torch
stack runs the exact training code (benchmarks/training.py --tensors).
"""

from __future__ import annotations

import itertools
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import torch
import torch.nn.functional as F
from torch import nn

from platform_assets.core.metrics import binary_metrics, rank_auc
from platform_assets.core.tabular.params import TrainParams
from platform_assets.core.tabular.preprocessing import (
    Columns,
    Preprocessor,
    labelled,
    split_by_time,
)

# (member, epoch, metrics): called after every epoch of every ensemble member.
EpochCallback = Callable[[int, int, dict[str, float]], None]


class TabularNet(nn.Module):
    """Embeddings for categories, concatenated with numerics, through an MLP to one logit."""

    def __init__(
        self, n_numeric: int, cardinalities: Sequence[int], hidden: Sequence[int], dropout: float
    ) -> None:
        super().__init__()
        self.embeddings = nn.ModuleList(
            nn.Embedding(n, min(16, (n + 1) // 2 + 1)) for n in cardinalities
        )
        width = n_numeric + sum(e.embedding_dim for e in self.embeddings)
        layers: list[nn.Module] = []
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU(), nn.Dropout(dropout)]
            width = size
        layers.append(nn.Linear(width, 1))
        self.mlp = nn.Sequential(*layers)

    def forward(self, numeric: torch.Tensor, categorical: torch.Tensor) -> torch.Tensor:
        parts = [numeric, *(emb(categorical[:, i]) for i, emb in enumerate(self.embeddings))]
        return self.mlp(torch.cat(parts, dim=1)).squeeze(1)


class Ensemble(nn.Module):
    """Networks trained alike from different seeds; the ensemble's logit is the mean of theirs.

    Averaging a few seeds removes most of the seed-to-seed spread in held-out AUC (0.01-0.02 per
    month for a single network on 2013), which early stopping on one short validation window cannot.
    """

    def __init__(self, members: Sequence[TabularNet]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    @classmethod
    def build(
        cls,
        n_numeric: int,
        cardinalities: Sequence[int],
        hidden: Sequence[int],
        dropout: float,
        members: int,
    ) -> Ensemble:
        return cls([TabularNet(n_numeric, cardinalities, hidden, dropout) for _ in range(members)])

    def forward(self, numeric: torch.Tensor, categorical: torch.Tensor) -> torch.Tensor:
        return torch.stack([m(numeric, categorical) for m in self.members]).mean(0)


class BatchedEnsemble(nn.Module):
    """An ensemble's members stacked into one forward pass, for scoring only (not trainable).

    Member by member, five small networks cost five rounds of per-layer dispatch, which dominates
    the latency of scoring a few rows. Here the first linear layer is folded into the embeddings
    (for each member and category, its embedding times that member's slice of the first weight
    matrix), so the first layer of every member is one matmul over the numerics plus one summed
    lookup over every category column; the later layers are batched matmuls over stacked weights.
    The same arithmetic in another order: scores match member-by-member scoring to float32
    rounding (tested to 1e-6).
    """

    def __init__(self, ensemble: Ensemble) -> None:
        super().__init__()
        members = list(ensemble.members)
        if not members:
            raise ValueError("an ensemble needs at least one member to be stacked")
        linears = [[m for m in member.mlp if isinstance(m, nn.Linear)] for member in members]
        first = torch.stack([layers[0].weight.detach() for layers in linears])  # [M, H, width]
        n_members, hidden, _ = first.shape
        dims = [e.embedding_dim for e in members[0].embeddings]
        n_numeric = first.shape[2] - sum(dims)
        # Numerics: [n_numeric, M*H], member-major columns.
        numeric_weight = first[:, :, :n_numeric].permute(2, 0, 1).reshape(n_numeric, -1)
        tables, offsets, start, column = [], [], 0, n_numeric
        for i, dim in enumerate(dims):
            embedding = torch.stack([m.embeddings[i].weight.detach() for m in members])  # [M, n, d]
            block = first[:, :, column : column + dim]  # [M, H, d]
            tables.append(torch.einsum("knd,khd->nkh", embedding, block).reshape(-1, n_members * hidden))
            offsets.append(start)
            start += embedding.shape[1]
            column += dim
        self.n_members, self.hidden = n_members, hidden
        self.register_buffer("numeric_weight", numeric_weight.contiguous())
        self.register_buffer(
            "first_bias", torch.stack([layers[0].bias.detach() for layers in linears]).reshape(-1)
        )
        self.register_buffer(
            "table",
            torch.cat(tables) if tables else torch.zeros(0, n_members * hidden),
        )
        self.register_buffer("offsets", torch.tensor(offsets, dtype=torch.int64))
        self.n_later = len(linears[0]) - 1
        for j in range(1, len(linears[0])):
            # [M, out, in] and [M, out]
            self.register_buffer(f"weight_{j}", torch.stack([ls[j].weight.detach() for ls in linears]))
            self.register_buffer(f"bias_{j}", torch.stack([ls[j].bias.detach() for ls in linears]))
        self.eval()

    def forward(self, numeric: torch.Tensor, categorical: torch.Tensor) -> torch.Tensor:
        h = torch.addmm(self.first_bias, numeric, self.numeric_weight)
        if self.offsets.numel():
            h = h + F.embedding_bag(categorical + self.offsets, self.table, mode="sum")
        h = h.view(-1, self.n_members, self.hidden)
        for j in range(1, self.n_later + 1):
            weight, bias = getattr(self, f"weight_{j}"), getattr(self, f"bias_{j}")
            h = torch.einsum("bmi,moi->bmo", torch.relu(h), weight) + bias
        return h.squeeze(2).mean(1)


@dataclass
class Tensors:
    numeric: torch.Tensor
    categorical: torch.Tensor
    label: torch.Tensor

    def __len__(self) -> int:
        return len(self.label)

    def to(self, device: torch.device) -> Tensors:
        return Tensors(self.numeric.to(device), self.categorical.to(device), self.label.to(device))


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def configure_threads() -> int:
    """Small batches gain nothing past a few threads, and the cores are shared with other steps."""
    threads = max(1, min(4, os.cpu_count() or 1))
    torch.set_num_threads(threads)
    return threads


def seed_everything(seed: int) -> None:
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def _autocast(device: torch.device, enabled: bool) -> torch.autocast:
    # bf16 on CUDA only: the CPU path stays in float32 so its numbers are unchanged.
    return torch.autocast(
        device_type=device.type, dtype=torch.bfloat16, enabled=enabled and device.type == "cuda"
    )


@torch.no_grad()
def predict_logits(
    model: nn.Module, data: Tensors, batch_size: int = 65536, amp: bool = False
) -> torch.Tensor:
    model.eval()
    # A stacked ensemble holds its weights as buffers, not parameters.
    device = next(itertools.chain(model.parameters(), model.buffers())).device
    out = []
    for start in range(0, len(data), batch_size):
        with _autocast(device, amp):
            out.append(
                model(
                    data.numeric[start : start + batch_size],
                    data.categorical[start : start + batch_size],
                ).float()
            )
    return torch.cat(out) if out else torch.zeros(0, device=device)


def make_optimiser(
    model: nn.Module, params: TrainParams, device: torch.device
) -> torch.optim.Optimizer:
    # On CUDA the fused kernel updates every parameter in one launch; a model this small is
    # otherwise bound by kernel launches, not arithmetic.
    return torch.optim.AdamW(
        model.parameters(),
        lr=params.learning_rate,
        weight_decay=params.weight_decay,
        fused=device.type == "cuda",
    )


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    """The weights as they are now, copied on their device (no host round trip)."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@dataclass
class LoopResult:
    model: Ensemble
    device: str
    history: list[dict[str, float]]
    best_epochs: list[int]
    samples_trained: int
    loop_seconds: float
    callback_seconds: float
    epoch_seconds: list[float] = field(default_factory=list)


def train_tensors(
    train: Tensors,
    valid: Tensors,
    n_numeric: int,
    cardinalities: Sequence[int],
    params: TrainParams,
    on_epoch_end: EpochCallback | None = None,
) -> LoopResult:
    """`ensemble_size` networks, member k seeded with seed + k, each early-stopped on validation loss."""
    if params.ensemble_size < 1:
        raise ValueError(f"ensemble_size must be at least 1, got {params.ensemble_size}")
    device = resolve_device(params.device)
    configure_threads()
    train_d, valid_d = train.to(device), valid.to(device)
    members: list[TabularNet] = []
    result = LoopResult(
        model=Ensemble([]),
        device=str(device),
        history=[],
        best_epochs=[],
        samples_trained=0,
        loop_seconds=0.0,
        callback_seconds=0.0,
    )
    for member in range(params.ensemble_size):
        net = _train_member(
            train_d, valid_d, n_numeric, cardinalities, params, member, result, on_epoch_end
        )
        members.append(net)
    result.model = Ensemble(members).cpu().eval()
    return result


def _train_member(
    train_d: Tensors,
    valid_d: Tensors,
    n_numeric: int,
    cardinalities: Sequence[int],
    params: TrainParams,
    member: int,
    result: LoopResult,
    on_epoch_end: EpochCallback | None,
) -> TabularNet:
    """Mini-batch AdamW with early stopping on validation loss; returns the best epoch's weights."""
    device = torch.device(result.device)
    seed = params.seed + member
    seed_everything(seed)
    amp = params.mixed_precision and device.type == "cuda"
    model = TabularNet(n_numeric, cardinalities, params.hidden_sizes, params.dropout).to(device)
    optimiser = make_optimiser(model, params, device)
    loss_fn = nn.BCEWithLogitsLoss()
    generator = torch.Generator().manual_seed(seed)
    valid_label = valid_d.label.cpu().numpy()
    best_loss, best_epoch, best_state, stale = math.inf, 0, snapshot(model), 0
    n = len(train_d)
    started = time.perf_counter()
    for epoch in range(1, params.max_epochs + 1):
        epoch_started = time.perf_counter()
        model.train()
        order = torch.randperm(n, generator=generator).to(device)
        total = torch.zeros((), device=device)
        for start in range(0, n, params.batch_size):
            idx = order[start : start + params.batch_size]
            with _autocast(device, amp):
                logits = model(train_d.numeric[idx], train_d.categorical[idx])
            loss = loss_fn(logits.float(), train_d.label[idx])
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            total += loss.detach() * len(idx)
        result.samples_trained += n
        val_logits = predict_logits(model, valid_d, amp=amp)
        val_loss = float(loss_fn(val_logits, valid_d.label))
        val_auc = rank_auc(valid_label, val_logits.float().cpu().numpy())
        metrics = {"train_loss": float(total) / n, "val_loss": val_loss, "val_auc": val_auc}
        result.history.append({"member": member, "epoch": epoch, **metrics})
        # Before min_epochs the latest weights are kept whatever the validation loss: the last days
        # of a window can be atypical (late April 2013: 33% delayed vs 23% before) and would
        # otherwise stop training after one epoch.
        if epoch <= params.min_epochs or val_loss < best_loss - 1e-5:
            best_loss, best_epoch, stale = val_loss, epoch, 0
            best_state = snapshot(model)
        else:
            stale += 1
        if on_epoch_end is not None:
            t0 = time.perf_counter()
            on_epoch_end(member, epoch, metrics)
            result.callback_seconds += time.perf_counter() - t0
        result.epoch_seconds.append(time.perf_counter() - epoch_started)
        if stale >= params.patience:
            break
    result.loop_seconds += time.perf_counter() - started
    result.best_epochs.append(best_epoch)
    model.load_state_dict(best_state)
    return model.cpu().eval()


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
