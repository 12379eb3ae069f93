"""The flights models predict on: one row per flight from the dbt table `flight_training_events`,
with the entity keys Feast joins on, the flight facts known before departure, and the outcomes
(labels) that later arrive. Models pick their label among OUTCOMES; nothing here is a feature
that is known only after departure."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from platform_assets.paths import PlatformPaths

if TYPE_CHECKING:
    import polars as pl

EVENTS_TABLE = "flight_training_events"
# dbt feature tables (parquet) behind the Feast feature views.
FEATURE_TABLES = ("feat_origin_weather", "feat_carrier_daily", "feat_route_daily", "feat_plane")
# Everything Feast joins on, plus the flight facts that are known before departure.
FLIGHT_COLUMNS = (
    "flight_id",
    "event_timestamp",
    "flight_month",
    "origin",
    "dest",
    "route",
    "carrier",
    "tailnum",
    "distance",
    "sched_dep_hour",
    "sched_dep_dow",
)
# Outcomes of a flight, known only after it: labels of the models, never features.
OUTCOMES = ("arr_delay", "is_delayed", "is_cancelled")
# Identifiers and everything known only after departure never become features.
NON_FEATURES = frozenset(
    {
        "flight_id",
        "event_timestamp",
        "flight_month",
        "tailnum",
        "route",
        *OUTCOMES,
        "dep_delay",
        "dep_time",
        "arr_time",
        "air_time",
    }
)


def flight_events(paths: PlatformPaths, months: Sequence[str], label: str) -> pl.DataFrame:
    """Every validated flight of the months with the label's column (null where the outcome is unknown)."""
    import polars as pl

    source = paths.feature_table(EVENTS_TABLE)
    if not source.exists():
        raise FileNotFoundError(
            f"{source} is missing: build the warehouse for {', '.join(months)} first"
        )
    frame = pl.read_parquet(source).filter(pl.col("flight_month").is_in(list(months)))
    return frame.select([c for c in (*FLIGHT_COLUMNS, label) if c in frame.columns]).sort(
        ["event_timestamp", "flight_id"]
    )


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
