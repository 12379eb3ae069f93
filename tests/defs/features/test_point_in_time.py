import math
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from platform_assets.events import FLIGHT_COLUMNS as ENTITY_COLUMNS
from platform_assets.featurestore.historical import historical_features
from platform_assets.featurestore.services import service_features
from platform_assets.lib.resources import FeastResource, PlatformPathsResource
from platform_assets.paths import PlatformPaths
from tests.models.conftest import DELAY, MODEL

from .helpers import materialize, metadata, training_window

UTC_US = pa.timestamp("us", tz="UTC")
WEATHER_COLUMNS = ("temp", "dewp", "humid", "wind_speed", "wind_gust", "precip", "pressure", "visib")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def write(path: Path, rows: dict[str, list], types: dict[str, pa.DataType]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({k: pa.array(v, type=types.get(k, pa.float64())) for k, v in rows.items()}), path)


def write_hand_made_tables(features: Path) -> None:
    weather = [("EWR", "2013-03-01 10:00", 1.0), ("EWR", "2013-03-01 11:00", 2.0),
               ("EWR", "2013-03-01 13:00", 3.0), ("JFK", "2013-03-01 11:00", 9.0)]
    write(
        features / "feat_origin_weather.parquet",
        {
            "origin": [w[0] for w in weather],
            "event_timestamp": [at(w[1]) for w in weather],
            **{c: [w[2] for w in weather] for c in WEATHER_COLUMNS},
            "wind_dir": [int(w[2]) * 10 for w in weather],
        },
        {"origin": pa.string(), "event_timestamp": UTC_US, "wind_dir": pa.int32()},
    )
    days = [("UA", "2013-03-01", 10, None), ("UA", "2013-03-02", 20, 0.25)]
    write(
        features / "feat_carrier_daily.parquet",
        {
            "carrier": [d[0] for d in days],
            "event_timestamp": [at(d[1]) for d in days],
            "carrier_flights_7d": [d[2] for d in days],
            "carrier_delay_rate_7d": [d[3] for d in days],
            "carrier_mean_arr_delay_7d": [d[3] for d in days],
            "carrier_flights_28d": [d[2] * 4 for d in days],
            "carrier_delay_rate_28d": [d[3] for d in days],
        },
        {"carrier": pa.string(), "event_timestamp": UTC_US, "carrier_flights_7d": pa.int64(), "carrier_flights_28d": pa.int64()},
    )
    write(
        features / "feat_route_daily.parquet",
        {"route": ["EWR-IAH"], "event_timestamp": [at("2013-03-02")], "route_flights_28d": [7],
         "route_delay_rate_28d": [0.5], "route_mean_arr_delay_28d": [12.5]},
        {"route": pa.string(), "event_timestamp": UTC_US, "route_flights_28d": pa.int64()},
    )
    write(
        features / "feat_plane.parquet",
        {"tailnum": ["N1"], "event_timestamp": [at("2013-01-01")], "plane_age_years": [5],
         "plane_seats": [150], "plane_engines": [2]},
        {"tailnum": pa.string(), "event_timestamp": UTC_US, "plane_age_years": pa.int32(),
         "plane_seats": pa.int32(), "plane_engines": pa.int32()},
    )


# (departure, origin, carrier, tailnum) -> expected (temp, carrier_flights_7d, route_flights_28d, plane_seats)
CASES = [
    ("2013-03-01 09:59", "EWR", "UA", "N1", None, 10, None, 150),  # before the first weather row
    ("2013-03-01 10:00", "EWR", "UA", "N1", 1.0, 10, None, 150),  # a row at departure time counts
    ("2013-03-01 11:30", "EWR", "UA", None, 2.0, 10, None, None),  # 13:00 lies in the future; no tailnum
    ("2013-03-01 12:59", "EWR", "UA", "N9", 2.0, 10, None, None),  # unknown plane
    ("2013-03-01 16:00", "EWR", "UA", "N1", 3.0, 10, None, 150),  # 13:00 + 3 h TTL: still valid
    ("2013-03-01 16:01", "EWR", "UA", "N1", None, 10, None, 150),  # expired: null, not the stale 3.0
    ("2013-03-01 11:30", "JFK", "UA", "N1", 9.0, 10, None, 150),  # keys never mix
    ("2013-03-01 11:30", "LGA", "UA", "N1", None, 10, None, 150),  # unknown origin
    ("2013-03-02 00:00", "EWR", "UA", "N1", None, 20, 7, 150),  # new day's row at midnight
    ("2013-03-04 00:00", "EWR", "UA", "N1", None, 20, 7, 150),  # 2-day TTL boundary
    ("2013-03-04 00:01", "EWR", "UA", "N1", None, None, None, 150),  # daily rows expired
    ("2013-12-31 23:00", "EWR", "AA", "N1", None, None, None, 150),  # plane facts outlive the year
]


@pytest.fixture
def hand_made_store(platform_home: Path) -> FeastResource:
    write_hand_made_tables(PlatformPaths(platform_home).feature_tables)
    feast = FeastResource()
    materialize("feast_registry", {"platform": PlatformPathsResource(home=str(platform_home)), "feast": feast})
    return feast


