"""The training loop on tensors: `train_tensors` trains an ensemble's members together as one
stacked network, each early-stopped on its validation loss, and returns the ensemble.

It needs only torch and numpy (no data frames), so a GPU machine with only a torch stack runs the
exact training code (benchmarks/training.py --tensors). `training.fit` brings a training-set frame
to these tensors.
"""

from __future__ import annotations

import copy
import itertools
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from platform_assets.ml.metrics import rank_auc
from platform_assets.ml.network import Ensemble, StackedNets, TabularNet
from platform_assets.ml.params import TrainParams

# (member, epoch, metrics): called after every epoch of every ensemble member.
EpochCallback = Callable[[int, int, dict[str, float]], None]


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
    """Half the cores, at most 4: batches of 2,048 rows gain nothing past a few threads, and
    OpenMP threads that wait for a busy core spin. On 2 cores one thread trained a 5-member
    ensemble in 11.5 s where two took 22.6 s (Jan-Apr 2013, an otherwise idle machine)."""
    threads = training_threads()
    torch.set_num_threads(threads)
    return threads


def training_threads() -> int:
    """The thread count `configure_threads` sets: half the cores, at most 4."""
    return max(1, min(4, (os.cpu_count() or 2) // 2))


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
    return torch.cat(out, dim=-1) if out else torch.zeros(0, device=device)


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


@dataclass
class LoopResult:
    model: Ensemble
    device: str
    history: list[dict[str, float]]
    best_epochs: list[int]
    samples_trained: int
    loop_seconds: float
    callback_seconds: float
    # One per epoch of the stacked network, which trains every member still running.
    epoch_seconds: list[float] = field(default_factory=list)


def train_tensors(
    train: Tensors,
    valid: Tensors,
    n_numeric: int,
    cardinalities: Sequence[int],
    params: TrainParams,
    on_epoch_end: EpochCallback | None = None,
) -> LoopResult:
    """`ensemble_size` networks, member k seeded with seed + k, each early-stopped on validation loss.

    The members train together as one stacked network (`StackedNets`), each with its own
    initialisation, batch order and dropout masks from its seed: per step one forward, backward and
    AdamW step for all of them instead of one per member, which is what a network this small costs.
    A member that stops early leaves the stack; its best epoch's weights are kept.
    """
    if params.ensemble_size < 1:
        raise ValueError(f"ensemble_size must be at least 1, got {params.ensemble_size}")
    run = _StackTraining(train, valid, n_numeric, cardinalities, params, on_epoch_end)
    started = time.perf_counter()
    for epoch in range(1, params.max_epochs + 1):
        epoch_started = time.perf_counter()
        train_losses = run.train_epoch()
        stopped = run.record_epoch(epoch, train_losses, *run.validate())
        run.result.epoch_seconds.append(time.perf_counter() - epoch_started)
        if len(stopped) == len(run.active):
            break
        if stopped:
            run.drop(stopped)
    return run.finish(time.perf_counter() - started)


def _seeded_members(
    n_numeric: int, cardinalities: Sequence[int], params: TrainParams, device: torch.device
) -> tuple[list[TabularNet], list[torch.Generator], list[torch.Generator]]:
    """Member k initialised from seed + k, with its batch-order and dropout generators."""
    members, orders, dropouts = [], [], []
    for member in range(params.ensemble_size):
        seed = params.seed + member
        seed_everything(seed)
        members.append(TabularNet(n_numeric, cardinalities, params.hidden_sizes, params.dropout))
        orders.append(torch.Generator().manual_seed(seed))
        # Dropout draws continue member k's seeded stream after its initialisation, as they did
        # when each member trained alone.
        dropouts.append(
            torch.Generator(device=device).manual_seed(int(torch.randint(2**62, ()).item()))
        )
    return members, orders, dropouts


class _StackTraining:
    """One `train_tensors` run, epoch by epoch: the stack of the members still training (`active`:
    the stack's rows, by member), each member's best weights (`best`, every member), best
    validation loss and epochs since it improved."""

    def __init__(
        self,
        train: Tensors,
        valid: Tensors,
        n_numeric: int,
        cardinalities: Sequence[int],
        params: TrainParams,
        on_epoch_end: EpochCallback | None,
    ) -> None:
        self.params, self.on_epoch_end = params, on_epoch_end
        self.device = device = resolve_device(params.device)
        configure_threads()
        self.train, valid_d = train.to(device), valid.to(device)
        self.amp = params.mixed_precision and device.type == "cuda"
        self.members, self.orders, self.dropouts = _seeded_members(
            n_numeric, cardinalities, params, device
        )
        self.net = StackedNets(self.members).to(device)
        self.best = copy.deepcopy(self.net)
        self.optimiser = make_optimiser(self.net, params, device)
        # Category codes as table rows once, not every step.
        self.train_rows = self.net.rows(self.train.categorical)
        self.valid = Tensors(valid_d.numeric, self.net.rows(valid_d.categorical), valid_d.label)
        self.result = LoopResult(
            model=Ensemble([]),
            device=str(device),
            history=[],
            best_epochs=[0] * params.ensemble_size,
            samples_trained=0,
            loop_seconds=0.0,
            callback_seconds=0.0,
        )
        self.best_loss = [math.inf] * params.ensemble_size
        self.stale = [0] * params.ensemble_size
        self.active = list(range(params.ensemble_size))
        self.valid_label = valid_d.label.cpu().numpy()

    def train_epoch(self) -> list[float]:
        """One pass over the training rows for every active member, each in its own order and with
        its own dropout masks: the members' mean training losses."""
        net, device, batch_size, data = self.net, self.device, self.params.batch_size, self.train
        n = len(data)
        net.train()
        order = torch.stack([torch.randperm(n, generator=self.orders[k]) for k in self.active]).to(
            device
        )
        generators = [self.dropouts[k] for k in self.active]
        total = torch.zeros(len(self.active), device=device)
        for start in range(0, n, batch_size):
            idx = order[:, start : start + batch_size]  # [members, batch]
            flat = idx.flatten()  # index_select gathers about 4x faster than indexing by idx
            with _autocast(device, self.amp):
                logits = net(
                    data.numeric.index_select(0, flat).view(*idx.shape, -1),
                    self.train_rows.index_select(0, flat).view(*idx.shape, -1),
                    generators,
                )
            losses = F.binary_cross_entropy_with_logits(
                logits.float(), data.label.index_select(0, flat).view(idx.shape), reduction="none"
            ).mean(1)
            self.optimiser.zero_grad(set_to_none=True)
            # Summed, not averaged: member k's gradient is that of its own mean loss.
            losses.sum().backward()
            self.optimiser.step()
            total += losses.detach() * idx.shape[1]
        self.result.samples_trained += n * len(self.active)
        return (total / n).tolist()

    def validate(self) -> tuple[list[float], np.ndarray]:
        """The active members' validation losses and scores [members, rows]."""
        val_logits = predict_logits(self.net, self.valid, amp=self.amp)  # [members, rows]
        val_losses = F.binary_cross_entropy_with_logits(
            val_logits, self.valid.label.expand_as(val_logits), reduction="none"
        ).mean(1)
        return val_losses.tolist(), val_logits.float().cpu().numpy()

    def record_epoch(
        self, epoch: int, train_losses: list[float], val_losses: list[float], val_scores: np.ndarray
    ) -> list[int]:
        """Each active member's epoch in the history, its weights kept if they are its best yet,
        and the callback told; the stack rows of the members that stop here."""
        stopped = []
        for row, member in enumerate(self.active):
            val_loss = val_losses[row]
            metrics = {
                "train_loss": train_losses[row],
                "val_loss": val_loss,
                "val_auc": rank_auc(self.valid_label, val_scores[row]),
            }
            self.result.history.append({"member": member, "epoch": epoch, **metrics})
            self._keep_if_best(row, member, epoch, val_loss)
            if self.on_epoch_end is not None:
                t0 = time.perf_counter()
                self.on_epoch_end(member, epoch, metrics)
                self.result.callback_seconds += time.perf_counter() - t0
            if self.stale[member] >= self.params.patience:
                stopped.append(row)
        return stopped

    def _keep_if_best(self, row: int, member: int, epoch: int, val_loss: float) -> None:
        # Before min_epochs the latest weights are kept whatever the validation loss: the last
        # days of a window can be atypical (late April 2013: 33% delayed vs 23% before) and
        # would otherwise stop training after one epoch.
        if epoch <= self.params.min_epochs or val_loss < self.best_loss[member] - 1e-5:
            self.best_loss[member], self.result.best_epochs[member] = val_loss, epoch
            self.stale[member] = 0
            with torch.no_grad():
                for kept, current in zip(self.best.parameters(), self.net.parameters()):
                    kept[member].copy_(current[row])
        else:
            self.stale[member] += 1

    def drop(self, stopped: Sequence[int]) -> None:
        """Take the stopped rows out of the stack."""
        rows = [row for row in range(len(self.active)) if row not in stopped]
        self.net, self.optimiser = _keep_rows(self.net, self.optimiser, rows, self.params, self.device)
        self.active = [self.active[row] for row in rows]

    def finish(self, loop_seconds: float) -> LoopResult:
        """The result, with every member's best weights unstacked into the ensemble (on CPU)."""
        result = self.result
        result.loop_seconds = loop_seconds
        result.history.sort(key=lambda row: (row["member"], row["epoch"]))
        self.best.unstack(self.members)
        result.model = Ensemble(self.members).cpu().eval()
        return result


def _keep_rows(
    net: StackedNets,
    optimiser: torch.optim.Optimizer,
    rows: Sequence[int],
    params: TrainParams,
    device: torch.device,
) -> tuple[StackedNets, torch.optim.Optimizer]:
    """The stack without its stopped members, with the optimiser's state of the others carried over.

    Stopped members would otherwise keep costing a forward and backward every step.
    """
    kept = net.select(rows)
    carried = make_optimiser(kept, params, device)
    index = torch.tensor(list(rows), device=device)
    for old, new in zip(net.parameters(), kept.parameters()):
        state = optimiser.state.get(old, {})
        carried.state[new] = {
            name: value.index_select(0, index) if value.shape == old.shape else value.clone()
            for name, value in state.items()
        }
    return kept, carried
