"""A real Feast store over a folder of feature parquet files, standing in for the features group's repo.

It serves the feature service the model reads (delay_model_v1) with the same views: weather by origin
(hourly), carrier and route (daily), plane (static)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import dagster as dg
from feast import (
    Entity,
    FeatureService,
    FeatureStore,
    FeatureView,
    FileSource,
    RepoConfig,
    ValueType,
)

from platform_assets.ml.declaration import declared

DELAY, CANCELLATION = declared("delay").spec, declared("cancellation").spec

# Both models' services read the same four views here.
FEATURE_SERVICES = (DELAY.feature_service, CANCELLATION.feature_service)

VIEWS = {  # view name: (table file, join key, ttl)
    "origin_weather": ("feat_origin_weather", "origin", timedelta(hours=3)),
    "carrier_daily": ("feat_carrier_daily", "carrier", timedelta(days=2)),
    "route_daily": ("feat_route_daily", "route", timedelta(days=2)),
    "plane": ("feat_plane", "tailnum", timedelta(days=800)),
}


def local_repo_config(repo_dir: Path, project: str) -> RepoConfig:
    """A Feast repository in `repo_dir`: file registry, DuckDB offline store, SQLite online store."""
    return RepoConfig(
        project=project,
        registry=str(repo_dir / "registry.db"),
        provider="local",
        offline_store={"type": "duckdb"},
        online_store={"type": "sqlite", "path": str(repo_dir / "online.db")},
        entity_key_serialization_version=3,
        repo_path=str(repo_dir),
    )


def build_store(feature_dir: Path, repo_dir: Path) -> FeatureStore:
    repo_dir.mkdir(parents=True, exist_ok=True)
    store = FeatureStore(config=local_repo_config(repo_dir, "delay_test"))
    entities, views = [], []
    for view_name, (table, key, ttl) in VIEWS.items():
        entity = Entity(name=key, join_keys=[key], value_type=ValueType.STRING)
        source = FileSource(
            name=table,
            path=str(feature_dir / f"{table}.parquet"),
            timestamp_field="event_timestamp",
        )
        entities.append(entity)
        views.append(
            FeatureView(name=view_name, entities=[entity], ttl=ttl, source=source, online=False)
        )
    services = [FeatureService(name=name, features=views) for name in FEATURE_SERVICES]
    store.apply([*entities, *views, *services])
    return store


class LocalFeastResource(dg.ConfigurableResource):
    """Same interface as the features group's FeastResource: `.store()` returns a FeatureStore."""

    feature_dir: str
    repo_dir: str

    def store(self) -> FeatureStore:
        return build_store(Path(self.feature_dir), Path(self.repo_dir))
