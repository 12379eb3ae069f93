"""Resources and executor for the environment PLATFORM_ENV names (local or k8s)."""

from __future__ import annotations

import os
from typing import Any

import dagster as dg
from dagster_dbt import DbtCliResource

from platform_assets.defs.features.resources import FeastResource
from platform_assets.defs.ingestion.resources import RawSourceResource
from platform_assets.defs.monitoring.resources import RetrainPolicy
from platform_assets.defs.training.resources import MLflowResource
from platform_assets.lib import settings
from platform_assets.lib.dbt import dbt_executable, dbt_project
from platform_assets.lib.k8s import k8s_executor
from platform_assets.lib.resources import PlatformPathsResource

# SQLite online store on one machine, Redis on a cluster (feature_repo/README.md).
FEAST_YAML = {"local": "feature_store.yaml", "k8s": "feature_store.redis.yaml"}


def platform_resources() -> dict[str, Any]:
    current = settings.current()
    return {
        "platform": PlatformPathsResource(home=str(current.home)),
        "raw_source": RawSourceResource(data_dir=os.environ.get("RAW_DATA_DIR") or None),
        "feast": FeastResource(fs_yaml=FEAST_YAML[current.env]),
        # The resource does not read MLFLOW_TRACKING_URI itself: mlflow.set_tracking_uri() writes
        # that variable, so a second store in the same process would silently inherit the first.
        "mlflow_store": MLflowResource(
            home=str(current.home), tracking_uri=os.environ.get("MLFLOW_TRACKING_URI") or None
        ),
        "retrain_policy": RetrainPolicy(),
        "dbt": DbtCliResource(
            project_dir=dbt_project, target=current.dbt_target, dbt_executable=dbt_executable()
        ),
    }


def platform_executor() -> dg.ExecutorDefinition:
    """Each step in its own pod on k8s; subprocesses on one machine locally."""
    if settings.PlatformSettings.from_env().env == "k8s":
        return k8s_executor()
    return dg.multiprocess_executor.configured({"max_concurrent": os.cpu_count() or 2})
