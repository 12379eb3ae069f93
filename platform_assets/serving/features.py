"""Feature rows for requested flights from Feast's online store, through the model's feature service.

The flight facts come from the request (as the warehouse derives them: route, scheduled hour and
weekday); the rest is the feature service's latest values per entity. A value the store does not
have (an unknown tail number, no weather row yet) is null: the model's own missing-value handling
applies, and the flight's `missing` lists the features it lacked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from operator import attrgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from platform_assets.core.feast import OnlineReader
from platform_assets.core.paths import PlatformPaths
from platform_assets.serving.instances import Flight

if TYPE_CHECKING:
    import pandas as pd
    from feast import FeatureStore

# The entity key Feast is given for a flight without a tail number: no plane has it, so the plane's
# features come back null, as the offline point-in-time join gives them for a null key.
NO_TAILNUM = "__no_tailnum__"
FLIGHT_FACTS = ("flight_id", "origin", "dest", "route", "carrier", "tailnum", "distance",
                "sched_dep_hour", "sched_dep_dow")


@dataclass(frozen=True)
class FeatureRows:
    columns: dict[str, list[Any]]
    """Flight facts and feature values by column, one value per flight, in request order."""
    missing: list[list[str]]
    """Per flight, the service's features the online store had no value for."""
    features: list[str]

    def __len__(self) -> int:
        return len(self.missing)

    def row(self, i: int, names: Sequence[str]) -> dict[str, Any]:
        return {name: self.columns[name][i] for name in names}

    def frame(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame(self.columns)


class OnlineFeatures:
    """Reads one feature service's online values; the store and service are fixed at start."""

    def __init__(self, store: FeatureStore, feature_service: str) -> None:
        self.store = store
        self.service_name = feature_service
        self.reader = OnlineReader(store, feature_service)
        self.features = self.reader.features
        self.join_keys = self.reader.join_keys

    def entity_keys(self, flights: Sequence[Flight]) -> dict[str, list[Any]]:
        """The service's join key columns for the flights, as the online store is asked for them."""
        return self._keys(_fact_columns(flights))

    def _keys(self, facts: dict[str, list[Any]]) -> dict[str, list[Any]]:
        return {k: [NO_TAILNUM if v is None else v for v in facts[k]] for k in self.join_keys}

    def lookup(self, flights: Sequence[Flight]) -> FeatureRows:
        columns = _fact_columns(flights)
        # One online-store read per feature view for every flight of the request.
        values = self.reader.read(self._keys(columns))
        columns |= values
        missing: list[list[str]] = [[] for _ in flights]
        for name in self.features:
            column = values[name]
            if None in column:
                for i, value in enumerate(column):
                    if value is None:
                        missing[i].append(name)
        return FeatureRows(columns=columns, missing=missing, features=list(self.features))


_FACTS = attrgetter(*FLIGHT_FACTS)


def _fact_columns(flights: Sequence[Flight]) -> dict[str, list[Any]]:
    rows = [_FACTS(f) for f in flights]
    return {name: [row[i] for row in rows] for i, name in enumerate(FLIGHT_FACTS)}


def feature_store(repo: Path, fs_yaml: str, paths: PlatformPaths) -> FeatureStore:
    """The Feast store of a repository folder, for the PLATFORM_HOME its yaml reads."""
    from feast import FeatureStore

    # feature_store.yaml and the repository's data sources read PLATFORM_HOME (and FEATURES_ROOT).
    paths.export_env()
    return FeatureStore(repo_path=str(repo), fs_yaml_file=repo / fs_yaml)
