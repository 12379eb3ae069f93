"""The delay network and its training loop on tensors: torch, numpy and scikit-learn only.

Kept apart from the dataframe preprocessing (lib/model.py) so a GPU machine with only a torch stack
can run the exact training code (benchmarks/training.py --tensors).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from torch import nn

from platform_assets.lib import constants

# (member, epoch, metrics): called after every epoch of every ensemble member.
EpochCallback = Callable[[int, int, dict[str, float]], None]


class DelayNet(nn.Module):
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


class DelayEnsemble(nn.Module):
    """Networks trained alike from different seeds; the ensemble's logit is the mean of theirs.

    Averaging a few seeds removes most of the seed-to-seed spread in held-out AUC (0.01-0.02 per
    month for a single network on 2013), which early stopping on one short validation window cannot.
    """

    def __init__(self, members: Sequence[DelayNet]) -> None:
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
    ) -> DelayEnsemble:
        return cls([DelayNet(n_numeric, cardinalities, hidden, dropout) for _ in range(members)])

    def forward(self, numeric: torch.Tensor, categorical: torch.Tensor) -> torch.Tensor:
        return torch.stack([m(numeric, categorical) for m in self.members]).mean(0)


@dataclass(frozen=True)
class TrainParams:
    hidden_sizes: tuple[int, ...] = constants.TRAIN_HIDDEN_SIZES
    dropout: float = constants.TRAIN_DROPOUT
    learning_rate: float = constants.TRAIN_LEARNING_RATE
    weight_decay: float = constants.TRAIN_WEIGHT_DECAY
    batch_size: int = constants.TRAIN_BATCH_SIZE
    max_epochs: int = constants.TRAIN_MAX_EPOCHS
    patience: int = constants.TRAIN_PATIENCE
    min_epochs: int = constants.TRAIN_MIN_EPOCHS
    validation_days: int = constants.TRAIN_VALIDATION_DAYS
    seed: int = constants.TRAIN_SEED
    ensemble_size: int = constants.TRAIN_ENSEMBLE_SIZE
    device: str = "auto"
    mixed_precision: bool = True

    def as_mlflow_params(self) -> dict[str, Any]:
        params = asdict(self)
        params["hidden_sizes"] = ",".join(map(str, self.hidden_sizes))
        return params


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
    device = next(model.parameters()).device
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
    model: DelayEnsemble
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
    members: list[DelayNet] = []
    result = LoopResult(
        model=DelayEnsemble([]),
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
    result.model = DelayEnsemble(members).cpu().eval()
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
) -> DelayNet:
    """Mini-batch AdamW with early stopping on validation loss; returns the best epoch's weights."""
    device = torch.device(result.device)
    seed = params.seed + member
    seed_everything(seed)
    amp = params.mixed_precision and device.type == "cuda"
    model = DelayNet(n_numeric, cardinalities, params.hidden_sizes, params.dropout).to(device)
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
