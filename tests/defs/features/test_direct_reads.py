"""The platform's direct reads against Feast's own, on the real feature repository and two real
months: the batched online read (one store read per feature view for a whole request) against
get_online_features asked one flight at a time, and the DuckDB ASOF point-in-time join against
Feast's get_historical_features."""

from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
import polars as pl
import pytest
from feast import FeatureStore

from platform_assets.events import FLIGHT_COLUMNS
from platform_assets.featurestore.historical import _asof_join, historical_features
from platform_assets.featurestore.online import OnlineReader
from platform_assets.featurestore.services import service_views
from platform_assets.paths import PlatformPaths
from platform_assets.serving.features import FLIGHT_FACTS, NO_TAILNUM, OnlineFeatures
from platform_assets.serving.instances import Flight
from tests.models.conftest import MODEL

from .helpers import materialize

REQUEST = 100


@pytest.fixture
def online_store(feast_resources: dict) -> FeatureStore:
    materialize("feast_registry", feast_resources)
    for month in ("2013-01", "2013-02"):
        materialize("online_features", feast_resources, month)
    return feast_resources["feast"].store()


@pytest.fixture
def flights(feast_home: Path) -> list[Flight]:
    """February flights, repeated ones and flights whose plane, route or carrier the store lacks."""
    events = pl.read_parquet(PlatformPaths(feast_home).feature_table("flight_training_events"))
    sample = events.filter(pl.col("flight_month") == "2013-02").sample(REQUEST - 8, seed=13).to_dicts()
    odd = [
        {**sample[0], "tailnum": None},
        {**sample[1], "tailnum": "N0NE"},
        {**sample[2], "dest": "XXX", "route": f"{sample[2]['origin']}-XXX"},
        {**sample[3], "carrier": "ZZ"},
        {**sample[4], "tailnum": None, "carrier": "ZZ"},
        sample[5],
        sample[5],
        sample[6],
    ]
    return [_flight(row) for row in [*sample, *odd]]


def _flight(row: dict[str, Any]) -> Flight:
    return Flight.from_event(row)


def one_at_a_time(store: FeatureStore, flights: list[Flight]) -> dict[str, list[Any]]:
    service = store.get_feature_service(MODEL.feature_service)
    columns: dict[str, list[Any]] = {}
    for flight in flights:
        row = {
            "origin": flight.origin,
            "carrier": flight.carrier,
            "route": flight.route,
            "tailnum": flight.tailnum or NO_TAILNUM,
        }
        served = store.get_online_features(features=service, entity_rows=[row]).to_dict()
        for name, [value] in served.items():
            columns.setdefault(name, []).append(value)
    return columns


def test_batched_read_returns_what_row_by_row_reads_return(
    online_store: FeatureStore, flights: list[Flight]
) -> None:
    expected = one_at_a_time(online_store, flights)
    served = OnlineFeatures(online_store, MODEL.feature_service)
    keys = served.entity_keys(flights)
    reader = OnlineReader(online_store, MODEL.feature_service)
    assert reader._sqlite is not None, "the repository's SQLite store should take the direct read"

    for batched in (reader.read(keys), reader.read(keys, generic=True), served.lookup(flights).columns):
        for name in served.features:
            assert batched[name] == expected[name], name
            assert [type(v) for v in batched[name]] == [type(v) for v in expected[name]], name

    values = [v for name in served.features for v in expected[name]]
    assert sum(v is None for v in values) > 0 and sum(v is not None for v in values) > len(values) / 2
    # The flight without a known plane lacks exactly the plane's features, and says so.
    missing = served.lookup(flights).missing
    assert missing[REQUEST - 7] == ["plane_age_years", "plane_seats", "plane_engines"]
    assert missing == [
        [name for name in served.features if expected[name][i] is None] for i in range(len(flights))
    ]


def test_a_request_reads_each_feature_view_once(online_store: FeatureStore, flights: list[Flight]) -> None:
    served = OnlineFeatures(online_store, MODEL.feature_service)
    served.lookup(flights[:1])  # opens the connection
    conn = served.reader._sqlite.conn
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    try:
        served.lookup(flights)
    finally:
        conn.set_trace_callback(None)
    selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert len(selects) == len(online_store.get_feature_service(MODEL.feature_service).feature_view_projections)


def test_an_empty_request_reads_nothing(online_store: FeatureStore) -> None:
    served = OnlineFeatures(online_store, MODEL.feature_service)
    rows = served.lookup([])
    assert len(rows) == 0 and rows.missing == []
    assert rows.columns == {name: [] for name in [*FLIGHT_FACTS, *served.features]}
    assert list(rows.columns) == [*FLIGHT_FACTS, *served.features]


