"""A small world the model server can run against: the synthetic flights of tests/models with the
warehouse's flight keys and UTC departure times, validated flight rows a request can be built from,
a real Feast store with online views (SQLite) serving both models' feature services, two registered
versions of the delay model (champion and challenger) and one of the cancellation model (champion).

The server runs with `--models-dir` holding the repository's two declarations, copied unchanged.

Built once per session by the conftest, and by benchmarks/serving.py."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl
from feast import Entity, FeatureService, FeatureStore, FeatureView, FileSource, ValueType

from platform_assets.lib.models.keys import ModelKeys
from platform_assets.lib.resources import MLflowResource
from platform_assets.ml.declaration import MODELS_DIR, declared
from platform_assets.ml.params import TrainParams
from platform_assets.ml.registry import CHAMPION
from platform_assets.paths import PlatformPaths, write_parquet_atomic
from platform_assets.serving.rollout import CHALLENGER
from tests.models import synthetic
from tests.models.feast_store import VIEWS

DECLARATION = declared("delay")
MODEL = DECLARATION.spec
CANCELLATION_DECLARATION = declared("cancellation")
CANCELLATION = CANCELLATION_DECLARATION.spec
# The file stem the delay/training_set asset writes under (delay_training_set).
TRAINING_SET = ModelKeys(DECLARATION.key_prefix).name("training_set")
CANCELLATION_TRAINING_SET = ModelKeys(CANCELLATION_DECLARATION.key_prefix).name("training_set")
FS_YAML = "feature_store.yaml"
TRAINING = {"max_epochs": 3, "min_epochs": 1, "patience": 2, "batch_size": 256, "validation_days": 10}


@dataclass(frozen=True)
class World:
    home: Path
    feature_repo: Path

    @property
    def paths(self) -> PlatformPaths:
        return PlatformPaths(self.home)

    @property
    def tracking_uri(self) -> str:
        return f"sqlite:///{self.paths.mlflow_dir / 'mlflow.db'}"

    @property
    def training_set(self) -> Path:
        """The Jan-Feb training set of the delay model, where the delay/training_set asset writes it."""
        return self.paths.training_set_file("2013-01", "2013-02", TRAINING_SET)

    @property
    def cancellation_training_set(self) -> Path:
        return self.paths.training_set_file("2013-01", "2013-02", CANCELLATION_TRAINING_SET)

    @property
    def models_dir(self) -> Path:
        """A declarations folder with the two models' defs.yaml (see `served_models_dir`)."""
        return self.home / "served_models"

    def store(self) -> FeatureStore:
        return FeatureStore(repo_path=str(self.feature_repo))


def served_models_dir(world: World) -> Path:
    """Copy the repository's two declarations, unchanged, into the world's own declarations folder
    (a model a copied project adds would have nothing registered here)."""
    for declaration in (DECLARATION, CANCELLATION_DECLARATION):
        target = world.models_dir / declaration.key_prefix / "defs.yaml"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(MODELS_DIR / declaration.key_prefix / "defs.yaml", target)
    return world.models_dir


def _warehouse_keys(home: Path) -> None:
    """Give the synthetic events what dbt gives real ones: the flight_id of stg_flights, and the
    scheduled departure (drawn as New York time) in UTC; write the validated flight rows behind them."""
    paths = PlatformPaths(home)
    source = paths.feature_table("flight_training_events")
    events = pl.read_parquet(source)
    local = pl.col("event_timestamp").dt.replace_time_zone(None).dt.replace_time_zone("America/New_York")
    events = events.with_columns(
        local.alias("local"), pl.col("flight_id").str.slice(1).cast(pl.Int64).alias("flight")
    ).with_columns(
        pl.col("local").dt.year().cast(pl.Int64).alias("year"),
        pl.col("local").dt.month().cast(pl.Int64).alias("month"),
        pl.col("local").dt.day().cast(pl.Int64).alias("day"),
        (
            pl.col("local").dt.hour().cast(pl.Int64) * 100
            + pl.col("local").dt.minute().cast(pl.Int64)
        ).alias("sched_dep_time"),
        pl.col("local").dt.hour().cast(pl.Int64).alias("hour"),
        pl.col("local").dt.minute().cast(pl.Int64).alias("minute"),
        pl.col("local").dt.truncate("1h").dt.convert_time_zone("UTC").alias("time_hour"),
        pl.col("local").dt.convert_time_zone("UTC").alias("event_timestamp"),
    ).with_columns(
        pl.format(
            "{}-{}-{}-{}-{}-{}-{}",
            pl.col("year"),
            pl.col("month").cast(pl.String).str.zfill(2),
            pl.col("day").cast(pl.String).str.zfill(2),
            "carrier",
            "flight",
            "origin",
            pl.col("sched_dep_time").cast(pl.String).str.zfill(4),
        ).alias("flight_id"),
        (
            (pl.col("local") + pl.duration(minutes=150)).dt.hour().cast(pl.Int64) * 100
            + pl.col("local").dt.minute().cast(pl.Int64)
        ).alias("sched_arr_time"),
    )
    validated = events.select(
        "year", "month", "day", "sched_dep_time", "sched_arr_time", "carrier", "flight", "tailnum",
        "origin", "dest", "distance", "hour", "minute", "time_hour", "flight_month",
        pl.lit("synthetic").alias("_source_file"), pl.lit("synthetic").alias("_source_sha256"),
    )
    for (month,), part in validated.group_by(["flight_month"]):
        write_parquet_atomic(part.drop("flight_month"), paths.validated_file("flights", month))
    write_parquet_atomic(
        events.drop("local", "flight", "year", "month", "day", "sched_dep_time", "hour", "minute",
                    "time_hour", "sched_arr_time").sort(["event_timestamp", "flight_id"]),
        source,
    )


