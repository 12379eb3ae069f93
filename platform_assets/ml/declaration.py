"""A model's declaration: the schema of `defs/models/<model>/defs.yaml`, in plain Python.

The model-lifecycle component (lib/models/component.py) is this schema plus the Dagster definitions
it builds; the model server and the replay read the same files through `load_declarations`, so a
model is declared once for training, scoring, monitoring and serving.
"""

from __future__ import annotations

from dataclasses import replace
from functools import cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from platform_assets import constants
from platform_assets.events import OUTCOMES
from platform_assets.ml.params import DEFAULT_PARAMS, TrainParams
from platform_assets.ml.policy import RetrainPolicy
from platform_assets.ml.spec import FLIGHT_CATEGORIES, ModelSpec
from platform_assets.months import MonthWindow

# Where the declarations live; a folder per model, each with its defs.yaml.
MODELS_DIR = Path(__file__).resolve().parents[1] / "defs" / "models"
COMPONENT_TYPE = "platform_assets.lib.models.ModelLifecycle"


class _Section(BaseModel):
    # Bounds are checked here, not with Field(ge=...): Dagster's YAML schema takes plain field types.
    model_config = ConfigDict(extra="forbid", frozen=True)
    _positive: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _bounds(self) -> _Section:
        for name in self._positive:
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        return self


class Recipe(_Section):
    """Overrides of the network's default hyperparameters (ml/params.py TrainParams)."""

    hidden_sizes: list[int] | None = None
    dropout: float | None = None
    learning_rate: float | None = None
    weight_decay: float | None = None
    batch_size: int | None = None
    max_epochs: int | None = None
    patience: int | None = None
    min_epochs: int | None = None
    validation_days: int | None = None
    seed: int | None = None
    ensemble_size: int | None = None
    _positive = ("batch_size", "max_epochs", "ensemble_size")

    def params(self, base: TrainParams = DEFAULT_PARAMS) -> TrainParams:
        values: dict[str, Any] = {k: v for k, v in self.model_dump().items() if v is not None}
        if "hidden_sizes" in values:
            values["hidden_sizes"] = tuple(values["hidden_sizes"])
        return replace(base, **values)


class Training(_Section):
    start_month: str = Field(
        default=constants.TRAINING_SET_START_MONTH, description="First month of the first training window."
    )
    end_month: str = Field(
        default=constants.TRAINING_SET_END_MONTH, description="Last month (inclusive) of the first training window."
    )
    holdout_months: int = Field(
        default=constants.HOLDOUT_MONTHS, description="Months after the window the gate scores the candidate on."
    )
    recipe: Recipe = Field(default_factory=Recipe, description="Hyperparameters that differ from the defaults.")
    search_trials: int = Field(default=constants.SEARCH_TRIALS, description="Optuna trials of a search.")
    _positive = ("holdout_months", "search_trials")

    @property
    def window(self) -> MonthWindow:
        return MonthWindow(self.start_month, self.end_month)


class Gate(_Section):
    min_auc: float = Field(default=constants.BASELINE_MIN_AUC, description="AUC the candidate must exceed.")
    min_auc_gain: float = Field(
        default=constants.PROMOTION_MIN_AUC_GAIN,
        description="AUC the candidate must gain over the champion (negative tolerates a small loss).",
    )


class Retrain(RetrainPolicy):
    sensor: Literal["running", "stopped"] = Field(
        default="running", description="Default status of the model's drift retrain sensor."
    )

    @property
    def policy(self) -> RetrainPolicy:
        return RetrainPolicy(**self.model_dump(exclude={"sensor"})).with_settings()


class Serving(_Section):
    enabled: bool = Field(default=True, description="Serve the model on the model server (v1 route).")
    rollout: Literal["champion", "canary", "shadow"] = Field(
        default="champion", description="champion only; a canary share to the challenger; or shadow scoring."
    )
    canary_percent: float = Field(default=20.0, description="Share of requests (percent) the canary answers.")

    @model_validator(mode="after")
    def _percent(self) -> Serving:
        if not 0 <= self.canary_percent <= 100:
            raise ValueError(f"canary_percent must be between 0 and 100, got {self.canary_percent}")
        return self


class K8s(_Section):
    """The training step's pod on Kubernetes; unset fields come from PLATFORM_GPU_* settings."""

    gpu_count: int | None = None
    cpu_request: str | None = None
    memory_request: str | None = None
    memory_limit: str | None = None


class ModelDeclaration(BaseModel):
    """Everything the platform needs to train, gate, promote, score, monitor and serve one model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="Registered model name in MLflow (its aliases are the model's own).")
    key_prefix: str = Field(description="Asset-key prefix and group of the model's assets, e.g. `delay`.")
    label: str = Field(description=f"Outcome column of dbt's flight_training_events, one of {OUTCOMES}.")
    label_rule: str = Field(description="The label in one sentence, for descriptions and the model card.")
    prediction: str = Field(description="Column of the prediction log holding the probability.")
    feature_service: str = Field(description="Feast feature service read in training, evaluation and scoring.")
    experiment: str = Field(description="MLflow experiment of the model's runs.")
    categorical: list[str] = Field(
        default=list(FLIGHT_CATEGORIES), description="Columns the network embeds as categories."
    )
    training: Training = Field(default_factory=Training)
    gate: Gate = Field(default_factory=Gate)
    retrain: Retrain = Field(default_factory=Retrain)
    serving: Serving = Field(default_factory=Serving)
    k8s: K8s = Field(default_factory=K8s)

    @field_validator("label")
    @classmethod
    def _label_is_an_outcome(cls, label: str) -> str:
        if label not in OUTCOMES:
            raise ValueError(f"label {label!r} is not an outcome column of flight_training_events {OUTCOMES}")
        return label

    @field_validator("key_prefix")
    @classmethod
    def _prefix_is_a_name(cls, prefix: str) -> str:
        if not prefix.isidentifier():
            raise ValueError(f"key_prefix {prefix!r} must be a Python identifier (it names jobs and ops)")
        return prefix

    @property
    def spec(self) -> ModelSpec:
        return ModelSpec(
            name=self.name,
            label=self.label,
            label_rule=self.label_rule,
            prediction=self.prediction,
            feature_service=self.feature_service,
            experiment=self.experiment,
            categorical=tuple(self.categorical),
        )


def read_declaration(path: Path) -> ModelDeclaration:
    """One defs.yaml: its `attributes`, validated; an error names the file."""
    document = yaml.safe_load(path.read_text())
    if not isinstance(document, dict) or document.get("type") != COMPONENT_TYPE:
        raise ValueError(f"{path}: not a model declaration (type must be {COMPONENT_TYPE})")
    try:
        return ModelDeclaration.model_validate(document.get("attributes") or {})
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from error


def load_declarations(folder: Path = MODELS_DIR) -> dict[str, ModelDeclaration]:
    """Every declared model under `folder`, by registered name."""
    declarations = [read_declaration(p) for p in sorted(folder.glob("*/defs.yaml"))]
    return {d.name: d for d in declarations}


@cache
def declared_models() -> dict[str, ModelDeclaration]:
    """The declarations shipped in this repository (defs/models/), read once per process."""
    return load_declarations()


def declared(key_prefix: str) -> ModelDeclaration:
    """The declared model with this asset-key prefix."""
    for declaration in declared_models().values():
        if declaration.key_prefix == key_prefix:
            return declaration
    raise KeyError(f"no model declared with key_prefix {key_prefix!r} under {MODELS_DIR}")
