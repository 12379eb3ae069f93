"""Run config of a model's assets, as the launchpad shows it; each declared model gets subclasses
whose defaults are its declaration's (training window, recipe, search budget, gate thresholds)."""

from dataclasses import dataclass
from typing import Any, Literal

import dagster as dg
from pydantic import Field, create_model

from platform_assets import constants
from platform_assets.ml.declaration import ModelDeclaration
from platform_assets.ml.params import DEFAULT_PARAMS, TrainParams
from platform_assets.ml.registry import CHAMPION
from platform_assets.ml.search import SearchBudget, SearchSpace
from platform_assets.months import MonthWindow


class WindowConfig(dg.Config):
    start_month: str = Field(
        default=constants.TRAINING_SET_START_MONTH,
        description="First month (YYYY-MM) whose labelled flights enter the training set.",
    )
    end_month: str = Field(
        default=constants.TRAINING_SET_END_MONTH,
        description="Last month (YYYY-MM, inclusive) of the training window.",
    )

    def window(self) -> MonthWindow:
        try:
            return MonthWindow(self.start_month, self.end_month)
        except ValueError as error:
            raise dg.Failure(f"training window {self.start_month}..{self.end_month}: {error}") from error


class TrainingSetConfig(WindowConfig):
    pass


class TrainingConfig(WindowConfig):
    """The network's hyperparameters; defaults are TrainParams' (core/tabular/params.py)."""

    hidden_sizes: list[int] = Field(
        default=list(DEFAULT_PARAMS.hidden_sizes), description="Widths of the MLP's hidden layers."
    )
    dropout: float = Field(default=DEFAULT_PARAMS.dropout, description="Dropout after each hidden layer.")
    learning_rate: float = Field(default=DEFAULT_PARAMS.learning_rate, description="AdamW learning rate.")
    weight_decay: float = Field(default=DEFAULT_PARAMS.weight_decay, description="AdamW weight decay.")
    batch_size: int = Field(default=DEFAULT_PARAMS.batch_size, description="Rows per optimiser step.")
    max_epochs: int = Field(
        default=DEFAULT_PARAMS.max_epochs,
        description="Upper bound on epochs; early stopping usually ends sooner.",
    )
    patience: int = Field(
        default=DEFAULT_PARAMS.patience,
        description="Epochs without a better validation loss before stopping.",
    )
    min_epochs: int = Field(
        default=DEFAULT_PARAMS.min_epochs,
        description="Epochs always trained before early stopping may keep an earlier epoch; guards "
        "against an atypical validation window (late April 2013) stopping training after one epoch.",
    )
    validation_days: int = Field(
        default=DEFAULT_PARAMS.validation_days,
        description="The last N days of the window validate (time split, never random).",
    )
    seed: int = Field(
        default=DEFAULT_PARAMS.seed,
        description="Seed of weights and batch order (member k uses seed + k); same data + config "
        "gives the same model.",
    )
    ensemble_size: int = Field(
        default=DEFAULT_PARAMS.ensemble_size,
        ge=1,
        description="Networks trained from consecutive seeds and averaged (mean logit); 1 trains a "
        "single network in a fifth of the time, at the cost of 0.01-0.02 AUC of seed-to-seed spread.",
    )
    device: str = Field(
        default=DEFAULT_PARAMS.device,
        description="'auto' (CUDA when available, else CPU), 'cpu' or 'cuda'.",
    )
    mixed_precision: bool = Field(
        default=DEFAULT_PARAMS.mixed_precision,
        description="bf16 autocast on CUDA; the CPU path always runs float32.",
    )
    retrain_unchanged: bool = Field(
        default=False,
        description="Train and register a new version even when one was trained on the same "
        "training set (sha256) with the same recipe; by default that version becomes the candidate.",
    )
    hyperparameters: Literal["config", "champion"] = Field(
        default="config",
        description="'config': the hyperparameters above. 'champion': the recipe the current champion "
        "was trained with (its search's winner, say); retrains launched by the drift sensor use it.",
    )
    search: bool = Field(
        default=False,
        description="Search the hyperparameters with Optuna before training: each trial an MLflow child "
        "run, pruned on validation loss, the configured recipe as the first trial; the best recipe then "
        "trains the full ensemble.",
    )
    search_study: str = Field(
        default="",
        description="Train the winning recipe of this finished Optuna study (the hyperparameter_search "
        "job's, whose workers may have run as parallel pods) instead of the hyperparameters above.",
    )
    search_trials: int = Field(
        default=constants.SEARCH_TRIALS, ge=1, description="Trials the search runs (its budget)."
    )
    search_timeout_seconds: float | None = Field(
        default=None,
        description="Stop starting trials after this many seconds (unset: the trial count alone bounds "
        "the search, which keeps it deterministic).",
    )
    search_trial_members: int = Field(
        default=1, ge=1, description="Ensemble members each trial trains (the winner trains ensemble_size)."
    )
    search_learning_rate: list[float] = Field(
        default=list(SearchSpace.learning_rate), description="[low, high] of the learning rate (log scale)."
    )
    search_weight_decay: list[float] = Field(
        default=list(SearchSpace.weight_decay), description="[low, high] of the weight decay (log scale)."
    )
    search_dropout: list[float] = Field(default=list(SearchSpace.dropout), description="[low, high] of the dropout.")
    search_hidden_widths: list[int] = Field(
        default=list(SearchSpace.hidden_width), description="Hidden-layer widths the search chooses from."
    )

    def search_space(self) -> SearchSpace:
        return SearchSpace(
            learning_rate=(self.search_learning_rate[0], self.search_learning_rate[1]),
            weight_decay=(self.search_weight_decay[0], self.search_weight_decay[1]),
            dropout=(self.search_dropout[0], self.search_dropout[1]),
            hidden_width=tuple(self.search_hidden_widths),
        )

    def search_budget(self) -> SearchBudget:
        return SearchBudget(
            trials=self.search_trials,
            trial_ensemble_size=self.search_trial_members,
            timeout_seconds=self.search_timeout_seconds,
        )

    def params(self) -> TrainParams:
        values = {name: getattr(self, name) for name in TrainParams.field_names()}
        return TrainParams(**{**values, "hidden_sizes": tuple(self.hidden_sizes)})


