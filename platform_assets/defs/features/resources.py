"""The Feast feature store as a Dagster resource, and the one point-in-time join everyone uses."""

import functools
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pyarrow as pa
from feast import FeatureService, FeatureStore
from pydantic import Field

from platform_assets.lib import constants, settings
from platform_assets.lib.settings import REPO_ROOT

FEATURE_REPO_DIR = REPO_ROOT / "feature_repo"

# Row order of the caller's entity frame; Feast's join returns rows in no particular order.
_ROW = "__entity_row"


class FeastResource(dg.ConfigurableResource):
    """Feast feature store defined in feature_repo/, state under PLATFORM_HOME/feast."""

    repo_path: str = Field(
        default=str(FEATURE_REPO_DIR),
        description="Feast repository folder (feature_store.yaml and the definition files).",
    )
    fs_yaml: str = Field(
        default=constants.FEATURE_STORE_YAML,
        description="Configuration file in repo_path: feature_store.yaml (SQLite online store) "
        "or feature_store.redis.yaml (Redis).",
    )

    def home(self) -> Path:
        """PLATFORM_HOME the store reads and writes; exported so feature_store.yaml can expand it."""
        return settings.current().home

    def store(self) -> FeatureStore:
        """This process's FeatureStore for the current PLATFORM_HOME, built once and reused."""
        home = self.home()
        return _cached_store(str(Path(self.repo_path).resolve()), self.fs_yaml, str(home))


@functools.cache
def _cached_store(repo_path: str, fs_yaml: str, home: str) -> FeatureStore:
    # home is part of the key only: feature_store.yaml reads it from the environment. Feast
    # creates neither the registry's nor the online store's folder.
    (Path(home) / "feast").mkdir(parents=True, exist_ok=True)
    return FeatureStore(repo_path=repo_path, fs_yaml_file=Path(repo_path) / fs_yaml)


def service_features(store: FeatureStore, service: str = constants.FEATURE_SERVICE) -> list[str]:
    """Plain names of the service's features, in the service's order."""
    fs = store.get_feature_service(service)
    return [f.name for p in fs.feature_view_projections for f in p.features]


def service_join_keys(store: FeatureStore, service: str = constants.FEATURE_SERVICE) -> list[str]:
    """Entity columns an entity frame needs for the service, e.g. origin, carrier, route, tailnum."""
    keys: list[str] = []
    for projection in store.get_feature_service(service).feature_view_projections:
        for key in store.get_feature_view(projection.name).join_keys:
            if key not in keys:
                keys.append(key)
    return keys


def _nullable_ints(arrow_type: pa.DataType) -> pd.api.extensions.ExtensionDtype | None:
    # Integer features with nulls must not turn into floats on the way to pandas.
    return {
        pa.int8(): pd.Int8Dtype(),
        pa.int16(): pd.Int16Dtype(),
        pa.int32(): pd.Int32Dtype(),
        pa.int64(): pd.Int64Dtype(),
    }.get(arrow_type)


def historical_features(
    store: FeatureStore, entity_df: pd.DataFrame, service: str = constants.FEATURE_SERVICE
) -> pd.DataFrame:
    """Point-in-time join of the service's features onto entity_df (training and batch scoring).

    entity_df needs `event_timestamp` (the prediction time, UTC) and the service's join keys.
    Returns every column of entity_df, in its row order, followed by the features under their plain
    names: a feature comes from the latest row at or before event_timestamp and within the view's
    TTL, else it is null. Integer features keep nullable integer dtypes.
    """
    required = ["event_timestamp", *service_join_keys(store, service)]
    missing = [c for c in required if c not in entity_df.columns]
    if missing:
        raise ValueError(f"entity_df lacks column(s) {missing} needed by feature service {service!r}")
    frame = entity_df.reset_index(drop=True).assign(**{_ROW: np.arange(len(entity_df))})
    frame["event_timestamp"] = pd.to_datetime(frame["event_timestamp"], utc=True)
    feature_service: FeatureService = store.get_feature_service(service)
    table = store.get_historical_features(entity_df=frame, features=feature_service).to_arrow()
    joined = table.to_pandas(types_mapper=_nullable_ints)
    if len(joined) != len(frame):
        raise AssertionError(f"point-in-time join returned {len(joined)} rows for {len(frame)} entity rows")
    joined = joined.sort_values(_ROW, kind="stable").reset_index(drop=True)
    columns = [*entity_df.columns, *service_features(store, service)]
    return joined[columns]
