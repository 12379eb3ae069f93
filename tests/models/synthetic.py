"""A small synthetic flight world with a learnable delay signal, written as the warehouse's feature tables.

Labels are drawn from the features Feast returns as of each departure, so a model that reads the same
features can learn them, and one that leaks or misaligns features cannot."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl

from platform_assets.events import flight_events
from platform_assets.featurestore.historical import historical_features
from platform_assets.ml.declaration import declared

MODEL = declared("delay").spec
LABEL = MODEL.label
from platform_assets.paths import PlatformPaths, write_parquet_atomic

MONTHS = ("2013-01", "2013-02", "2013-03")
ORIGINS = ("EWR", "JFK", "LGA")
CARRIERS = ("AA", "B6", "DL", "UA")
DESTS = ("ATL", "BOS", "LAX", "MIA", "ORD", "SFO")
FLIGHTS_PER_DAY = 40


def _nullable(values: np.ndarray, missing: np.ndarray, dtype: pl.DataType) -> pl.Series:
    return pl.Series(values).cast(dtype).scatter(np.flatnonzero(missing), None)


def _weather(rng: np.random.Generator, hours: pl.Series) -> pl.DataFrame:
    frames = []
    for origin in ORIGINS:
        n = len(hours)
        rain = rng.random(n) < 0.15
        frames.append(
            pl.DataFrame(
                {
                    "origin": origin,
                    "event_timestamp": hours,
                    "temp": rng.normal(40, 10, n),
                    "dewp": rng.normal(30, 8, n),
                    "humid": rng.uniform(30, 100, n),
                    "wind_dir": _nullable(rng.integers(0, 360, n), rng.random(n) < 0.05, pl.Int32),
                    "wind_speed": rng.gamma(2, 5, n),
                    "wind_gust": _nullable(rng.gamma(3, 8, n), rng.random(n) < 0.7, pl.Float64),
                    "precip": np.where(rain, rng.gamma(2, 0.1, n), 0.0),
                    "pressure": rng.normal(1015, 8, n),
                    "visib": np.where(rain, rng.uniform(0.5, 5, n), 10.0),
                }
            )
        )
    return pl.concat(frames)


def _daily(
    rng: np.random.Generator, days: pl.Series, key: str, values: tuple[str, ...], prefix: str
) -> pl.DataFrame:
    rows = []
    for i, value in enumerate(values):
        level = 0.12 + 0.05 * i
        n = len(days)
        rate = np.clip(level + rng.normal(0, 0.03, n), 0, 1)
        frame = {key: value, "event_timestamp": days}
        if prefix == "carrier":
            frame |= {
                "carrier_flights_7d": rng.integers(100, 500, n),
                "carrier_delay_rate_7d": rate,
                "carrier_mean_arr_delay_7d": rate * 40 + rng.normal(0, 2, n),
                "carrier_flights_28d": rng.integers(400, 2000, n),
                "carrier_delay_rate_28d": np.full(n, level),
            }
        else:
            frame |= {
                "route_flights_28d": rng.integers(10, 300, n),
                "route_delay_rate_28d": rate,
                "route_mean_arr_delay_28d": rate * 40 + rng.normal(0, 2, n),
            }
        rows.append(pl.DataFrame(frame))
    return pl.concat(rows)


def write_world(home: Path, seed: int = 7) -> None:
    """Feature tables and flight events of MONTHS (labels filled in later by `label_world`)."""
    rng = np.random.default_rng(seed)
    paths = PlatformPaths(home)
    hours = pl.datetime_range(
        pl.datetime(2012, 12, 31, time_zone="UTC"),
        pl.datetime(2013, 4, 2, time_zone="UTC"),
        "1h",
        eager=True,
    )
    days = pl.datetime_range(
        pl.datetime(2012, 12, 31, time_zone="UTC"),
        pl.datetime(2013, 4, 2, time_zone="UTC"),
        "1d",
        eager=True,
    )
    routes = tuple(f"{o}-{d}" for o in ORIGINS for d in DESTS)
    tails = [f"N{i:03d}" for i in range(60)]
    out = paths.feature_tables
    write_parquet_atomic(_weather(rng, hours), out / "feat_origin_weather.parquet")
    write_parquet_atomic(
        _daily(rng, days, "carrier", CARRIERS, "carrier"), out / "feat_carrier_daily.parquet"
    )
    write_parquet_atomic(
        _daily(rng, days, "route", routes, "route"), out / "feat_route_daily.parquet"
    )
    write_parquet_atomic(
        pl.DataFrame(
            {
                "tailnum": tails,
                "event_timestamp": [datetime(2013, 1, 1, tzinfo=UTC)] * len(tails),
                "plane_age_years": _nullable(
                    rng.integers(1, 30, len(tails)), rng.random(len(tails)) < 0.15, pl.Int32
                ),
                "plane_seats": pl.Series(rng.integers(50, 300, len(tails)), dtype=pl.Int32),
                "plane_engines": pl.Series(rng.integers(1, 3, len(tails)), dtype=pl.Int32),
            }
        ),
        out / "feat_plane.parquet",
    )

    flight_days = [d.replace(tzinfo=None) for d in days if d.strftime("%Y-%m") in MONTHS]
    n = len(flight_days) * FLIGHTS_PER_DAY
    day = np.repeat(np.array(flight_days, dtype="datetime64[us]"), FLIGHTS_PER_DAY)
    hour = rng.integers(6, 23, n)
    origin = rng.choice(ORIGINS, n)
    dest = rng.choice(DESTS, n)
    ts = day + (hour * 3600 + rng.integers(0, 60, n) * 60).astype("timedelta64[s]")
    events = pl.DataFrame(
        {
            "flight_id": [f"f{i:06d}" for i in range(n)],
            "event_timestamp": pl.Series(ts).dt.replace_time_zone("UTC"),
            "origin": origin,
            "dest": dest,
            "route": [f"{o}-{d}" for o, d in zip(origin, dest)],
            "carrier": rng.choice(CARRIERS, n),
            "tailnum": _nullable(rng.choice(tails, n), rng.random(n) < 0.02, pl.String),
            "distance": rng.uniform(200, 2500, n),
            "sched_dep_hour": pl.Series(hour, dtype=pl.Int32),
        }
    ).with_columns(
        pl.col("event_timestamp").dt.strftime("%Y-%m").alias("flight_month"),
        pl.col("event_timestamp").dt.weekday().cast(pl.Int32).alias("sched_dep_dow"),
        pl.lit(None, dtype=pl.Int32).alias(LABEL),
    )
    write_parquet_atomic(events, out / "flight_training_events.parquet")


def label_world(home: Path, store: object, feature_service: str, seed: int = 11) -> None:
    """Draw each flight's outcome from its point-in-time features; about 3% are cancelled (no label)."""
    paths = PlatformPaths(home)
    rng = np.random.default_rng(seed)
    events = flight_events(paths, MONTHS, LABEL)
    features = (
        historical_features(store, events.to_pandas(), feature_service)
        .set_index("flight_id")
        .loc[events["flight_id"].to_list()]
    )
    logit = (
        -2.2
        + 8.0 * features["precip"].to_numpy()
        + 6.0 * (features["carrier_delay_rate_7d"].to_numpy() - 0.2)
        + 0.12 * (features["sched_dep_hour"].to_numpy() - 14)
        + 0.6 * (features["origin"].to_numpy() == "EWR")
    )
    delayed = (rng.random(len(logit)) < 1 / (1 + np.exp(-logit))).astype(np.int32)
    # Heavy rain cancels flights: about 3% overall, 25% of flights in the wettest tenth of hours.
    precip = np.nan_to_num(features["precip"].to_numpy(np.float64))
    cancel_rate = np.where(precip > np.quantile(precip, 0.9), 0.25, 0.008)
    cancelled = rng.random(len(logit)) < cancel_rate
    labels = _nullable(delayed, cancelled, pl.Int32).alias(LABEL)
    cancellations = pl.Series("is_cancelled", cancelled.astype(np.int32))
    full = pl.read_parquet(paths.feature_tables / "flight_training_events.parquet")
    full = full.drop(LABEL, "is_cancelled", strict=False).join(
        events.select("flight_id").with_columns(labels, cancellations), on="flight_id", how="left"
    )
    write_parquet_atomic(full, paths.feature_tables / "flight_training_events.parquet")


def write_training_set(
    home: Path, store: object, feature_service: str, start: str, end: str, name: str = "delay_training_set"
) -> Path:
    """What a model's training_set asset writes: labelled flights with point-in-time features."""
    paths = PlatformPaths(home)
    months = [m for m in MONTHS if start <= m <= end]
    events = flight_events(paths, months, LABEL).filter(pl.col(LABEL).is_not_null())
    frame = pl.from_pandas(historical_features(store, events.to_pandas(), feature_service))
    target = paths.training_set_file(start, end, name)
    write_parquet_atomic(frame, target)
    return target


def write_validated_lineage(home: Path) -> None:
    """Validated flights carry the raw file they came from; the model version's tags must reach them."""
    paths = PlatformPaths(home)
    for month in MONTHS:
        write_parquet_atomic(
            pl.DataFrame(
                {
                    "_source_file": [f"/landing/flights/month={month}/flights.csv"],
                    "_source_sha256": [f"sha-{month}"],
                    "_source_row": [1],
                }
            ),
            paths.validated_file("flights", month),
        )
