"""Replayed traffic: a month's flights sent to the model server before their scheduled departure.

The replay clock walks through the month's departures. Before a request leaves at clock time t,
every feature row with event_timestamp <= t (weather observed, a day's carrier and route rates
closed) is written to Feast's online store, and nothing later: no request can see a value from its
future, and the online value of a flight equals its offline point-in-time value. Flights whose
departures share one feature state (no row becomes known between them) go in one request.

    python -m platform_assets traffic --month 2013-12 [--url http://127.0.0.1:8080]
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from platform_assets.ml.declaration import declared
from platform_assets.paths import PlatformPaths

if TYPE_CHECKING:
    import polars as pl
    from feast import FeatureStore

INSTANCE_COLUMNS = (
    "year", "month", "day", "sched_dep_time", "sched_arr_time", "carrier", "flight", "tailnum",
    "origin", "dest", "distance", "hour", "minute", "time_hour",
)
MAX_BATCH = 100


def month_flights(paths: PlatformPaths, month: str) -> pl.DataFrame:
    """The month's validated flights as request instances, in departure order, with `departure`."""
    import polars as pl

    source = paths.validated_file("flights", month)
    if not source.exists():
        raise FileNotFoundError(f"{source} is missing: ingest and validate {month} first (make run)")
    frame = pl.read_parquet(source)
    lacking = [c for c in INSTANCE_COLUMNS if c not in frame.columns]
    if lacking:
        raise ValueError(f"{source}: columns {lacking} are missing (rule 'request instance columns')")
    time_hour = pl.col("time_hour").cast(pl.Datetime("us", "UTC"))
    return (
        frame.select(INSTANCE_COLUMNS)
        .with_columns(time_hour.alias("time_hour"))
        .with_columns((pl.col("time_hour") + pl.duration(minutes=pl.col("minute"))).alias("departure"))
        .sort(["departure", "carrier", "flight"])
    )


class FeatureClock:
    """Writes each feature view's rows to the online store once the clock reaches their time."""

    def __init__(self, store: FeatureStore, feature_service: str) -> None:
        import polars as pl

        from platform_assets.featurestore.feast import service_views

        self.store = store
        self.tables: dict[str, pl.DataFrame] = {}
        self.done: dict[str, int] = {}
        self.keys: dict[str, list[str]] = {}
        for view in service_views(store, feature_service):
            source = view.batch_source
            ts = source.timestamp_field
            columns = [*view.join_keys, ts, *(f.name for f in view.features)]
            table = pl.read_parquet(source.path, columns=columns).rename({ts: "event_timestamp"})
            self.tables[view.name] = table.with_columns(
                pl.col("event_timestamp").cast(pl.Datetime("us", "UTC"))
            ).sort("event_timestamp")
            self.done[view.name] = 0
            self.keys[view.name] = list(view.join_keys)
        self.rows_written = 0

    def next_change(self) -> datetime | None:
        """When the next not-yet-known feature row becomes known."""
        pending = [
            t["event_timestamp"][self.done[v]] for v, t in self.tables.items() if self.done[v] < t.height
        ]
        return min(pending) if pending else None

    def advance(self, until: datetime) -> int:
        """Write every row with event_timestamp <= until; before the first advance only each
        entity's latest such row (the online store keeps one value per entity)."""
        written = 0
        for view, table in self.tables.items():
            start = self.done[view]
            end = table["event_timestamp"].search_sorted(until, side="right")
            if end <= start:
                continue
            rows = table.slice(start, end - start)
            if start == 0:
                rows = rows.unique(subset=self.keys[view], keep="last", maintain_order=True)
            self.store.write_to_online_store(view, rows.to_pandas())
            self.done[view] = end
            written += rows.height
        self.rows_written += written
        return written


@dataclass
class Batch:
    clock: datetime
    instances: list[dict[str, Any]]


def batches(flights: pl.DataFrame, clock: FeatureClock, max_batch: int = MAX_BATCH) -> Iterator[Batch]:
    """Requests in departure order; the store is advanced to each request's clock before it is yielded."""
    rows = flights.to_dicts()
    i = 0
    while i < len(rows):
        now = rows[i]["departure"]
        clock.advance(now)
        change = clock.next_change()
        j = i
        while j < len(rows) and j - i < max_batch and (change is None or rows[j]["departure"] < change):
            j += 1
        yield Batch(now, [_instance(r) for r in rows[i:j]])
        i = j


def _instance(row: dict[str, Any]) -> dict[str, Any]:
    out = {c: row[c] for c in INSTANCE_COLUMNS}
    out["time_hour"] = row["time_hour"].strftime("%Y-%m-%dT%H:%M:%SZ")
    return out


@dataclass
class ReplayResult:
    flights: int = 0
    requests: int = 0
    failed: list[str] = field(default_factory=list)
    variants: dict[str, int] = field(default_factory=dict)
    feature_rows_written: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        shares = ", ".join(f"{k} {v} ({v / max(self.flights, 1):.1%})" for k, v in sorted(self.variants.items()))
        return (
            f"{self.flights} flights in {self.requests} requests, {len(self.failed)} failed, "
            f"{self.feature_rows_written} feature rows pushed, {self.seconds:.1f} s; answered by: {shares}"
        )


def replay(
    flights: pl.DataFrame,
    store: FeatureStore,
    url: str,
    feature_service: str,
    model_name: str,
) -> ReplayResult:
    """Send `flights` (as `month_flights` returns them) to the server at `url`, clock by clock."""
    import requests

    result = ReplayResult()
    clock = FeatureClock(store, feature_service)
    endpoint = f"{url.rstrip('/')}/v1/models/{model_name}:predict"
    started = time.perf_counter()
    with requests.Session() as session:
        for batch in batches(flights, clock):
            response = session.post(endpoint, json={"instances": batch.instances}, timeout=30)
            result.requests += 1
            result.flights += len(batch.instances)
            if response.status_code != 200:
                result.failed.append(f"{batch.clock}: HTTP {response.status_code} {response.text[:200]}")
                continue
            for detail in response.json()["details"]:
                result.variants[detail["variant"]] = result.variants.get(detail["variant"], 0) + 1
    result.feature_rows_written = clock.rows_written
    result.seconds = time.perf_counter() - started
    return result


def main(month: str, url: str, days: Sequence[int] | None = None, model: str = "delay") -> int:
    """The `traffic` command: replay `month` (optionally some days of it) against a running server's
    route of the declared model `model` (its key_prefix)."""
    import polars as pl

    from platform_assets.serving.features import feature_store
    from platform_assets.settings import FEATURE_REPO_DIR, settings

    current = settings()
    paths = PlatformPaths.from_settings(current)
    flights = month_flights(paths, month)
    if days:
        flights = flights.filter(pl.col("day").is_in(list(days)))
    store = feature_store(FEATURE_REPO_DIR, current.feature_store_yaml, paths)
    target = declared(model)
    result = replay(flights, store, url, target.feature_service, target.name)
    print(result.summary())
    for failure in result.failed[:10]:
        print("failed:", failure)
    return 1 if result.failed else 0

