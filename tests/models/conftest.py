from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import pytest

from platform_assets.lib.models import ModelLifecycle
from platform_assets.lib.models.keys import ModelKeys
from platform_assets.lib.resources import MLflowResource, PlatformPathsResource
from platform_assets.ml.declaration import declared
from tests.models import synthetic
from tests.models.feast_store import LocalFeastResource, build_store

MODEL = declared("delay").spec
DELAY = ModelKeys("delay")
TRAIN_START, TRAIN_END, HOLDOUT = "2013-01", "2013-02", "2013-03"
# Small and quick: a few thousand rows train in well under a second per epoch.
FAST_TRAINING = {
    "max_epochs": 12,
    "patience": 3,
    "batch_size": 256,
    "validation_days": 10,
    "ensemble_size": 2,
}


@pytest.fixture(scope="session")
def synthetic_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Feature tables, labelled events and the training set of Jan-Feb, built once."""
    home = tmp_path_factory.mktemp("world")
    synthetic.write_world(home)
    store = build_store(home / "warehouse" / "features", home / "feast")
    synthetic.label_world(home, store, MODEL.feature_service)
    synthetic.write_training_set(home, store, MODEL.feature_service, TRAIN_START, TRAIN_END)
    synthetic.write_validated_lineage(home)
    shutil.rmtree(home / "feast")
    return home


@pytest.fixture
def home(tmp_path: Path, synthetic_world: Path) -> Path:
    target = tmp_path / "platform"
    shutil.copytree(synthetic_world, target)
    return target


@pytest.fixture
def resources(home: Path) -> dict:
    return {
        "platform": PlatformPathsResource(home=str(home)),
        "mlflow_store": MLflowResource(home=str(home)),
        "feast": LocalFeastResource(
            feature_dir=str(home / "warehouse" / "features"), repo_dir=str(home / "feast")
        ),
    }


def lifecycle(key_prefix: str) -> ModelLifecycle:
    """The component a model's defs.yaml declares, as `dg list defs` loads it."""
    return ModelLifecycle(**declared(key_prefix).model_dump())


def model_assets(key_prefix: str) -> dict[str, dg.AssetsDefinition]:
    """A declared model's assets by their last key part: training_set, model, evaluation, ..."""
    return {a.key.path[-1]: a for a in lifecycle(key_prefix).build_assets()}


def training_config(**overrides: object) -> dict:
    return {"start_month": TRAIN_START, "end_month": TRAIN_END, **FAST_TRAINING, **overrides}


def run_config(training: dict | None = None, evaluation: dict | None = None) -> dg.RunConfig:
    ops = {DELAY.op("model"): {"config": training or training_config()}}
    if evaluation is not None:
        ops[DELAY.op("evaluation")] = {"config": evaluation}
    return dg.RunConfig(ops=ops)


def metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    [event] = [
        e
        for e in result.get_asset_materialization_events()
        if e.asset_key.to_user_string() == asset
    ]
    return {k: v.value for k, v in event.materialization.metadata.items()}