class EvaluationConfig(dg.Config):
    holdout_months: int = Field(
        default=constants.HOLDOUT_MONTHS,
        description="Months right after the candidate's training window that it is scored on.",
    )
    min_auc_gain: float = Field(
        default=constants.PROMOTION_MIN_AUC_GAIN,
        description="Candidate AUC must be at least the champion's plus this (negative tolerates a small loss).",
    )
    min_auc: float = Field(
        default=constants.BASELINE_MIN_AUC,
        description="AUC the candidate must exceed; 0.5 is the base-rate predictor's.",
    )


class ScoringConfig(dg.Config):
    model_alias: str = Field(default=CHAMPION, description="Registry alias of the version that scores.")


class DriftConfig(dg.Config):
    sample_rows: int = Field(
        default=constants.DRIFT_SAMPLE_ROWS,
        description="Rows per side compared; larger months are sampled by a hash of flight_id, so "
        "the same rows every time.",
    )


def with_defaults(base: type[dg.Config], name: str, **defaults: Any) -> type[dg.Config]:
    """A subclass of `base` whose fields keep their types and descriptions, with other defaults."""
    fields: dict[str, Any] = {}
    for field, value in defaults.items():
        info = base.model_fields[field]
        fields[field] = (info.annotation, Field(default=value, description=info.description))
    return create_model(name, __base__=base, **fields)


@dataclass(frozen=True)
class ModelConfigs:
    """The config classes of one declared model's assets."""

    training_set: type[TrainingSetConfig]
    training: type[TrainingConfig]
    evaluation: type[EvaluationConfig]

    @classmethod
    def of(cls, declaration: ModelDeclaration) -> "ModelConfigs":
        stem = "".join(part.title() for part in declaration.key_prefix.split("_"))
        training = declaration.training
        window = {"start_month": training.start_month, "end_month": training.end_month}
        params = training.recipe.params()
        recipe = {name: getattr(params, name) for name in TrainParams.field_names()}
        recipe["hidden_sizes"] = list(params.hidden_sizes)
        return cls(
            training_set=with_defaults(TrainingSetConfig, f"{stem}TrainingSetConfig", **window),
            training=with_defaults(
                TrainingConfig, f"{stem}TrainingConfig", **window, **recipe, search_trials=training.search_trials
            ),
            evaluation=with_defaults(
                EvaluationConfig,
                f"{stem}EvaluationConfig",
                holdout_months=training.holdout_months,
                min_auc_gain=declaration.gate.min_auc_gain,
                min_auc=declaration.gate.min_auc,
            ),
        )
