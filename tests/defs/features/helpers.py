import hashlib
from pathlib import Path

import dagster as dg

from platform_assets.defs.features.assets import feast_registry, online_features
from tests.models.conftest import DELAY, model_assets

# The delay model's training set is the features' first reader: its point-in-time join is tested here.
FEATURE_ASSETS = [feast_registry, online_features, model_assets("delay")["training_set"]]
NAMES = {"feast_registry": "feast_registry", "online_features": "online_features", "training_set": DELAY.training_set}


def materialize(
    name: str, resources: dict, partition: str | None = None, run_config: dict | None = None, **kwargs
) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        FEATURE_ASSETS,
        selection=[NAMES[name]],
        partition_key=partition,
        resources=resources,
        run_config=run_config,
        **kwargs,
    )


def metadata(result: dg.ExecuteInProcessResult) -> dict:
    [event] = result.get_asset_materialization_events()
    return {k: v.value for k, v in event.materialization.metadata.items()}


def training_window(start: str, end: str) -> dict:
    return {"ops": {DELAY.op("training_set"): {"config": {"start_month": start, "end_month": end}}}}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
