"""A feature service's parts as Feast's registry names them: its views, feature names and join keys,
and the column naming the feature row a point-in-time join used.

What the historical reads (`historical`), the online reader (`online`) and the lineage
(`lineage`) share; it imports none of them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from feast import FeatureStore, FeatureView


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


def timestamp_column(view: str) -> str:
    """Column holding the event timestamp of the `view` row a point-in-time join used."""
    return f"{view}_timestamp"