def test_point_in_time_join_on_hand_made_rows(hand_made_store: FeastResource) -> None:
    entity_df = pd.DataFrame(
        {
            "flight_id": [f"f{i}" for i in range(len(CASES))],
            "event_timestamp": [at(c[0]) for c in CASES],
            "origin": [c[1] for c in CASES],
            "carrier": [c[2] for c in CASES],
            "route": "EWR-IAH",
            "tailnum": [c[3] for c in CASES],
        }
    )
    joined = historical_features(hand_made_store.store(), entity_df, MODEL.feature_service)

    assert list(joined["flight_id"]) == list(entity_df["flight_id"])
    assert list(joined.columns) == [*entity_df.columns, *service_features(hand_made_store.store(), MODEL.feature_service)]
    expected = pd.DataFrame(
        [c[4:] for c in CASES], columns=["temp", "carrier_flights_7d", "route_flights_28d", "plane_seats"]
    )
    for column in expected.columns:
        got = [None if pd.isna(v) else v for v in joined[column]]
        want = [None if v is None or (isinstance(v, float) and math.isnan(v)) else v for v in expected[column]]
        assert got == want, column
    # A null in the source stays null and the row is still the right one.
    assert joined.loc[1, "carrier_delay_rate_7d"] is pd.NA or pd.isna(joined.loc[1, "carrier_delay_rate_7d"])
    assert joined.loc[8, "carrier_delay_rate_7d"] == 0.25
    assert str(joined["carrier_flights_7d"].dtype) == "Int64" and str(joined["plane_seats"].dtype) == "Int32"


def test_historical_features_requires_every_join_key(hand_made_store: FeastResource) -> None:
    entity_df = pd.DataFrame({"event_timestamp": [at("2013-03-01 11:00")], "origin": ["EWR"], "carrier": ["UA"]})
    with pytest.raises(ValueError, match=r"\['route', 'tailnum'\]"):
        historical_features(hand_made_store.store(), entity_df, MODEL.feature_service)


# The expected values, by an independent as-of join: the latest row at or before departure,
# kept only while within the view's TTL.
ASOF_VIEWS = {
    "feat_origin_weather": ("origin", "3 hours"),
    "feat_carrier_daily": ("carrier", "2 days"),
    "feat_route_daily": ("route", "2 days"),
    "feat_plane": ("tailnum", "3650 days"),
}


def asof_expected(features: Path, start: str, end: str, columns: list[str]) -> pl.DataFrame:
    con = duckdb.connect()
    con.execute(
        f"create table f as select flight_id, event_timestamp, origin, carrier, route, tailnum "
        f"from read_parquet('{features / 'flight_training_events.parquet'}') "
        f"where is_delayed is not null and flight_month between '{start}' and '{end}'"
    )
    selected = []
    for i, (table, (key, ttl)) in enumerate(ASOF_VIEWS.items()):
        view_columns = [c for c in con.sql(f"select * from read_parquet('{features / table}.parquet') limit 0").columns if c in columns]
        selected += [f"case when v{i}.event_timestamp + interval {ttl} >= f.event_timestamp then v{i}.{c} end as {c}" for c in view_columns]
    joins = " ".join(
        f"asof left join read_parquet('{features / table}.parquet') v{i} "
        f"on f.{key} = v{i}.{key} and f.event_timestamp >= v{i}.event_timestamp"
        for i, (table, (key, _)) in enumerate(ASOF_VIEWS.items())
    )
    return con.sql(f"select f.flight_id, {', '.join(selected)} from f {joins}").pl()


def test_training_set_matches_an_independent_asof_join(feast_home: Path, feast_resources: dict) -> None:
    materialize("feast_registry", feast_resources)
    meta = metadata(materialize("training_set", feast_resources, run_config=training_window("2013-01", "2013-02")))
    training = pl.read_parquet(meta["path"])
    features = PlatformPaths(feast_home).feature_tables
    feature_names = service_features(feast_resources["feast"].store(), MODEL.feature_service)
    expected = asof_expected(features, "2013-01", "2013-02", feature_names)

    assert training.height == expected.height == meta["rows"]
    both = training.join(expected, on="flight_id", suffix="_asof", how="inner")
    assert both.height == training.height
    for name in feature_names:
        mismatched = both.filter(~pl.col(name).cast(pl.Float64).eq_missing(pl.col(f"{name}_asof").cast(pl.Float64)))
        assert mismatched.is_empty(), f"{name}: {mismatched.select('flight_id', name, f'{name}_asof').head(3)}"
    # Not a comparison of two empty columns: most flights do get weather and plane facts.
    assert training["temp"].null_count() < training.height // 10
    assert training["plane_seats"].drop_nulls().len() > training.height // 2


def test_training_set_columns_rows_and_types(feast_home: Path, feast_resources: dict) -> None:
    materialize("feast_registry", feast_resources)
    meta = metadata(materialize("training_set", feast_resources, run_config=training_window("2013-02", "2013-02")))
    path = Path(meta["path"])
    assert path == PlatformPaths(feast_home).training_set_file("2013-02", "2013-02", DELAY.name("training_set"))
    training = pl.read_parquet(path)
    features = service_features(feast_resources["feast"].store(), MODEL.feature_service)

    assert training.columns == [*ENTITY_COLUMNS, *features, "is_delayed"]
    events = pl.read_parquet(PlatformPaths(feast_home).feature_tables / "flight_training_events.parquet")
    labelled = events.filter(pl.col("flight_month") == "2013-02", pl.col("is_delayed").is_not_null())
    assert training.height == labelled.height == meta["rows"]
    assert sorted(training["flight_id"]) == sorted(labelled["flight_id"])
    assert training["is_delayed"].dtype == pl.Int8 and set(training["is_delayed"].unique()) <= {0, 1}
    assert meta["label_rate"] == pytest.approx(labelled["is_delayed"].mean())
    assert training["event_timestamp"].dtype == pl.Datetime("us", "UTC")
    assert {training[c].dtype for c in ("carrier_flights_7d", "route_flights_28d")} == {pl.Int64}
    assert {training[c].dtype for c in ("plane_seats", "wind_dir", "sched_dep_hour")} == {pl.Int32}
    assert "arr_delay" not in training.columns