PLANE = ["plane_age_years", "plane_seats", "plane_engines"]
ROUTE = ["route_flights_28d", "route_delay_rate_28d", "route_mean_arr_delay_28d"]
CARRIER = ["carrier_flights_7d", "carrier_delay_rate_7d", "carrier_mean_arr_delay_7d", "carrier_flights_28d",
           "carrier_delay_rate_28d"]


def test_lookup_gives_each_flight_its_facts_values_and_missing_features(
    online_store: FeatureStore, flights: list[Flight]
) -> None:
    """The whole of `lookup`'s answer, column by column and flight by flight, against what each flight
    says of itself and what get_online_features gives for it alone: facts as the flight has them (a
    null tail number stays null), the service's values with their types, None where the store has
    none, each flight's missing features in the service's order, the columns in their order."""
    # Two entities whose stored row lacks one value: a plane without its seats, an airport without
    # its pressure (the airport's route is unknown too).
    at = flights[0].event_timestamp
    online_store.write_to_online_store("plane_facts", pd.DataFrame(
        {"tailnum": ["NPART1"], "event_timestamp": [at], "plane_age_years": pd.array([12], dtype="Int32"),
         "plane_seats": pd.array([None], dtype="Int32"), "plane_engines": pd.array([2], dtype="Int32")}
    ))
    weather = [f.name for f in online_store.get_feature_view("origin_weather").features]
    online_store.write_to_online_store("origin_weather", pd.DataFrame(
        {"origin": ["QQQ"], "event_timestamp": [at], **{name: [20.0] for name in weather}, "pressure": [None]}
    ).astype({"pressure": "float64", "wind_dir": "int32"}))
    flights = [*flights, replace(flights[0], tailnum="NPART1"), replace(flights[1], origin="QQQ")]
    served = OnlineFeatures(online_store, MODEL.feature_service)
    expected = one_at_a_time(online_store, flights)
    rows = served.lookup(flights)

    assert rows.missing[REQUEST] == ["plane_seats"] and rows.columns["plane_age_years"][REQUEST] == 12
    assert rows.missing[REQUEST + 1] == ["pressure", *ROUTE] and rows.columns["temp"][REQUEST + 1] == 20.0
    assert served.features[-3:] == PLANE and ROUTE[0] in served.features and CARRIER[0] in served.features
    assert list(rows.columns) == [*FLIGHT_FACTS, *served.features]
    assert rows.features == served.features and len(rows) == len(flights)
    for name in FLIGHT_FACTS:
        column = [getattr(flight, name) for flight in flights]
        assert rows.columns[name] == column, name
        assert [type(v) for v in rows.columns[name]] == [type(v) for v in column], name
    assert rows.columns["route"] == [f"{f.origin}-{f.dest}" for f in flights]
    assert rows.columns["tailnum"][REQUEST - 8] is None and rows.columns["tailnum"][REQUEST - 4] is None
    for name in served.features:
        assert rows.columns[name] == expected[name], name
        assert [type(v) for v in rows.columns[name]] == [type(v) for v in expected[name]], name
    lacked = [[name for name in served.features if expected[name][i] is None] for i in range(len(flights))]
    assert rows.missing == lacked
    assert all(type(m) is list for m in rows.missing) and len({id(m) for m in rows.missing}) == len(flights)

    # The mix: flights lacking nothing, one feature, or a whole view, whichever key it was.
    assert [] in rows.missing and any(len(m) == 1 for m in rows.missing)
    for i, view in [(REQUEST - 8, PLANE), (REQUEST - 7, PLANE), (REQUEST - 6, ROUTE), (REQUEST - 5, CARRIER)]:
        assert all(rows.columns[name][i] is None for name in view) and set(view) <= set(rows.missing[i]), i
        assert [name for name in rows.missing[i] if name in view] == view
    both = [name for name in served.features if name in CARRIER + PLANE]
    assert [name for name in rows.missing[REQUEST - 4] if name in CARRIER + PLANE] == both
    # A flight asked twice in one request gets the same row twice, in lists of its own.
    assert all(column[REQUEST - 3] == column[REQUEST - 2] for column in rows.columns.values())
    assert rows.missing[REQUEST - 3] == rows.missing[REQUEST - 2]
    assert rows.missing[REQUEST - 3] is not rows.missing[REQUEST - 2]

    # The server's own reads of the answer.
    i = REQUEST - 8
    assert rows.row(i, rows.features) == {name: expected[name][i] for name in served.features}
    frame = rows.frame()
    assert list(frame.columns) == [*FLIGHT_FACTS, *served.features] and len(frame) == len(flights)

    # A flight asked alone gets its row of the whole request.
    for i in [0, 1, *range(REQUEST - 8, REQUEST + 2)]:
        alone = served.lookup([flights[i]])
        assert alone.columns == {name: [column[i]] for name, column in rows.columns.items()}, i
        assert alone.missing == [rows.missing[i]], i