def build_store(feature_dir: Path, repo_dir: Path) -> FeatureStore:
    """tests/models' feature views and services, online, with a feature_store.yaml a server reads."""
    repo_dir.mkdir(parents=True, exist_ok=True)
    (repo_dir / FS_YAML).write_text(
        "project: delay_serving_test\n"
        f"registry: {repo_dir / 'registry.db'}\n"
        "provider: local\n"
        "offline_store:\n    type: duckdb\n"
        f"online_store:\n    type: sqlite\n    path: {repo_dir / 'online.db'}\n"
        "entity_key_serialization_version: 3\n"
    )
    store = FeatureStore(repo_path=str(repo_dir))
    entities, views = [], []
    for view_name, (table, key, ttl) in VIEWS.items():
        entity = Entity(name=key, join_keys=[key], value_type=ValueType.STRING)
        source = FileSource(
            name=table, path=str(feature_dir / f"{table}.parquet"), timestamp_field="event_timestamp"
        )
        entities.append(entity)
        views.append(FeatureView(name=view_name, entities=[entity], ttl=ttl, source=source, online=True))
    services = [FeatureService(name=spec.feature_service, features=views) for spec in (MODEL, CANCELLATION)]
    store.apply([*entities, *views, *services])
    return store


def register_versions(world: World, seeds: tuple[int, ...] = (13, 29)) -> list[str]:
    """Train the delay model on Jan-Feb once per seed and register each; the first is champion,
    the second challenger."""
    import mlflow

    from platform_assets.ml.pyfunc import log_model
    from platform_assets.ml.training import fit

    frame = pl.read_parquet(world.training_set)
    store = MLflowResource(home=str(world.home))
    experiment = store.activate(MODEL.experiment)
    client = store.client()
    versions = []
    for seed in seeds:
        result = fit(frame, TrainParams(**TRAINING, seed=seed), MODEL.columns)
        with mlflow.start_run(experiment_id=experiment, run_name=f"serving world seed {seed}"):
            info = log_model(result, frame.head(50), registered_name=MODEL.name)
        versions.append(str(info.registered_model_version))
    client.set_registered_model_alias(MODEL.name, CHAMPION, versions[0])
    if len(versions) > 1:
        client.set_registered_model_alias(MODEL.name, CHALLENGER, versions[1])
    return versions


def write_cancellation_training_set(world: World) -> Path:
    """The cancellation model's Jan-Feb training set: every flight with its cancellation outcome."""
    from platform_assets.events import flight_events
    from platform_assets.featurestore.historical import historical_features

    events = flight_events(world.paths, ("2013-01", "2013-02"), CANCELLATION.label)
    frame = pl.from_pandas(historical_features(world.store(), events.to_pandas(), CANCELLATION.feature_service))
    write_parquet_atomic(frame, world.cancellation_training_set)
    return world.cancellation_training_set


def register_cancellation(world: World, seed: int = 5) -> str:
    """Train the cancellation model on Jan-Feb and make it champion."""
    import mlflow

    from platform_assets.ml.pyfunc import log_model
    from platform_assets.ml.training import fit

    frame = pl.read_parquet(write_cancellation_training_set(world))
    store = MLflowResource(home=str(world.home))
    experiment = store.activate(CANCELLATION.experiment)
    result = fit(frame, TrainParams(**TRAINING, seed=seed), CANCELLATION.columns)
    with mlflow.start_run(experiment_id=experiment, run_name=f"serving world seed {seed}"):
        info = log_model(result, frame.head(50), registered_name=CANCELLATION.name)
    version = str(info.registered_model_version)
    store.client().set_registered_model_alias(CANCELLATION.name, CHAMPION, version)
    return version


def build_world(home: Path) -> World:
    synthetic.write_world(home)
    _warehouse_keys(home)
    world = World(home=home, feature_repo=home / "feature_repo")
    store = build_store(world.paths.feature_tables, world.feature_repo)
    synthetic.label_world(home, store, MODEL.feature_service)
    written = synthetic.write_training_set(home, store, MODEL.feature_service, "2013-01", "2013-02", TRAINING_SET)
    assert written == world.training_set
    register_versions(world)
    register_cancellation(world)
    served_models_dir(world)
    np.random.seed(0)
    return world


class WorldFeastResource(dg.ConfigurableResource):
    """The features group's FeastResource interface over the world's repository."""

    repo_dir: str

    def store(self) -> FeatureStore:
        return FeatureStore(repo_path=self.repo_dir)
