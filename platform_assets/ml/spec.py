"""What a model package declares so the platform can train, gate, promote, score and monitor it.

A model package (e.g. platform_assets/delay_model/) defines one ModelSpec; the asset factories in
core/model_assets.py turn it into Dagster assets. Nothing here imports torch, MLflow or Feast.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from platform_assets.events import NON_FEATURES, OUTCOMES

if TYPE_CHECKING:
    from platform_assets.ml.preprocessing import Columns

# Flight facts known at scheduling time that every model may treat as categories.
FLIGHT_CATEGORIES = ("origin", "dest", "carrier", "sched_dep_hour", "sched_dep_dow")


@dataclass(frozen=True)
class ModelSpec:
    name: str
    """Registered model name in MLflow; its aliases (candidate, champion, previous) are the model's own."""
    label: str
    """Outcome column of flight_training_events the model predicts (one of core.features.OUTCOMES)."""
    label_rule: str
    """The label in one sentence, for descriptions and the model card."""
    prediction: str
    """Column of the prediction log holding the probability, e.g. delay_probability."""
    feature_service: str
    """Feast feature service the model reads, in training, evaluation and scoring alike."""
    experiment: str
    """MLflow experiment of the model's runs."""
    categorical: tuple[str, ...] = FLIGHT_CATEGORIES

    def __post_init__(self) -> None:
        if self.label not in OUTCOMES:
            raise ValueError(f"{self.name}: label {self.label!r} is not an outcome column {OUTCOMES}")

    @property
    def columns(self) -> Columns:
        from platform_assets.ml.preprocessing import Columns

        return Columns(label=self.label, categorical=self.categorical, exclude=NON_FEATURES)
