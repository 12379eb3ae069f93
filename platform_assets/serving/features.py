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

from platform_assets.featurestore.online import OnlineReader
from platform_assets.paths import PlatformPaths
from platform_assets.serving.instances import Flight

if TYPE_CHECKING:
    import pandas as pd
    from feast import FeatureStore

# The entity key Feast is given for a flight without a tail number: no plane has it, so the plane's
# features come back null, as the offline point-in-time join gives them for a null key.
NO_TAILNUM = "__no_tailnum__"
# The request's columns before the features, in this order (_fact_columns spells them out).
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
        return {k: _key_column(facts[k]) for k in self.join_keys}

    def lookup(self, flights: Sequence[Flight]) -> FeatureRows:
        columns = _fact_columns(flights)
        # One online-store read per feature view for every flight of the request.
        values = self.reader.read(self._keys(columns))
        columns |= values
        return FeatureRows(
            columns=columns, missing=_missing(values, self.features, len(flights)), features=list(self.features)
        )


def _key_column(facts: list[Any]) -> list[Any]:
    # A fact column without None is the key column itself (the reader only reads it). all() is a C
    # loop of truth tests, cheaper than `None in` for strings; a column it fails (a None, or an
    # empty string) is searched for None.
    if all(facts) or None not in facts:
        return facts
    return [NO_TAILNUM if v is None else v for v in facts]


def _missing(values: dict[str, list[Any]], features: Sequence[str], rows: int) -> list[list[str]]:
    """Per row, the features whose value is None, in the service's order."""
    if rows == 1:
        return [[name for name in features if values[name][0] is None]]
    missing: list[list[str]] = [[] for _ in range(rows)]
    for name in features:
        column = values[name]
        # Most columns are numbers (int, float, bool) without a None: sum() runs through them in C,
        # about 3x faster than `None in column`, and fails at a None (number + None is a TypeError),
        # as at a str, bytes, list or datetime, whose columns take the exact search below. Python
        # steps value by value only through a column that holds a None.
        try:
            sum(column)
            continue
        except Exception:  # TypeError for a None; whatever else, the exact search decides
            pass
        if None in column:
            for i, value in enumerate(column):
                if value is None:
                    missing[i].append(name)
    return missing


def _fact_columns(flights: Sequence[Flight]) -> dict[str, list[Any]]:
    """FLIGHT_FACTS by column, in that order: one comprehension per attribute, whose attribute reads
    Python specialises, instead of a tuple per flight and a transposition."""
    return {
        "flight_id": [f.flight_id for f in flights],
        "origin": [f.origin for f in flights],
        "dest": [f.dest for f in flights],
        "route": [f.route for f in flights],
        "carrier": [f.carrier for f in flights],
        "tailnum": [f.tailnum for f in flights],
        "distance": [f.distance for f in flights],
        "sched_dep_hour": [f.sched_dep_hour for f in flights],
        "sched_dep_dow": [f.sched_dep_dow for f in flights],
    }


def feature_store(repo: Path, fs_yaml: str, paths: PlatformPaths) -> FeatureStore:
    """The Feast store of a repository folder, for the PLATFORM_HOME its yaml reads."""
    from feast import FeatureStore

    # feature_store.yaml and the repository's data sources read PLATFORM_HOME (and FEATURES_ROOT).
    paths.export_env()
    return FeatureStore(repo_path=str(repo), fs_yaml_file=repo / fs_yaml)
