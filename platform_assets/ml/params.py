"""Training hyperparameters and their defaults: the one place they are written.

Torch-free, so the Dagster config classes that document these knobs load without torch. The
defaults were chosen for the delay model against HistGradientBoosting on the seven rolling 2013
windows (README, "The delay model"): one narrow hidden layer with heavy dropout, five seeds
averaged. Wider or deeper nets memorise the days of the training window (flights of one hour share
its weather) and lose AUC on the next month.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

# Numeric preprocessing: knots of the rank-to-normal map, and quantile bins embedded beside it.
QUANTILE_KNOTS = 256
NUMERIC_BINS = 16


@dataclass(frozen=True)
class TrainParams:
    hidden_sizes: tuple[int, ...] = (64,)
    dropout: float = 0.5
    learning_rate: float = 2e-3
    weight_decay: float = 1e-2
    batch_size: int = 2048
    max_epochs: int = 30
    patience: int = 3
    min_epochs: int = 5
    validation_days: int = 14
    seed: int = 13
    ensemble_size: int = 5
    device: str = "auto"
    mixed_precision: bool = True

    def as_mlflow_params(self) -> dict[str, Any]:
        params = asdict(self)
        params["hidden_sizes"] = ",".join(map(str, self.hidden_sizes))
        return params

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    @classmethod
    def from_mlflow_params(cls, logged: dict[str, str]) -> TrainParams:
        """The recipe an MLflow run logged with `as_mlflow_params` (other params are ignored)."""
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in logged:
                continue
            raw = logged[f.name]
            default = getattr(DEFAULT_PARAMS, f.name)
            if f.name == "hidden_sizes":
                values[f.name] = tuple(int(v) for v in raw.split(",") if v)
            elif isinstance(default, bool):
                values[f.name] = raw == "True"
            else:
                values[f.name] = type(default)(raw)
        return cls(**values)


DEFAULT_PARAMS = TrainParams()
# Run parameters that say where a model trained, not how: they do not make two recipes differ.
RUNTIME_PARAMS = frozenset({"device", "mixed_precision"})
