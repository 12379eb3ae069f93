"""The ensemble trains as one stacked network: per-member seeds, early stopping and callbacks."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from platform_assets.ml.params import TrainParams
from platform_assets.ml.training import (
    StackedNets,
    TabularNet,
    Tensors,
    predict_logits,
    train_tensors,
)

# Embedding widths 4, 16, 10, 10, 10: one table shared by three columns of unequal sizes.
CARDINALITIES = [5, 30, 17, 17, 18]
N_NUMERIC = 3
PARAMS = TrainParams(
    hidden_sizes=(16,),
    dropout=0.3,
    learning_rate=1e-2,
    batch_size=256,
    max_epochs=12,
    min_epochs=1,
    patience=2,
    ensemble_size=3,
    device="cpu",
)


def _tensors(rows: int, seed: int) -> Tensors:
    g = torch.Generator().manual_seed(seed)
    numeric = torch.randn(rows, N_NUMERIC, generator=g)
    categorical = torch.stack([torch.randint(n, (rows,), generator=g) for n in CARDINALITIES], 1)
    effect = torch.randn(CARDINALITIES[1], generator=g)
    logit = numeric[:, 0] - 0.5 * numeric[:, 1] + effect[categorical[:, 1]]
    label = (torch.rand(rows, generator=g) < torch.sigmoid(logit)).float()
    return Tensors(numeric, categorical, label)


@pytest.fixture(scope="module")
def data() -> tuple[Tensors, Tensors]:
    return _tensors(3000, 1), _tensors(800, 2)


def _train(data: tuple[Tensors, Tensors], params: TrainParams = PARAMS, **kwargs):
    return train_tensors(*data, N_NUMERIC, CARDINALITIES, params, **kwargs)


@pytest.mark.parametrize("hidden", [(16,), (16, 8)])
def test_stacking_keeps_each_members_function_and_unstacks_exactly(hidden) -> None:
    torch.manual_seed(0)
    nets = [TabularNet(N_NUMERIC, CARDINALITIES, hidden, 0.5).eval() for _ in range(3)]
    stacked = StackedNets(nets).eval()
    probe = _tensors(500, 3)
    with torch.no_grad():
        expected = torch.stack([net(probe.numeric, probe.categorical) for net in nets])
        rows = stacked.rows(probe.categorical)
        torch.testing.assert_close(stacked(probe.numeric, rows), expected, rtol=0, atol=1e-5)
        # each member on its own rows: member k scores row order k
        order = torch.stack([torch.randperm(500) for _ in nets])
        own = stacked(probe.numeric[order], rows[order])
    torch.testing.assert_close(own, expected.gather(1, order), rtol=0, atol=1e-5)
    fresh = [TabularNet(N_NUMERIC, CARDINALITIES, hidden, 0.5) for _ in nets]
    stacked.unstack(fresh)
    for net, back in zip(nets, fresh):
        for (name, weight), copied in zip(net.state_dict().items(), back.state_dict().values()):
            assert torch.equal(weight, copied), name


def test_stacked_gradients_are_each_members_own(data) -> None:
    """Summing the members' mean losses gives member k exactly the gradient it gets alone."""
    train, _ = data
    torch.manual_seed(0)
    nets = [TabularNet(N_NUMERIC, CARDINALITIES, (16,), 0.0) for _ in range(3)]
    stacked = StackedNets(nets)
    batch = torch.stack([torch.randperm(len(train))[:256] for _ in nets])
    logits = stacked(train.numeric[batch], stacked.rows(train.categorical)[batch])
    losses = F.binary_cross_entropy_with_logits(logits, train.label[batch], reduction="none")
    losses.mean(1).sum().backward()
    for k, net in enumerate(nets):
        idx = batch[k]
        loss = F.binary_cross_entropy_with_logits(
            net(train.numeric[idx], train.categorical[idx]), train.label[idx]
        )
        loss.backward()
    # Unstack the stacked gradients (as if they were weights) to compare member by member.
    holder = [TabularNet(N_NUMERIC, CARDINALITIES, (16,), 0.0) for _ in nets]
    with torch.no_grad():
        for p in stacked.parameters():
            p.copy_(p.grad)
    stacked.unstack(holder)
    for net, got in zip(nets, holder):
        for (name, p), g in zip(net.named_parameters(), got.parameters()):
            torch.testing.assert_close(g, p.grad, rtol=1e-4, atol=1e-6, msg=name)


def test_same_seed_same_model_and_members_differ(data) -> None:
    first, second = _train(data), _train(data)
    assert first.history == second.history and first.best_epochs == second.best_epochs
    for a, b in zip(first.model.members, second.model.members):
        for (name, weight), again in zip(a.state_dict().items(), b.state_dict().values()):
            assert torch.equal(weight, again), name
    weights = [m.mlp[0].weight for m in first.model.members]
    assert all(
        not torch.allclose(weights[i], weights[j], atol=1e-3)
        for i in range(len(weights))
        for j in range(i + 1, len(weights))
    )
    assert _train(data, replace(PARAMS, seed=PARAMS.seed + 1)).history != first.history


def test_each_member_stops_on_its_own_and_keeps_its_best_epoch(data) -> None:
    calls: list[tuple[int, int, dict[str, float]]] = []
    result = _train(data, on_epoch_end=lambda m, e, metrics: calls.append((m, e, metrics)))
    _, valid = data
    stopped_at = []
    for member, net in enumerate(result.model.members):
        rows = [row for row in result.history if row["member"] == member]
        assert [row["epoch"] for row in rows] == list(range(1, len(rows) + 1))
        best = result.best_epochs[member]
        if len(rows) < PARAMS.max_epochs:
            # stopped: `patience` epochs without improving on its best
            assert len(rows) == best + PARAMS.patience
        stopped_at.append(len(rows))
        # the returned member is its best epoch's network, not its last
        logits = predict_logits(net, valid)
        loss = float(F.binary_cross_entropy_with_logits(logits, valid.label))
        assert loss == pytest.approx(rows[best - 1]["val_loss"], abs=1e-5)
        assert loss == pytest.approx(min(row["val_loss"] for row in rows), abs=1e-5)
    # members stopped at different epochs, so the stack shrank while others trained on
    assert len(set(stopped_at)) > 1 and min(stopped_at) < PARAMS.max_epochs
    # a stopped member is reported no more: callbacks are exactly the history
    assert sorted((m, e) for m, e, _ in calls) == [(r["member"], r["epoch"]) for r in result.history]
    assert all(set(metrics) == {"train_loss", "val_loss", "val_auc"} for _, _, metrics in calls)
    assert result.samples_trained == len(data[0]) * len(result.history)
    assert len(result.epoch_seconds) == max(stopped_at)


def test_an_exception_in_the_epoch_callback_propagates(data) -> None:
    class Pruned(Exception):
        pass

    def prune(member: int, epoch: int, metrics: dict[str, float]) -> None:
        if member == 1 and epoch == 2:
            raise Pruned

    with pytest.raises(Pruned):
        _train(data, on_epoch_end=prune)
