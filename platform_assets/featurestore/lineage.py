"""Per-prediction lineage: which feature row (by its timestamp) each view gave each prediction, and
which raw files and validated partitions each model version was trained from.

With these two, "which raw files and rows produced this prediction" is one DuckDB query over
PLATFORM_HOME (README, "Lineage of a prediction").
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

from platform_assets.featurestore.services import service_views, timestamp_column
from platform_assets.paths import PlatformPaths

if TYPE_CHECKING:
    import polars as pl
    from feast import FeatureStore


def feature_timestamps(store: FeatureStore, service: str, entities: pl.DataFrame) -> pl.DataFrame:
    """For each view of the service, the event_timestamp of the row a point-in-time join takes for
    each entity row, in the entities' order: the newest at or before `event_timestamp` within the
    view's TTL (Feast's rule), null where there is none (the features are then missing too).

    `historical_features(..., feature_timestamps=True)` returns these from its own DuckDB join; this
    serves the stores where Feast joins, which does not return them."""
    import polars as pl

    rows = entities.select("event_timestamp", pl.int_range(pl.len()).alias("__row"))
    out = []
    for view in service_views(store, service):
        keys = list(view.join_keys)
        stamp = view.batch_source.timestamp_field
        table = (
            pl.read_parquet(view.batch_source.path, columns=[*keys, stamp])
            .rename({stamp: "__feature_ts"})
            .with_columns(pl.col("__feature_ts").dt.convert_time_zone("UTC"))
            .sort("__feature_ts")
        )
        left = entities.select(keys).with_columns(rows).with_columns(
            pl.col("event_timestamp").dt.convert_time_zone("UTC")
        ).sort("event_timestamp")
        # Both sides are sorted on the time columns; polars cannot check that within `by` groups.
        joined = left.join_asof(
            table, left_on="event_timestamp", right_on="__feature_ts", by=keys, strategy="backward",
            check_sortedness=False,
        )
        if view.ttl is not None and view.ttl.total_seconds() > 0:
            stale = pl.col("__feature_ts") < pl.col("event_timestamp") - pl.duration(seconds=int(view.ttl.total_seconds()))
            joined = joined.with_columns(pl.when(stale).then(None).otherwise(pl.col("__feature_ts")).alias("__feature_ts"))
        out.append(joined.sort("__row").select(pl.col("__feature_ts").alias(timestamp_column(view.name))))
    return pl.concat(out, how="horizontal") if out else pl.DataFrame()


# Raw files behind the feature tables: monthly ones per month, reference tables whole.
MONTHLY_RAW_TABLES = ("flights", "weather")
REFERENCE_RAW_TABLES = ("planes", "airports", "airlines")


def raw_partitions(paths: PlatformPaths, months: Sequence[str]) -> pl.DataFrame:
    """One row per validated partition file behind the months' features and raw file it was
    validated from (with its sha256): flights and weather per month, and the reference tables."""
    import polars as pl

    files = [(t, paths.validated_file(t, m)) for t in MONTHLY_RAW_TABLES for m in months]
    files += [(t, paths.validated_file(t)) for t in REFERENCE_RAW_TABLES]
    frames = [
        pl.read_parquet(f, columns=["_source_file", "_source_sha256"])
        .unique()
        .with_columns(pl.lit(table).alias("table"), pl.lit(str(f)).alias("validated_file"))
        for table, f in files
        if f.exists()
    ]
    return pl.concat(frames).rename({"_source_file": "raw_file", "_source_sha256": "raw_sha256"}).sort(
        "validated_file", "raw_file"
    )


def raw_files_json(partitions: pl.DataFrame) -> str:
    """The raw files of `raw_partitions` as JSON (the model version's `raw_files` tag): table, file
    name and sha256, once each."""
    from pathlib import Path

    rows = {(t, Path(f).name, h) for t, f, h in partitions.select("table", "raw_file", "raw_sha256").iter_rows()}
    return json.dumps([{"table": t, "file": f, "sha256": h} for t, f, h in sorted(rows)])


def raw_lineage(paths: PlatformPaths, months: Sequence[str]) -> str:
    """Every raw source file (and its sha256) behind the validated tables the months' features come
    from, as JSON: flights and weather of each month, and the reference tables."""
    return raw_files_json(raw_partitions(paths, months))


def write_model_lineage(
    paths: PlatformPaths, model: str, version: str, months: Sequence[str], training_data: str
) -> pl.DataFrame:
    """lake/lineage/model_versions/<model>/v<version>.parquet: the version's training set and the
    raw files and validated partitions behind it, one row per validated partition file."""
    import polars as pl

    from platform_assets.paths import write_parquet_atomic

    table = raw_partitions(paths, months).with_columns(
        pl.lit(model).alias("model_name"),
        pl.lit(version).alias("model_version"),
        pl.lit(training_data).alias("training_data_path"),
        pl.lit(json.dumps(list(months))).alias("training_months"),
    )
    write_parquet_atomic(table, paths.model_lineage_file(model, version))
    return table
