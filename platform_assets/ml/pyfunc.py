"""A tabular model as an MLflow pyfunc (stored preprocessing + torch weights): log, load, predict."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import sklearn
import torch
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature

from platform_assets.ml.preprocessing import Preprocessor, category_strings, model_input
from platform_assets.ml.training import (
    BatchedEnsemble,
    Ensemble,
    FitResult,
    predict_proba,
)


class TabularPyfunc(mlflow.pyfunc.PythonModel):
    """Serves probabilities: applies the stored preprocessing, then the torch ensemble.

    The members score in one stacked forward pass (`BatchedEnsemble`), so batch scoring and the
    online server pay one network's dispatch cost, not one per member.
    """

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
        ensemble = Ensemble.build(
            arch["n_numeric"],
            arch["cardinalities"],
            arch["hidden"],
            arch["dropout"],
            arch["members"],
        )
        ensemble.load_state_dict(checkpoint["state_dict"])
        self.model = BatchedEnsemble(ensemble.eval())

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


def log_model(fit: FitResult, example: pd.DataFrame, registered_name: str | None) -> Any:
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
            python_model=TabularPyfunc(),
            artifacts={"preprocessor": str(pre_path), "weights": str(weights_path)},
            signature=infer_signature(example, output),
            input_example=example.head(5),
            pip_requirements=pip_requirements(),
            registered_model_name=registered_name,
        )


def load_version(name: str, version: str | int) -> mlflow.pyfunc.PyFuncModel:
    return mlflow.pyfunc.load_model(f"models:/{name}/{version}")


def signature_input(model: mlflow.pyfunc.PyFuncModel, frame: pd.DataFrame) -> pd.DataFrame:
    """The columns a logged version's signature names, typed as it says: floats or category strings."""
    out = {}
    for spec in model.metadata.get_input_schema().inputs:
        column = frame[spec.name]
        out[spec.name] = (
            category_strings(column)
            if spec.type.name == "string"
            else pd.to_numeric(column, errors="coerce").astype("float64")
        )
    return pd.DataFrame(out)


def predict_loaded(model: mlflow.pyfunc.PyFuncModel, frame: pd.DataFrame) -> np.ndarray:
    """Probabilities of a loaded version for feature rows (any extra columns are ignored)."""
    return np.asarray(model.predict(signature_input(model, frame)), dtype=np.float64)


def predict_version(name: str, version: str | int, frame: pd.DataFrame) -> np.ndarray:
    """Probabilities of a registered version for feature rows (any extra columns are ignored)."""
    return predict_loaded(load_version(name, version), frame)
