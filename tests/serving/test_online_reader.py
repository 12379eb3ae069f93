"""OnlineReader against Feast's own get_online_features on a real SQLite online store built here:
a view keyed by two join keys of two types with a feature of every kind the views can hold (nulls
included), and a view whose key the service maps to another request column. The request holds
entities the store lacks, repeated entities, and rows in no order; the store is written again
between reads, so nothing the reader keeps (keys, decoded values, statements) may go stale."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from feast import Entity, FeatureService, FeatureStore, FeatureView, Field, FileSource, ValueType
from feast.types import Array, Bool, Bytes, Float32, Float64, Int32, Int64, String, UnixTimestamp

from platform_assets.featurestore.online import OnlineReader
from tests.models.feast_store import local_repo_config

SERVICE = "reader_test"
SCALARS = ["f64", "f32", "i32", "i64", "s", "b"]
LISTS = ["ints", "names", "raw", "stamp"]
AT = datetime(2013, 3, 1, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> FeatureStore:
    source = tmp_path / "unused.parquet"  # the test writes the online store directly
    pd.DataFrame({"event_timestamp": [AT]}).to_parquet(source)
    store = FeatureStore(config=local_repo_config(tmp_path, "reader_test"))
    origin = Entity(name="origin", join_keys=["origin"], value_type=ValueType.STRING)
    hour = Entity(name="hour", join_keys=["hour"], value_type=ValueType.INT64)
    airport = Entity(name="airport", join_keys=["airport"], value_type=ValueType.STRING)
    file = FileSource(name="unused", path=str(source), timestamp_field="event_timestamp")
    hourly = FeatureView(
        name="hourly",
        entities=[origin, hour],
        schema=[
            Field(name="origin", dtype=String),
            Field(name="hour", dtype=Int64),
            Field(name="f64", dtype=Float64),
            Field(name="f32", dtype=Float32),
            Field(name="i32", dtype=Int32),
            Field(name="i64", dtype=Int64),
            Field(name="s", dtype=String),
            Field(name="b", dtype=Bool),
            Field(name="ints", dtype=Array(Int64)),
            Field(name="names", dtype=Array(String)),
            Field(name="raw", dtype=Bytes),
            Field(name="stamp", dtype=UnixTimestamp),
            Field(name="left_out", dtype=Float64),
        ],
        source=file,
        ttl=timedelta(0),
        online=True,
    )
    airports = FeatureView(
        name="airports",
        entities=[airport],
        schema=[Field(name="airport", dtype=String), Field(name="elevation", dtype=Int64),
                Field(name="airport_name", dtype=String)],
        source=file,
        ttl=timedelta(0),
        online=True,
    )
    service = FeatureService(
        name=SERVICE,
        features=[hourly[[*SCALARS, *LISTS]], airports.with_join_key_map({"airport": "dest"})],
    )
    store.apply([origin, hour, airport, hourly, airports, service])
    return store


def write_hourly(store: FeatureStore, shift: int) -> None:
    """Six (origin, hour) rows, every feature null in one and some in others; values shared
    between rows (so their serialized forms repeat). `shift` changes every value."""
    rows = []
    for i, (origin, hour) in enumerate([("EWR", 5), ("EWR", 6), ("JFK", 5), ("LGA", 7), ("JFK", 6), ("LGA", 8)]):
        row: dict[str, Any] = {
            "origin": origin,
            "hour": hour,
            "f64": 0.25 * (i % 3) + shift,
            "f32": 1.5 + shift,
            "i32": i % 2 + shift,
            "i64": 2**40 + i % 2 + shift,
            "s": f"v{i % 2 + shift}",
            "b": i % 2 == 0,
            "ints": [i, shift, 3],
            "names": ["a", f"n{shift}"],
            "raw": bytes([i, shift]),
            "stamp": AT + timedelta(hours=i + shift),
            "left_out": -1.0,
        }
        if i == 3:  # every feature null
            row |= {name: None for name in [*SCALARS, *LISTS, "left_out"]}
        if i == 4:  # a few null
            row |= {"f64": None, "s": None, "ints": None}
        rows.append(row | {"event_timestamp": AT + timedelta(minutes=shift)})
    store.write_to_online_store("hourly", pd.DataFrame(rows))


def write_airports(store: FeatureStore, shift: int) -> None:
    airports = pd.DataFrame(
        {
            "airport": ["ORD", "ATL", "LAX"],
            "elevation": [680 + shift, 1026 + shift, None],
            "airport_name": ["O'Hare", f"Atlanta {shift}", "Los Angeles"],
            "event_timestamp": [AT + timedelta(minutes=shift)] * 3,
        }
    )
    store.write_to_online_store("airports", airports)


# (origin, hour, dest): stored, repeated, missing from one view or both, in no order.
REQUEST = [
    ("LGA", 7, "ORD"), ("EWR", 5, "ATL"), ("JFK", 6, "XXX"), ("EWR", 5, "ORD"), ("BOS", 5, "LAX"),
    ("JFK", 5, "ATL"), ("EWR", 6, "ORD"), ("EWR", 7, "ORD"), ("LGA", 8, "LAX"), ("EWR", 5, "ATL"),
    ("JFK", 6, "ORD"),
]


def feast_values(store: FeatureStore, request: list[tuple]) -> dict[str, list[Any]]:
    rows = [{"origin": o, "hour": h, "dest": d} for o, h, d in request]
    served = store.get_online_features(features=store.get_feature_service(SERVICE), entity_rows=rows).to_dict()
    return {name: served[name] for name in [*SCALARS, *LISTS, "elevation", "airport_name"]}


def reader_keys(request: list[tuple]) -> dict[str, list[Any]]:
    origin, hour, dest = (list(column) for column in zip(*request))
    return {"origin": origin, "hour": hour, "dest": dest}


def assert_same(got: dict[str, list[Any]], expected: dict[str, list[Any]]) -> None:
    assert list(got) == list(expected)
    for name, column in expected.items():
        assert got[name] == column, name
        assert [type(v) for v in got[name]] == [type(v) for v in column], name


def test_reader_returns_what_get_online_features_returns(store: FeatureStore) -> None:
    write_hourly(store, shift=0)
    write_airports(store, shift=0)
    reader = OnlineReader(store, SERVICE)
    assert reader._sqlite is not None, "the SQLite store should take the direct read"
    assert reader.features == [*SCALARS, *LISTS, "elevation", "airport_name"]

    expected = feast_values(store, REQUEST)
    # What the comparison covers: stored values, stored nulls, entities the store lacks.
    assert expected["f64"][:3] == [None, 0.0, None] and expected["elevation"][:3] == [680, 1026, None]
    assert expected["ints"][1] == [0, 0, 3] and expected["elevation"][4] is None  # LAX: stored null
    assert expected["s"][2] is None and expected["s"][7] is None  # JFK 6: stored null; EWR 7: no row
    assert {type(v) for v in expected["stamp"] if v is not None} == {datetime}

    keys = reader_keys(REQUEST)
    for _ in range(2):  # the second read finds the keys, values and statements kept by the first
        assert_same(reader.read(keys), expected)
        assert_same(reader.read(keys, generic=True), expected)
    # Lists equal in the store (JFK 6, JFK 5) are still one list per entity: no value read from the
    # kept decodings is shared between entities if it can be changed.
    got = reader.read(keys)
    assert got["names"][2] == got["names"][5] and got["names"][2] is not got["names"][5]

    # Single rows, and the request in more than one statement.
    for row in REQUEST:
        assert_same(reader.read(reader_keys([row])), feast_values(store, [row]))
    reader._sqlite.max_keys = 2
    assert_same(reader.read(keys), expected)


def test_reader_sees_the_store_written_again(store: FeatureStore) -> None:
    write_hourly(store, shift=0)
    write_airports(store, shift=0)
    reader = OnlineReader(store, SERVICE)
    keys = reader_keys(REQUEST)
    before = reader.read(keys)

    write_hourly(store, shift=1)
    write_airports(store, shift=1)
    expected = feast_values(store, REQUEST)
    assert expected != before and expected["i32"][1] == 1 and expected["airport_name"][1] == "Atlanta 1"
    assert_same(reader.read(keys), expected)
    assert_same(OnlineReader(store, SERVICE).read(keys), expected)


def test_reader_rejects_key_columns_of_different_lengths(store: FeatureStore) -> None:
    reader = OnlineReader(store, SERVICE)
    with pytest.raises(ValueError, match="differ in length"):
        reader.read({"origin": ["EWR"], "hour": [5, 6], "dest": ["ORD"]})
