"""Where every artefact lives under PLATFORM_HOME; deleting that folder resets the platform.

The only module that derives paths: assets, the CLI, benchmarks and the Feast repository
(feature_repo/data_sources.py) all ask a PlatformPaths.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import polars as pl

    from platform_assets.settings import Settings


@dataclass(frozen=True)
class PlatformPaths:
    home: Path
    features_root: Path | None = None
    """FEATURES_ROOT when set (a shared volume on k8s); otherwise under home."""

    @classmethod
    def from_settings(cls, settings: Settings) -> PlatformPaths:
        return cls(settings.home, settings.features_root)

    @property
    def landing(self) -> Path:
        return self.home / "landing"

    @property
    def validated(self) -> Path:
        return self.home / "lake" / "validated"

    @property
    def quarantine(self) -> Path:
        return self.home / "lake" / "quarantine"

    @property
    def warehouse_dir(self) -> Path:
        return self.home / "warehouse"

    @property
    def warehouse_db(self) -> Path:
        return self.warehouse_dir / "warehouse.duckdb"

    @property
    def dbt_target(self) -> Path:
        """dbt's target folders: one per build (its logs and run results), and the partial parse
        (partial_parse.msgpack) the next build starts from."""
        return self.warehouse_dir / "dbt_target"

    @property
    def feature_tables(self) -> Path:
        return self.features_root or self.warehouse_dir / "features"

    def feature_table(self, model: str) -> Path:
        """The parquet file dbt writes for a feature model and Feast reads."""
        return self.feature_tables / f"{model}.parquet"

    @property
    def feast_dir(self) -> Path:
        return self.home / "feast"

    @property
    def training_sets(self) -> Path:
        return self.home / "features" / "training_sets"

    def training_set_file(self, start_month: str, end_month: str, name: str = "training_set") -> Path:
        return self.training_sets / f"{name}_{start_month}_{end_month}.parquet"

    def predictions_file(self, partition: str, name: str = "flight_predictions") -> Path:
        return self.home / "lake" / name / f"month={partition}" / "data.parquet"

    @property
    def mlflow_dir(self) -> Path:
        return self.home / "mlflow"

    @property
    def reports(self) -> Path:
        return self.home / "reports"

    def drift_report_dir(self, partition: str, name: str = "drift_report") -> Path:
        return self.reports / name / f"month={partition}"

    @property
    def replay_reports(self) -> Path:
        return self.reports / "replay"

    def model_card(self, model_name: str, version: str) -> Path:
        return self.reports / "model_cards" / model_name / f"v{version}.html"

    def model_lineage_file(self, model_name: str, version: str) -> Path:
        """The raw files and validated partitions behind a model version (core/lineage.py)."""
        return self.home / "lake" / "lineage" / "model_versions" / model_name / f"v{version}.parquet"

    @property
    def fit_cache(self) -> Path:
        """Model fits by content (core.tabular.parallel): what the replay pre-trains, its summary reads."""
        return self.home / "cache" / "fits"

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    def export_env(self) -> None:
        """Publish the state root to tools that read it from the environment: dbt's profile
        (profiles.yml) and Feast's feature_store.yaml and data sources. FEATURES_ROOT is set only
        when configured, and removed otherwise, so an earlier home's value never lingers."""
        os.environ["PLATFORM_HOME"] = str(self.home)
        if self.features_root is None:
            os.environ.pop("FEATURES_ROOT", None)
        else:
            os.environ["FEATURES_ROOT"] = str(self.features_root)

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster"

    def landing_dir(self, table: str, partition: str | None = None) -> Path:
        return _partitioned(self.landing / table, partition)

    def validated_file(self, table: str, partition: str | None = None) -> Path:
        return _partitioned(self.validated / table, partition) / "data.parquet"

    def quarantine_file(self, table: str, partition: str | None = None) -> Path:
        return _partitioned(self.quarantine / table, partition) / "data.parquet"


def _partitioned(base: Path, partition: str | None) -> Path:
    return base / f"month={partition}" if partition else base


def write_atomic(path: Path, write: Callable[[Path], object]) -> None:
    """`write(tmp)` next to the target, then rename, so readers never see a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_parquet_atomic(frame: "pl.DataFrame", path: Path) -> None:
    write_atomic(path, lambda tmp: frame.write_parquet(tmp, compression="zstd", statistics=True))


def write_text_atomic(text: str, path: Path) -> None:
    """HTML reports, model cards."""
    write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
