"""Rows the model scores: one per flight, with features fetched through Feast as of its departure."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import polars as pl

from platform_assets.lib.paths import PlatformPaths

EVENTS_TABLE = "flight_training_events"
LABEL = "is_delayed"
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
ENTITY_COLUMNS = (*FLIGHT_COLUMNS, LABEL)


def flight_events(paths: PlatformPaths, months: Sequence[str]) -> pl.DataFrame:
    """Every validated flight of the months, cancelled ones included (their label is null)."""
    source = paths.feature_tables / f"{EVENTS_TABLE}.parquet"
    if not source.exists():
        raise FileNotFoundError(
            f"{source} is missing: build the warehouse for {', '.join(months)} first"
        )
    frame = pl.read_parquet(source).filter(pl.col("flight_month").is_in(list(months)))
    return frame.select([c for c in ENTITY_COLUMNS if c in frame.columns]).sort(
        ["event_timestamp", "flight_id"]
    )


def point_in_time_features(store: Any, events: pl.DataFrame, feature_service: str) -> pd.DataFrame:
    """Feast's historical retrieval: each flight gets the feature values known at its departure."""
    from platform_assets.defs.features.resources import historical_features

    return historical_features(store, events.to_pandas(), feature_service)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def raw_lineage(paths: PlatformPaths, months: Sequence[str]) -> str:
    """The raw source files (and their hashes) behind the validated flights of the months, as JSON."""
    sources: set[tuple[str, str]] = set()
    for month in months:
        validated = paths.validated_file("flights", month)
        if validated.exists():
            frame = pl.read_parquet(validated, columns=["_source_file", "_source_sha256"]).unique()
            sources.update((Path(f).name, h) for f, h in frame.iter_rows())
    return json.dumps([{"file": f, "sha256": h} for f, h in sorted(sources)])
