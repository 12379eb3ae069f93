"""Hyperparameter search with Optuna: the space, the study, and one trial = one MLflow child run.

A study lives in Optuna storage: in memory for a search inside one training step, or an RDB URL
(`PLATFORM_OPTUNA_STORAGE`, e.g. Postgres on a cluster) that several workers share, each pulling
trials from the same study (the `hyperparameter_search` job fans them out as parallel pods).
Trials are seeded (TPE's sampler seed, and each trial's training seed), the first trial is the
configured recipe itself, and a trial whose validation loss trails the median of earlier trials at
the same epoch is pruned.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from platform_assets.ml.params import TrainParams

if TYPE_CHECKING:
    import optuna
    import polars as pl

    from platform_assets.ml.preprocessing import Columns
    from platform_assets.ml.training import FitResult


@dataclass(frozen=True)
class SearchSpace:
    """Ranges the sampler draws from; log scale for the rates."""

    learning_rate: tuple[float, float] = (5e-4, 5e-3)
    weight_decay: tuple[float, float] = (1e-3, 1e-1)
    dropout: tuple[float, float] = (0.2, 0.6)
    hidden_width: tuple[int, ...] = (32, 64, 128)

    def suggest(self, trial: optuna.Trial, base: TrainParams) -> TrainParams:
        return replace(
            base,
            learning_rate=trial.suggest_float("learning_rate", *self.learning_rate, log=True),
            weight_decay=trial.suggest_float("weight_decay", *self.weight_decay, log=True),
            dropout=trial.suggest_float("dropout", *self.dropout),
            hidden_sizes=(trial.suggest_categorical("hidden_width", list(self.hidden_width)),),
        )

    def values_of(self, params: TrainParams) -> dict[str, Any]:
        """The recipe's point in this space (enqueued as the first trial); a value outside the space
        is left for the sampler to draw."""
        ranges = {"learning_rate": self.learning_rate, "weight_decay": self.weight_decay, "dropout": self.dropout}
        values: dict[str, Any] = {
            name: getattr(params, name) for name, (low, high) in ranges.items() if low <= getattr(params, name) <= high
        }
        if params.hidden_sizes[0] in self.hidden_width:
            values["hidden_width"] = params.hidden_sizes[0]
        return values

    def as_mlflow_params(self) -> dict[str, str]:
        return {
            "space_learning_rate": f"{self.learning_rate[0]:g}..{self.learning_rate[1]:g} (log)",
            "space_weight_decay": f"{self.weight_decay[0]:g}..{self.weight_decay[1]:g} (log)",
            "space_dropout": f"{self.dropout[0]:g}..{self.dropout[1]:g}",
            "space_hidden_width": ",".join(map(str, self.hidden_width)),
        }


@dataclass(frozen=True)
class SearchBudget:
    trials: int = 8
    # Members per trial: a trial ranks a recipe, the winner then trains the full ensemble.
    trial_ensemble_size: int = 1
    timeout_seconds: float | None = None
    startup_trials: int = 3
    warmup_epochs: int = 5


@dataclass
class SearchOutcome:
    best_params: TrainParams
    best_trial: int
    best_value: float
    trials: list[dict[str, Any]]

    @property
    def completed(self) -> int:
        return sum(t["state"] == "COMPLETE" for t in self.trials)

    @property
    def pruned(self) -> int:
        return sum(t["state"] == "PRUNED" for t in self.trials)


def create_study(
    name: str, seed: int, budget: SearchBudget, storage: str | None = None, load_if_exists: bool = True
) -> optuna.Study:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(
        study_name=name,
        storage=storage,
        direction="minimize",
        sampler=optuna.samplers.TPESampler(seed=seed, n_startup_trials=budget.startup_trials),
        pruner=optuna.pruners.MedianPruner(
            n_startup_trials=budget.startup_trials, n_warmup_steps=budget.warmup_epochs
        ),
        load_if_exists=load_if_exists,
    )


def objective(
    frame: pl.DataFrame,
    columns: Columns,
    base: TrainParams,
    space: SearchSpace,
    budget: SearchBudget,
    log_epoch: Callable[[int, int, dict[str, float]], None] | None = None,
) -> Callable[[optuna.Trial], float]:
    """Best validation log loss of a `trial_ensemble_size`-member model; each trial an MLflow child run."""
    import mlflow
    import optuna

    from platform_assets.ml.training import prepare, train_loop

    # The space leaves the split and the preprocessing alone (validation days, seed): every trial
    # trains on the same tensors, prepared once rather than once per trial.
    preprocessor, train, valid, _ = prepare(frame, base, columns)

    def run(trial: optuna.Trial) -> float:
        params = replace(space.suggest(trial, base), ensemble_size=budget.trial_ensemble_size)

        def on_epoch_end(member: int, epoch: int, metrics: dict[str, float]) -> None:
            if log_epoch is not None:
                log_epoch(member, epoch, metrics)
            if member == 0:
                trial.report(metrics["val_loss"], epoch)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"epoch {epoch}: val loss {metrics['val_loss']:.4f}")

        parent = mlflow.active_run()
        with mlflow.start_run(
            run_name=f"trial-{trial.number}",
            nested=True,
            # Beside the parent run: without it a nested run goes to the active experiment.
            experiment_id=parent.info.experiment_id if parent else None,
        ):
            mlflow.log_params({**params.as_mlflow_params(), "trial": trial.number})
            try:
                result: FitResult = train_loop(train, valid, preprocessor, params, on_epoch_end=on_epoch_end)
            except optuna.TrialPruned:
                mlflow.set_tag("optuna_state", "PRUNED")
                raise
            mlflow.log_metrics({f"best_{k}": v for k, v in result.val_metrics.items()})
            mlflow.set_tag("optuna_state", "COMPLETE")
        return result.val_metrics["log_loss"]

    return run


def optimize(
    study: optuna.Study,
    frame: pl.DataFrame,
    columns: Columns,
    base: TrainParams,
    space: SearchSpace,
    budget: SearchBudget,
    trials: int,
    log_epoch: Callable[[int, int, dict[str, float]], None] | None = None,
) -> None:
    """Run `trials` trials of the study here (a worker); the configured recipe goes first."""
    if not study.trials:
        study.enqueue_trial(space.values_of(base))
    study.optimize(
        objective(frame, columns, base, space, budget, log_epoch),
        n_trials=trials,
        timeout=budget.timeout_seconds,
        gc_after_trial=False,
    )


def outcome(study: optuna.Study, base: TrainParams, space: SearchSpace) -> SearchOutcome:
    """The best completed trial's recipe, with the configured ensemble size and seed."""
    import optuna

    finished = [t for t in study.trials if t.state.is_finished()]
    complete = [t for t in finished if t.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        raise ValueError(f"study {study.study_name}: no trial completed ({len(finished)} finished)")
    best = min(complete, key=lambda t: (t.value if t.value is not None else math.inf, t.number))
    params = replace(
        base,
        learning_rate=best.params["learning_rate"],
        weight_decay=best.params["weight_decay"],
        dropout=best.params["dropout"],
        hidden_sizes=(int(best.params["hidden_width"]),),
    )
    return SearchOutcome(
        best_params=params,
        best_trial=best.number,
        best_value=float(best.value),
        trials=[
            {
                "trial": t.number,
                "state": t.state.name,
                "val_log_loss": None if t.value is None else round(float(t.value), 5),
                "epochs": len(t.intermediate_values),
                **{k: (round(v, 6) if isinstance(v, float) else v) for k, v in t.params.items()},
            }
            for t in finished
        ],
    )
