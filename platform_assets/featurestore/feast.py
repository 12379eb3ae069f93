"""Reading features through Feast, by the names the callers import: a feature service's parts
(`services`), its point-in-time join (`historical`) and its online reads (`online`).

Every model's training set, evaluation and batch scoring call `historical_features`, so training and
scoring see features the same way; the model server reads the same service through `OnlineReader`.
Both read the views, TTLs and sources from Feast's registry and read Feast's stores, but skip the
parts of Feast that cost more than the work (see `historical._asof_join` and `OnlineReader`).
Feast itself is imported by the caller's FeatureStore.
"""

from __future__ import annotations

from platform_assets.featurestore.historical import historical_features
from platform_assets.featurestore.online import OnlineReader, python_value
from platform_assets.featurestore.services import (
    service_features,
    service_join_keys,
    service_views,
    timestamp_column,
)

__all__ = [
    "OnlineReader",
    "historical_features",
    "python_value",
    "service_features",
    "service_join_keys",
    "service_views",
    "timestamp_column",
]
