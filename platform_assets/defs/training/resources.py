"""MLflow tracking and registry: an embedded SQLite store under PLATFORM_HOME, or a server by config."""

from pathlib import Path
from urllib.parse import quote

import dagster as dg
import mlflow
from mlflow import MlflowClient
from pydantic import Field

from platform_assets.lib import constants


class MLflowResource(dg.ConfigurableResource):
    """Where runs, models and the registry live; the default keeps everything under PLATFORM_HOME."""

    home: str = Field(
        description="PLATFORM_HOME; the embedded store is $PLATFORM_HOME/mlflow/mlflow.db."
    )
    tracking_uri: str | None = Field(
        default=None,
        description="Tracking server URI (e.g. http://mlflow:5000); the environment passes MLFLOW_TRACKING_URI "
        "here. Unset: sqlite:///$PLATFORM_HOME/mlflow/mlflow.db.",
    )
    registry_uri: str | None = Field(
        default=None, description="Model registry URI; unset means the tracking URI."
    )
    experiment_name: str = Field(
        default=constants.MLFLOW_EXPERIMENT, description="Experiment that holds the runs."
    )

    @property
    def mlflow_dir(self) -> Path:
        return Path(self.home) / "mlflow"

    def resolved_tracking_uri(self) -> str:
        # Not read from MLFLOW_TRACKING_URI here: mlflow.set_tracking_uri writes that variable, so a
        # second resource in the same process would silently inherit the first one's store.
        return self.tracking_uri or f"sqlite:///{self.mlflow_dir / 'mlflow.db'}"

    def resolved_registry_uri(self) -> str:
        return self.registry_uri or self.resolved_tracking_uri()

    @property
    def is_embedded(self) -> bool:
        return self.resolved_tracking_uri().startswith("sqlite:")

    def activate(self) -> str:
        """Point the mlflow module at this store and return the experiment id (created on first use)."""
        if self.is_embedded:
            self.mlflow_dir.mkdir(parents=True, exist_ok=True)
        mlflow.set_tracking_uri(self.resolved_tracking_uri())
        mlflow.set_registry_uri(self.resolved_registry_uri())
        experiment = mlflow.get_experiment_by_name(self.experiment_name)
        if experiment is None:
            # Artefacts of the embedded store go beside it, not into the working directory.
            location = (
                (self.mlflow_dir / "artifacts").resolve().as_uri() if self.is_embedded else None
            )
            return mlflow.create_experiment(self.experiment_name, artifact_location=location)
        return experiment.experiment_id

    def client(self) -> MlflowClient:
        self.activate()
        return MlflowClient(
            tracking_uri=self.resolved_tracking_uri(), registry_uri=self.resolved_registry_uri()
        )

    def run_url(self, experiment_id: str, run_id: str) -> str:
        """A link for a server; for the embedded store, the command that opens the UI on it."""
        uri = self.resolved_tracking_uri()
        if uri.startswith(("http://", "https://")):
            return f"{uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"
        return f"mlflow ui --backend-store-uri {quote(uri, safe=':/')} -> #/experiments/{experiment_id}/runs/{run_id}"

    def model_version_url(self, name: str, version: str) -> str:
        uri = self.resolved_tracking_uri()
        if uri.startswith(("http://", "https://")):
            return f"{uri.rstrip('/')}/#/models/{name}/versions/{version}"
        return f"models:/{name}/{version}"
