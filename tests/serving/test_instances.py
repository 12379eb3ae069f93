"""Request instances on the real flights file: every real row is accepted and derives what the
warehouse derives (flight key, departure in UTC, weekday)."""

from __future__ import annotations

import zipfile
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from platform_assets.data.raw_files import packaged_data_dir
from platform_assets.serving.instances import AFTER_DEPARTURE, RequestError, parse_body

ORIGINS = {"EWR", "JFK", "LGA"}


@pytest.fixture(scope="module")
def december() -> list[dict]:
    folder = packaged_data_dir()
    flights = pl.read_csv(zipfile.ZipFile(folder / "flights.csv.zip").read("flights.csv"), null_values="NA")
    return flights.filter(pl.col("month") == 12).drop(AFTER_DEPARTURE).to_dicts()


def test_every_real_december_flight_is_accepted_with_the_warehouse_keys(december) -> None:
    airports = {r["dest"] for r in december}
    flights = []
    for start in range(0, len(december), 1000):
        flights += parse_body({"instances": december[start : start + 1000]}, ORIGINS, airports)
    assert len(flights) == len(december) > 25_000
    for row, flight in zip(december[:2000], flights[:2000]):
        # stg_flights: printf('%04d-%02d-%02d-%s-%d-%s-%04d', ...) and time_hour + minute
        assert flight.flight_id == (
            f"{row['year']:04d}-{row['month']:02d}-{row['day']:02d}-{row['carrier']}-"
            f"{row['flight']}-{row['origin']}-{row['sched_dep_time']:04d}"
        )
        time_hour = datetime.fromisoformat(row["time_hour"]).astimezone(UTC)
        assert flight.event_timestamp == time_hour + timedelta(minutes=row["minute"])
        assert flight.sched_dep_hour == row["hour"]
        assert flight.sched_dep_dow == datetime(row["year"], row["month"], row["day"]).isoweekday()


def test_time_hour_is_derived_in_new_york_time_when_absent(december) -> None:
    row = {k: v for k, v in december[0].items() if k != "time_hour"}
    [flight] = parse_body({"instances": [row]}, ORIGINS, {row["dest"]})
    assert flight.event_timestamp == datetime.fromisoformat(december[0]["time_hour"]).astimezone(
        UTC
    ) + timedelta(minutes=row["minute"])


def test_every_broken_rule_of_a_body_is_named(december) -> None:
    row = december[0]
    body = {"instances": [{**row, "origin": "XXX"}, row, {**row, "sched_arr_time": 1261, "year": "x"}]}
    with pytest.raises(RequestError) as error:
        parse_body(body, ORIGINS, {row["dest"]})
    fields = [field for field, _, _ in error.value.problems]
    assert fields == ["instances[0].origin", "instances[2].year"]
