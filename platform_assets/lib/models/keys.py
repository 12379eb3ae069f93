"""The names a declared model's definitions get: asset keys under its prefix, op, job and sensor names."""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg

ASSETS = ("training_set", "model", "evaluation", "refit", "champion", "predictions", "drift_report")
TRAINING_ASSETS = ASSETS[:5]
GATE_CHECK = "promotion_gate"


@dataclass(frozen=True)
class ModelKeys:
    """`delay` gives delay/model, op delay__model, job delay_train_and_promote, ..."""

    prefix: str

    def key(self, asset: str) -> dg.AssetKey:
        return dg.AssetKey([self.prefix, asset])

    def op(self, asset: str) -> str:
        """The op (step) name Dagster gives a prefixed asset: run config is keyed by it."""
        return f"{self.prefix}__{asset}"

    def name(self, what: str) -> str:
        """Jobs, sensors, schedules and files of the model: `<prefix>_<what>`."""
        return f"{self.prefix}_{what}"

    @property
    def training_set(self) -> dg.AssetKey:
        return self.key("training_set")

    @property
    def model(self) -> dg.AssetKey:
        return self.key("model")

    @property
    def evaluation(self) -> dg.AssetKey:
        return self.key("evaluation")

    @property
    def refit(self) -> dg.AssetKey:
        return self.key("refit")

    @property
    def champion(self) -> dg.AssetKey:
        return self.key("champion")

    @property
    def predictions(self) -> dg.AssetKey:
        return self.key("predictions")

    @property
    def drift_report(self) -> dg.AssetKey:
        return self.key("drift_report")

    @property
    def train_job(self) -> str:
        return self.name("train_and_promote")

    @property
    def scoring_job(self) -> str:
        return self.name("monthly_scoring")

    @property
    def search_job(self) -> str:
        return self.name("hyperparameter_search")

    @property
    def sensor(self) -> str:
        return self.name("drift_retrain_sensor")
