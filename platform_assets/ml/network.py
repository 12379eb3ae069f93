"""The networks: `TabularNet`, the `Ensemble` of them, `BatchedEnsemble` to score an ensemble in
one pass, and `StackedNets` to train an ensemble's members in one pass.

Plain torch: no data frames, no Feast, no Dagster.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


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


class _SummedRows(torch.autograd.Function):
    """out[k, b] = sum over c of table[k, rows[k, b, c]]: `embedding_bag` forward, and a backward
    as a one-hot count matrix times the gradient. The tables have a few hundred rows, so that matmul
    beats `embedding_bag`'s own sort-and-scatter backward (1.7x on one thread, 7x on two threads
    of a busy machine).

    The count matrix (members x batch x table rows) lives in `owner.scratch` between steps and is
    cleared by undoing the scatter: zeroing it anew every step cost as much as the matmul.
    """

    @staticmethod
    def forward(
        ctx: Any, table: torch.Tensor, rows: torch.Tensor, owner: StackedNets
    ) -> torch.Tensor:
        members, n_rows, width = table.shape
        member = torch.arange(members, device=rows.device).view(members, 1, 1)
        lookup = (rows + member * n_rows).flatten(0, 1)
        ctx.save_for_backward(rows)
        ctx.n_rows, ctx.owner = n_rows, owner
        summed = F.embedding_bag(lookup, table.flatten(0, 1), mode="sum")
        return summed.view(members, -1, width)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        (rows,) = ctx.saved_tensors
        shape = (*rows.shape[:2], ctx.n_rows)
        size, scratch = math.prod(shape), ctx.owner.scratch
        if scratch is None or scratch.numel() < size or scratch.dtype != grad.dtype:
            scratch = ctx.owner.scratch = grad.new_zeros(size)
        counts = scratch[:size].view(shape)
        counts.scatter_add_(2, rows, grad.new_ones(()).expand(rows.shape))
        table_grad = torch.bmm(counts.transpose(1, 2), grad)
        counts.scatter_(2, rows, 0.0)
        return table_grad, None, None


class StackedNets(nn.Module):
    """Identically shaped `TabularNet`s with their weights stacked on a leading member axis, so one
    forward, one backward and one optimiser step train every member at once.

    Member k's slice of each stacked tensor is exactly member k's weights: AdamW is elementwise,
    each member's loss is its own batch mean, and the members' losses are summed, so member k's
    gradients and updates are those it would get alone. Embedding tables of one shape are stacked
    into one tensor; the first layer's input columns are reordered to match, and `unstack` puts
    them back.

    The first layer is computed as `BatchedEnsemble` scores it: each category's embedding times
    its slice of the first weight matrix (a few hundred rows in all), then one summed lookup per
    row. The same function of the same parameters as embedding, concatenating and multiplying,
    without the wide matmul over embedded columns and its input gradient, which cost most of a
    step.
    """

    def __init__(self, members: Sequence[TabularNet]) -> None:
        super().__init__()
        if not members:
            raise ValueError("stacking needs at least one member")
        template = members[0]
        self.dims = [e.embedding_dim for e in template.embeddings]
        sizes = [e.num_embeddings for e in template.embeddings]
        linears = [[m for m in member.mlp if isinstance(m, nn.Linear)] for member in members]
        self.n_numeric = linears[0][0].in_features - sum(self.dims)
        self.dropout = next((m.p for m in template.mlp if isinstance(m, nn.Dropout)), 0.0)
        self.scratch: torch.Tensor | None = None  # see _SummedRows
        # Columns grouped by table shape (categories, width): a group's tables stack into one
        # [members, columns * categories, width] tensor.
        by_shape: dict[tuple[int, int], list[int]] = {}
        for i, shape in enumerate(zip(sizes, self.dims)):
            by_shape.setdefault(shape, []).append(i)
        self.groups = list(by_shape.values())
        columns = [i for group in self.groups for i in group]
        # Each column's first row in the tables laid end to end (member 0's; member k's follow
        # at k * total_rows).
        starts = np.cumsum([0, *(sizes[i] for i in columns)])
        self.total_rows = int(starts[-1])
        self.register_buffer("columns", torch.tensor(columns), persistent=False)
        self.register_buffer("offsets", torch.tensor(starts[:-1]), persistent=False)
        first_columns = np.cumsum([self.n_numeric, *self.dims]).tolist()
        order = list(range(self.n_numeric)) + [
            c for i in columns for c in range(first_columns[i], first_columns[i] + self.dims[i])
        ]
        self.register_buffer("order", torch.tensor(order), persistent=False)
        self.tables = nn.ParameterList(
            torch.stack([torch.cat([m.embeddings[i].weight.detach() for i in g]) for m in members])
            for g in self.groups
        )
        self.weights = nn.ParameterList(
            torch.stack([ls[j].weight.detach() for ls in linears]) for j in range(len(linears[0]))
        )
        self.weights[0].data = self.weights[0].data[:, :, self.order]
        self.biases = nn.ParameterList(
            torch.stack([ls[j].bias.detach() for ls in linears]) for j in range(len(linears[0]))
        )

    @property
    def n_members(self) -> int:
        return self.weights[0].shape[0]

    def rows(self, categorical: torch.Tensor) -> torch.Tensor:
        """Category codes [..., columns] as rows of member 0's tables laid end to end."""
        return categorical.index_select(-1, self.columns) + self.offsets

    def forward(
        self,
        numeric: torch.Tensor,
        rows: torch.Tensor,
        generators: Sequence[torch.Generator] = (),
    ) -> torch.Tensor:
        """Logits [members, batch] for inputs [members, batch, ...] (each member its own rows) or
        [batch, ...] (the same rows for every member); `rows` from `rows`. In training mode,
        member k's dropout masks are drawn from generators[k]."""
        members, first = self.n_members, self.weights[0]
        if numeric.dim() == 2:
            numeric, rows = numeric.expand(members, -1, -1), rows.expand(members, -1, -1)
        h = torch.baddbmm(
            self.biases[0].unsqueeze(1), numeric, first[:, :, : self.n_numeric].transpose(1, 2)
        )
        if self.groups:
            projected, column = [], self.n_numeric
            for group, table in zip(self.groups, self.tables):
                width = len(group) * self.dims[group[0]]
                # Each column's categories times its block of the first layer: [M, c * n, H].
                block = first[:, :, column : column + width].unflatten(2, (len(group), -1))
                per_column = table.unflatten(1, (len(group), -1))  # [M, c, n, d]
                projected.append(
                    torch.einsum("mcnd,mhcd->mcnh", per_column, block).flatten(1, 2)
                )
                column += width
            h = h + _SummedRows.apply(torch.cat(projected, dim=1), rows.contiguous(), self)
        scale, keep = 1.0, 1.0 - self.dropout
        for j in range(1, len(self.weights)):
            h = torch.relu(h)
            if self.training and generators and keep < 1.0:
                noise = torch.empty(h.shape, device=h.device)
                for member, generator in enumerate(generators):
                    noise[member].uniform_(generator=generator)
                # Inverted dropout: the 1 / keep rescaling rides on the matmul.
                h, scale = h * (noise < keep), 1.0 / keep
            h = torch.baddbmm(
                self.biases[j].unsqueeze(1), h, self.weights[j].transpose(1, 2), alpha=scale
            )
        return h.squeeze(2)

    def select(self, members: Sequence[int]) -> StackedNets:
        """A copy holding only the given members, in that order."""
        picked = copy.deepcopy(self)
        picked.scratch = None
        index = torch.tensor(list(members), device=self.weights[0].device)
        for p in picked.parameters():
            p.data = p.data.index_select(0, index)
        return picked

    def unstack(self, members: Sequence[TabularNet]) -> None:
        """Copy member k's slice into members[k] (networks of the stacked shape)."""
        inverse = torch.argsort(self.order)
        for k, member in enumerate(members):
            linears = [m for m in member.mlp if isinstance(m, nn.Linear)]
            with torch.no_grad():
                for group, table in zip(self.groups, self.tables):
                    start = 0
                    for i in group:
                        weight = member.embeddings[i].weight
                        weight.copy_(table[k, start : start + weight.shape[0]])
                        start += weight.shape[0]
                for j, linear in enumerate(linears):
                    weight = self.weights[j][k]
                    linear.weight.copy_(weight[:, inverse] if j == 0 else weight)
                    linear.bias.copy_(self.biases[j][k])
