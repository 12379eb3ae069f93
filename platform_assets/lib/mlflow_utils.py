"""The delay model as an MLflow pyfunc (preprocessing + torch weights), and registry alias moves."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import sklearn
import torch
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature

from platform_assets.lib import constants
from platform_assets.lib.model import (
    DelayEnsemble,
    FitResult,
    Preprocessor,
    model_input,
    predict_proba,
)

CHAMPION = "champion"
PREVIOUS = "previous"
CANDIDATE = "candidate"


class DelayModelPyfunc(mlflow.pyfunc.PythonModel):
    """Serves delay probabilities: applies the stored preprocessing, then the torch network."""

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        stored = json.loads(Path(context.artifacts["preprocessor"]).read_text())
        checkpoint = torch.load(context.artifacts["weights"], map_location="cpu", weights_only=True)
        arch = checkpoint["architecture"]
        if "knots" not in stored or "members" not in arch:
            # Before the ensemble (z-scored numerics, one network): its transform is gone.
            raise MlflowException(
                f"{context.artifacts['weights']}: model format 'single network, z-scored inputs' "
                "is no longer served; retrain it (materialize delay_model) or start from a clean "
                "PLATFORM_HOME (make clean)"
            )
        self.preprocessor = Preprocessor.from_dict(stored)
        self.model = DelayEnsemble.build(
            arch["n_numeric"],
            arch["cardinalities"],
            arch["hidden"],
            arch["dropout"],
            arch["members"],
        )
        self.model.load_state_dict(checkpoint["state_dict"])
        self.model.eval()

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> np.ndarray:
        return predict_proba(self.model, self.preprocessor, model_input)


def pip_requirements() -> list[str]:
    # Pinned explicitly: MLflow's inference would re-import the model in a subprocess, slowly.
    return [
        f"torch=={torch.__version__.split('+')[0]}",
        f"mlflow=={mlflow.__version__}",
        f"pandas=={pd.__version__}",
        f"numpy=={np.__version__}",
        f"scikit-learn=={sklearn.__version__}",
    ]


def log_delay_model(fit: FitResult, example: pd.DataFrame, registered_name: str | None) -> Any:
    """Log the fitted model with signature and input example inside the active run; maybe register it."""
    example = model_input(example, fit.preprocessor)
    with tempfile.TemporaryDirectory() as tmp:
        pre_path = Path(tmp) / "preprocessor.json"
        pre_path.write_text(json.dumps(fit.preprocessor.to_dict(), indent=1))
        weights_path = Path(tmp) / "weights.pt"
        torch.save(
            {"architecture": fit.architecture(), "state_dict": fit.model.state_dict()}, weights_path
        )
        output = predict_proba(fit.model, fit.preprocessor, example)
        return mlflow.pyfunc.log_model(
            name="model",
            python_model=DelayModelPyfunc(),
            artifacts={"preprocessor": str(pre_path), "weights": str(weights_path)},
            signature=infer_signature(example, output),
            input_example=example.head(5),
            pip_requirements=pip_requirements(),
            registered_model_name=registered_name,
        )


def alias_version(
    client: MlflowClient, alias: str, name: str = constants.MODEL_NAME
) -> ModelVersion | None:
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def load_version(name: str, version: str | int) -> mlflow.pyfunc.PyFuncModel:
    return mlflow.pyfunc.load_model(f"models:/{name}/{version}")


@dataclass(frozen=True)
class Promotion:
    champion: str
    previous: str | None


def promote(client: MlflowClient, version: str, name: str = constants.MODEL_NAME) -> Promotion:
    """Make `version` the champion; the champion it replaces keeps alias `previous` for rollback."""
    current = alias_version(client, CHAMPION, name)
    previous = (
        current.version if current is not None and str(current.version) != str(version) else None
    )
    if previous is not None:
        client.set_registered_model_alias(name, PREVIOUS, previous)
    client.set_registered_model_alias(name, CHAMPION, str(version))
    kept = alias_version(client, PREVIOUS, name)
    return Promotion(
        champion=str(version), previous=str(kept.version) if kept is not None else None
    )


def rollback(client: MlflowClient, name: str = constants.MODEL_NAME) -> Promotion:
    """Give the champion alias back to the `previous` version; the demoted one is tagged, not deleted.

    The `previous` alias is removed so that a second rollback cannot bounce back to the bad version.
    """
    previous = alias_version(client, PREVIOUS, name)
    if previous is None:
        raise RuntimeError(f"{name} has no '{PREVIOUS}' version to roll back to")
    demoted = alias_version(client, CHAMPION, name)
    client.set_registered_model_alias(name, CHAMPION, previous.version)
    client.delete_registered_model_alias(name, PREVIOUS)
    if demoted is not None:
        client.set_model_version_tag(name, demoted.version, "rolled_back", "true")
    return Promotion(champion=str(previous.version), previous=None)
