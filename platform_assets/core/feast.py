"""Reading features through Feast: a feature service's names, join keys and point-in-time join.

Every model's training set, evaluation and batch scoring call `historical_features`, so training and
scoring see features the same way. Feast itself is imported by the caller's FeatureStore.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    import pyarrow as pa
    from feast import FeatureStore, FeatureView

# Row order of the caller's entity frame; Feast's join returns rows in no particular order.
_ROW = "__entity_row"


def service_views(store: FeatureStore, service: str) -> list[FeatureView]:
    """The feature views a service reads."""
    projections = store.get_feature_service(service).feature_view_projections
    return [store.get_feature_view(p.name) for p in projections]


def service_features(store: FeatureStore, service: str) -> list[str]:
    """Plain names of the service's features, in the service's order."""
    fs = store.get_feature_service(service)
    return [f.name for p in fs.feature_view_projections for f in p.features]


def service_join_keys(store: FeatureStore, service: str) -> list[str]:
    """Entity columns an entity frame needs for the service, e.g. origin, carrier, route, tailnum."""
    keys: list[str] = []
    for projection in store.get_feature_service(service).feature_view_projections:
        for key in store.get_feature_view(projection.name).join_keys:
            if key not in keys:
                keys.append(key)
    return keys


def _nullable_ints(arrow_type: pa.DataType) -> pd.api.extensions.ExtensionDtype | None:
    import pyarrow as pa

    # Integer features with nulls must not turn into floats on the way to pandas.
    return {
        pa.int8(): pd.Int8Dtype(),
        pa.int16(): pd.Int16Dtype(),
        pa.int32(): pd.Int32Dtype(),
        pa.int64(): pd.Int64Dtype(),
    }.get(arrow_type)


def historical_features(
    store: FeatureStore, entity_df: pd.DataFrame, service: str
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
    feature_service = store.get_feature_service(service)
    table = store.get_historical_features(entity_df=frame, features=feature_service).to_arrow()
    joined = table.to_pandas(types_mapper=_nullable_ints)
    if len(joined) != len(frame):
        raise AssertionError(f"point-in-time join returned {len(joined)} rows for {len(frame)} entity rows")
    joined = joined.sort_values(_ROW, kind="stable").reset_index(drop=True)
    columns = [*entity_df.columns, *service_features(store, service)]
    return joined[columns]
