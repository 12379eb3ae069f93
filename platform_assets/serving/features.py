"""Feature rows for requested flights from Feast's online store, through the model's feature service.

The flight facts come from the request (as the warehouse derives them: route, scheduled hour and
weekday); the rest is the feature service's latest values per entity. A value the store does not
have (an unknown tail number, no weather row yet) is null: the model's own missing-value handling
applies, and the flight's `missing` lists the features it lacked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from platform_assets.core.feast import service_features, service_join_keys
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
        self.service = store.get_feature_service(feature_service)
        self.features = service_features(store, feature_service)
        self.join_keys = service_join_keys(store, feature_service)

    def entity_rows(self, flights: Sequence[Flight]) -> list[dict[str, Any]]:
        facts = [_facts(f) for f in flights]
        return [
            {k: (row[k] if row[k] is not None else NO_TAILNUM) for k in self.join_keys}
            for row in facts
        ]

    def lookup(self, flights: Sequence[Flight]) -> FeatureRows:
        values = _columns(
            self.store.get_online_features(features=self.service, entity_rows=self.entity_rows(flights))
        )
        facts = [_facts(f) for f in flights]
        columns = {name: [row[name] for row in facts] for name in FLIGHT_FACTS}
        columns |= {name: values[name] for name in self.features}
        missing = [
            [name for name in self.features if values[name][i] is None] for i in range(len(flights))
        ]
        return FeatureRows(columns=columns, missing=missing, features=list(self.features))


# Value kinds read as they are; OnlineResponse.to_dict converts these to the same Python values
# but through a general converter that costs more than the lookup itself for 100 rows.
_SCALARS = frozenset({"double_val", "float_val", "int32_val", "int64_val", "bool_val", "string_val"})


def _columns(response: Any) -> dict[str, list[Any]]:
    from feast.type_map import feast_value_type_to_python_type

    out = {}
    for name, vector in zip(response.proto.metadata.feature_names.val, response.proto.results):
        column = []
        for value in vector.values:
            kind = value.WhichOneof("val")
            if kind is None:
                column.append(None)
            elif kind in _SCALARS:
                column.append(getattr(value, kind))
            else:
                column.append(feast_value_type_to_python_type(value))
        out[name] = column
    return out


def _facts(flight: Flight) -> dict[str, Any]:
    return {
        "flight_id": flight.flight_id,
        "origin": flight.origin,
        "dest": flight.dest,
        "route": flight.route,
        "carrier": flight.carrier,
        "tailnum": flight.tailnum,
        "distance": flight.distance,
        "sched_dep_hour": flight.sched_dep_hour,
        "sched_dep_dow": flight.sched_dep_dow,
    }


def feature_store(repo: Path, fs_yaml: str, paths: PlatformPaths) -> FeatureStore:
    """The Feast store of a repository folder, for the PLATFORM_HOME its yaml reads."""
    from feast import FeatureStore

    # feature_store.yaml and the repository's data sources read PLATFORM_HOME (and FEATURES_ROOT).
    paths.export_env()
    return FeatureStore(repo_path=str(repo), fs_yaml_file=repo / fs_yaml)
