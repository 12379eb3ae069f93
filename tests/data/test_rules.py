import random

import pandera.polars as pa
import polars as pl
import pytest

from platform_assets.data.contracts import contract_for
from platform_assets.data.raw_files import locate, read_raw
from platform_assets.data.rules import StructuralError, key_conflicts, rule_counts
from platform_assets.data.tables import FLIGHTS, WEATHER


@pytest.fixture(scope="module")
def january(real_data_dir) -> pl.DataFrame:
    frame = read_raw(locate(real_data_dir, FLIGHTS), FLIGHTS).frame
    return frame.filter(pl.col("month") == 1).head(5000)


def corrupt(frame: pl.DataFrame, seed: int) -> tuple[pl.DataFrame, dict[int, str]]:
    """Break one rule in a few random rows; returns the frame and {row: rule expected}."""
    rng = random.Random(seed)
    rows = rng.sample(range(frame.height), 12)
    breaks = [
        ("dep_time", 2575, "dep_time_is_hhmm"),
        ("origin", "BOS", "origin_allowed_code"),
        ("distance", -5.0, "distance_positive"),
        ("month", 2, "month_matches_partition"),
        ("carrier", None, "carrier_not_null"),
        ("arr_delay", 5000.0, "arr_delay_in_range"),
    ]
    expected: dict[int, str] = {}
    for i, row in enumerate(rows):
        column, value, rule = breaks[i % len(breaks)]
        frame = frame.with_columns(
            pl.when(pl.int_range(pl.len()) == row).then(pl.lit(value, dtype=frame.schema[column])).otherwise(pl.col(column)).alias(column)
        )
        expected[row] = rule
    return frame, expected


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_split_quarantines_exactly_the_broken_rows_with_their_rule(january: pl.DataFrame, seed: int) -> None:
    broken, expected = corrupt(january, seed)
    valid, quarantined = contract_for("flights", "2013-01").split(broken, "flights.csv")
    assert valid.height + quarantined.height == broken.height
    got = dict(zip((quarantined["_source_row"] - 1).to_list(), quarantined["_rules_failed"].to_list()))
    assert set(got) == set(expected)
    for row, rule in expected.items():
        assert rule in got[row].split("; ")


@pytest.mark.parametrize("seed", [1, 2])
def test_split_agrees_with_the_pandera_schema(january: pl.DataFrame, seed: int) -> None:
    broken, _ = corrupt(january, seed)
    contract = contract_for("flights", "2013-01")
    _, quarantined = contract.split(broken, "flights.csv")
    with pytest.raises(pa.errors.SchemaErrors) as err:
        contract.pandera_schema().validate(broken, lazy=True)
    pandera_rows = set(err.value.failure_cases["index"].drop_nulls().to_list())
    assert pandera_rows == set((quarantined["_source_row"] - 1).to_list())


def test_pandera_schema_accepts_the_valid_rows(january: pl.DataFrame) -> None:
    broken, _ = corrupt(january, 7)
    contract = contract_for("flights", "2013-01")
    valid, _ = contract.split(broken, "flights.csv")
    assert contract.pandera_schema().validate(valid, lazy=True).height == valid.height


def test_exact_copies_keep_the_first_and_quarantine_only_the_extra_copies(january: pl.DataFrame) -> None:
    resent = january.head(3).with_columns(pl.col("_source_row") + 100_000)
    doubled = pl.concat([january, resent, resent.with_columns(pl.col("_source_row") + 100_000)])
    valid, quarantined = contract_for("flights", "2013-01").split(doubled, "flights.csv")
    assert quarantined.height == 6
    assert set(quarantined["_rules_failed"]) == {"duplicate_row"}
    assert valid.height == january.height
    assert valid["_source_row"].to_list() == january["_source_row"].to_list()


def test_rows_sharing_a_key_with_different_values_are_all_quarantined_naming_the_conflict(
    january: pl.DataFrame,
) -> None:
    changed = january.head(2).with_columns(pl.col("dep_delay") + 1, pl.col("_source_row") + 100_000)
    frame = pl.concat([january, changed])
    valid, quarantined = contract_for("flights", "2013-01").split(frame, "flights.csv")
    assert quarantined.height == 4 and valid.height == january.height - 2
    assert set(quarantined["_rules_failed"]) == {"unique_key"}
    [first, _] = key_conflicts(quarantined, FLIGHTS)
    assert "rows [1, 100001] differ in ['dep_delay']" in first and "carrier=" in first


def test_duplicate_rules_agree_with_the_pandera_schema(january: pl.DataFrame) -> None:
    frame = pl.concat([january, january.head(2), january.slice(5, 1).with_columns(pl.col("distance") + 1)])
    contract = contract_for("flights", "2013-01")
    _, quarantined = contract.split(frame.with_columns(_source_row=pl.int_range(pl.len()) + 1), "flights.csv")
    with pytest.raises(pa.errors.SchemaErrors) as err:
        contract.pandera_schema().validate(frame, lazy=True)
    pandera_rows = set(err.value.failure_cases["index"].drop_nulls().to_list())
    assert pandera_rows == set((quarantined["_source_row"] - 1).to_list()) == {5, january.height, january.height + 1, january.height + 2}


def test_unparseable_cells_are_quarantined_with_the_cast_rule(january: pl.DataFrame) -> None:
    frame = january.with_columns(
        pl.when(pl.int_range(pl.len()) == 0).then(pl.lit("dep_delay=late")).otherwise(pl.col("_cast_errors")).alias("_cast_errors")
    )
    _, quarantined = contract_for("flights", "2013-01").split(frame, "flights.csv")
    assert quarantined["_rules_failed"].to_list() == ["values_parse_as_declared_types"]
    assert rule_counts(quarantined) == {"values_parse_as_declared_types": 1}


def test_wrong_dtype_is_a_structural_error_naming_the_column(january: pl.DataFrame) -> None:
    frame = january.with_columns(pl.col("distance").cast(pl.String))
    with pytest.raises(StructuralError) as err:
        contract_for("flights", "2013-01").split(frame, "landing/flights.parquet")
    assert (err.value.column, err.value.rule) == ("distance", "dtype Float64")
    assert "landing/flights.parquet" in str(err.value)


def test_real_flights_all_pass_and_weather_quarantines_only_the_1048_mph_wind(real_data_dir) -> None:
    flights = read_raw(locate(real_data_dir, FLIGHTS), FLIGHTS).frame
    valid, quarantined = contract_for("flights").split(flights, "flights")
    assert (valid.height, quarantined.height) == (336_776, 0)
    weather = read_raw(locate(real_data_dir, WEATHER), WEATHER).frame
    valid, quarantined = contract_for("weather").split(weather, "weather")
    assert quarantined.height == 1
    assert quarantined["wind_speed"][0] > 1000
    assert quarantined["_rules_failed"][0] == "wind_speed_in_range"
