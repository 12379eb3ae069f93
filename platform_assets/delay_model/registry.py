"""The delay model's registered versions: load one, score feature rows with it, find its aliases."""

from __future__ import annotations

from typing import TYPE_CHECKING

from platform_assets.delay_model.spec import MODEL
from platform_assets.ml.registry import alias_version

if TYPE_CHECKING:
    import mlflow
    import numpy as np
    import pandas as pd
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion


def load_version(version: str | int) -> mlflow.pyfunc.PyFuncModel:
    from platform_assets.ml.pyfunc import load_version as load

    return load(MODEL.name, version)


def predict_version(version: str | int, frame: pd.DataFrame) -> np.ndarray:
    """Delay probabilities of a registered version for feature rows (extra columns are ignored)."""
    from platform_assets.ml.pyfunc import predict_version as predict

    return predict(MODEL.name, version, frame)


def version_for(client: MlflowClient, alias: str) -> ModelVersion | None:
    """The version holding an alias (champion, candidate, previous), if any."""
    return alias_version(client, alias, MODEL.name)