def test_the_store_is_asked_for_no_tailnum_where_a_flight_has_none(
    online_store: FeatureStore, flights: list[Flight]
) -> None:
    served = OnlineFeatures(online_store, MODEL.feature_service)
    keys = served.entity_keys(flights)
    assert list(keys) == served.join_keys == ["origin", "carrier", "route", "tailnum"]
    assert keys["tailnum"] == [NO_TAILNUM if f.tailnum is None else f.tailnum for f in flights]
    assert keys["route"] == [f.route for f in flights] and keys["carrier"] == [f.carrier for f in flights]

    # Requests with and without a null tail number; an answer changed afterwards changes no other.
    known = [f for f in flights if f.tailnum is not None]
    for request in (flights, known):
        first = served.lookup(request)
        expected = {name: list(column) for name, column in first.columns.items()}
        missing = [list(m) for m in first.missing]
        for column in first.columns.values():
            column.append("changed")
        first.missing[0].append("changed")
        again = served.lookup(request)
        assert again.columns == expected and again.missing == missing
        assert served.entity_keys(request)["origin"] == [f.origin for f in request]



def test_asof_join_returns_what_feasts_point_in_time_join_returns(
    feast_home: Path, feast_resources: dict
) -> None:

    materialize("feast_registry", feast_resources)
    store = feast_resources["feast"].store()
    events = pl.read_parquet(PlatformPaths(feast_home).feature_table("flight_training_events"))
    # Shuffled, with a null and an unknown key, and departures before and after every table.
    entity_df = (
        events.select(*FLIGHT_COLUMNS, "is_delayed")
        .sample(fraction=1.0, seed=13)
        .with_columns(
            pl.when(pl.int_range(pl.len()) % 50 == 0).then(None).otherwise(pl.col("tailnum")).alias("tailnum"),
            pl.when(pl.int_range(pl.len()) % 70 == 0).then(pl.lit("ZZ")).otherwise(pl.col("carrier")).alias("carrier"),
        )
        .to_pandas(use_pyarrow_extension_array=False)
    )
    assert _asof_join(store, entity_df.assign(__entity_row=0), MODEL.feature_service) is not None

    asof = historical_features(store, entity_df, MODEL.feature_service)
    feast = historical_features(store, entity_df, MODEL.feature_service, feast_join=True)

    pd.testing.assert_frame_equal(asof, feast)
    assert list(asof["flight_id"]) == list(entity_df["flight_id"])
    features = asof.columns[len(entity_df.columns):]
    assert asof[features].notna().mean().min() > 0 and asof[features].isna().any().any()

    # The feature timestamps of each row (lineage): the DuckDB join's own, and on the Feast path the
    # same rule applied to the views' files; null exactly where a view's features are all missing.
    stamped = historical_features(store, entity_df, MODEL.feature_service, feature_timestamps=True)
    stamped_feast = historical_features(
        store, entity_df, MODEL.feature_service, feast_join=True, feature_timestamps=True
    )
    stamps = [f"{view.name}_timestamp" for view in service_views(store, MODEL.feature_service)]
    assert list(stamped.columns[-len(stamps):]) == stamps
    pd.testing.assert_frame_equal(stamped[stamps], stamped_feast[stamps], check_dtype=False)
    pd.testing.assert_frame_equal(stamped.drop(columns=stamps), asof)
    for projection in store.get_feature_service(MODEL.feature_service).feature_view_projections:
        stamp = stamped[f"{projection.name}_timestamp"]
        features = stamped[[f.name for f in projection.features]]
        assert (stamp.dropna() <= stamped.loc[stamp.notna(), "event_timestamp"]).all()
        assert features[stamp.isna()].isna().all().all()
    # The null tail numbers and the unknown carrier have no row: their views' timestamps are null.
    assert stamped["plane_facts_timestamp"].isna().any() and stamped["carrier_daily_timestamp"].isna().any()
