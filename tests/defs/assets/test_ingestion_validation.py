from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from platform_assets.lib.partitions import monthly_partitions
from platform_assets.paths import PlatformPaths
from tests.conftest import SMALL_FLIGHT_ROWS, write_csv

from .helpers import materialize, metadata, sha256

FLIGHTS_CHAIN = ["raw_flights", "flights"]


def corrupt_flights(raw_dir: Path, n_rows: int, month: str = "1") -> None:
    """Out-of-range values in the first n rows of a month."""
    path = raw_dir / "flights.csv"
    text = pl.read_csv(path, infer_schema=False)
    in_month = (pl.col("month") == month).cum_sum().over("month") <= n_rows
    text = text.with_columns(
        pl.when((pl.col("month") == month) & in_month).then(pl.lit("-400")).otherwise(pl.col("distance")).alias("distance")
    )
    write_csv(text, path)


def test_rows_in_equal_valid_plus_quarantined_and_reasons_are_kept(platform_home: Path, raw_dir: Path) -> None:
    corrupt_flights(raw_dir, 7)
    result = materialize(FLIGHTS_CHAIN, platform_home, raw_dir, "2013-01", raise_on_error=False)
    meta = metadata(result, "flights")
    assert (meta["rows_in"], meta["rows_valid"], meta["rows_quarantined"]) == (SMALL_FLIGHT_ROWS, SMALL_FLIGHT_ROWS - 7, 7)
    paths = PlatformPaths(platform_home)
    quarantined = pl.read_parquet(paths.quarantine_file("flights", "2013-01"))
    valid = pl.read_parquet(paths.validated_file("flights", "2013-01"))
    assert quarantined["_rules_failed"].unique().to_list() == ["distance_positive"]
    assert quarantined["_source_row"].to_list() == list(range(1, 8))
    assert valid.height + quarantined.height == SMALL_FLIGHT_ROWS
    assert set(valid["_source_row"]).isdisjoint(quarantined["_source_row"])


def test_quarantine_share_over_the_limit_fails_the_blocking_check_and_stops_downstream(
    platform_home: Path, raw_dir: Path
) -> None:
    corrupt_flights(raw_dir, 40)  # 2% of the month

    @dg.asset(deps=["flights"], partitions_def=monthly_partitions)
    def downstream_probe() -> None:
        """Stands in for the warehouse."""

    result = materialize(
        [*FLIGHTS_CHAIN, "downstream_probe"], platform_home, raw_dir, "2013-01", extra=[downstream_probe], raise_on_error=False
    )
    [check] = [c for c in result.get_asset_check_evaluations() if c.asset_key == dg.AssetKey("flights")]
    assert not check.passed
    assert check.metadata["worst_share"].value == pytest.approx(40 / SMALL_FLIGHT_ROWS)
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert "flights" in materialized and "downstream_probe" not in materialized


def test_limit_is_configurable(platform_home: Path, raw_dir: Path) -> None:
    corrupt_flights(raw_dir, 40)
    result = materialize(
        FLIGHTS_CHAIN, platform_home, raw_dir, "2013-01",
        run_config={"ops": {"flights": {"config": {"max_quarantine_share": 0.05}}}},
    )
    [check] = result.get_asset_check_evaluations()
    assert check.passed


def test_rematerializing_a_partition_is_idempotent(platform_home: Path, raw_dir: Path) -> None:
    paths = PlatformPaths(platform_home)
    materialize(FLIGHTS_CHAIN, platform_home, raw_dir, "2013-02")
    validated = paths.validated_file("flights", "2013-02")
    first = sha256(validated)
    landed = list(paths.landing_dir("flights", "2013-02").glob("*.parquet"))
    mtimes = [p.stat().st_mtime_ns for p in landed]
    second_run = materialize(FLIGHTS_CHAIN, platform_home, raw_dir, "2013-02")
    assert sha256(validated) == first
    assert metadata(second_run, "raw_flights")["already_landed"] is True
    assert [p.stat().st_mtime_ns for p in landed] == mtimes
    assert len(list(paths.landing_dir("flights", "2013-02").glob("*.parquet"))) == 1


def test_structural_break_fails_with_file_column_rule_and_keeps_previous_output(
    platform_home: Path, raw_dir: Path
) -> None:
    paths = PlatformPaths(platform_home)
    materialize(FLIGHTS_CHAIN, platform_home, raw_dir, "2013-01")
    validated = paths.validated_file("flights", "2013-01")
    before = sha256(validated)
    landing_before = sorted(paths.landing_dir("flights", "2013-01").glob("*.parquet"))

    path = raw_dir / "flights.csv"
    write_csv(pl.read_csv(path, infer_schema=False).drop("sched_dep_time"), path)
    result = materialize(FLIGHTS_CHAIN, platform_home, raw_dir, "2013-01", raise_on_error=False)
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    message = failure.step_failure_data.error.cause.message if failure.step_failure_data.error.cause else failure.step_failure_data.error.message
    assert str(path) in message and "sched_dep_time" in message and "required column" in message
    assert sha256(validated) == before
    assert sorted(paths.landing_dir("flights", "2013-01").glob("*.parquet")) == landing_before


def test_changed_source_lands_beside_the_old_copy_which_stays_read_only(platform_home: Path, raw_dir: Path) -> None:
    paths = PlatformPaths(platform_home)
    materialize(["raw_flights"], platform_home, raw_dir, "2013-03")
    [old] = paths.landing_dir("flights", "2013-03").glob("*.parquet")
    old_hash = sha256(old)
    corrupt_flights(raw_dir, 3, month="3")
    materialize(FLIGHTS_CHAIN, platform_home, raw_dir, "2013-03", raise_on_error=False)
    copies = sorted(paths.landing_dir("flights", "2013-03").glob("*.parquet"))
    assert len(copies) == 2 and old in copies
    assert sha256(old) == old_hash
    assert not (old.stat().st_mode & 0o222)
    assert pl.read_parquet(paths.quarantine_file("flights", "2013-03")).height == 3


def test_rows_outside_every_month_are_landed_apart_not_dropped(platform_home: Path, raw_dir: Path) -> None:
    path = raw_dir / "flights.csv"
    text = pl.read_csv(path, infer_schema=False)
    write_csv(text.with_columns(pl.when(pl.int_range(pl.len()) < 2).then(pl.lit("13")).otherwise(pl.col("month")).alias("month")), path)
    result = materialize(["raw_flights"], platform_home, raw_dir, "2013-01")
    assert metadata(result, "raw_flights")["rows_unroutable"] == 2
    stray = list((PlatformPaths(platform_home).landing / "flights" / "_unroutable").glob("*.parquet"))
    assert pl.read_parquet(stray[0])["_source_row"].to_list() == [1, 2]


def test_partition_range_in_one_run_matches_month_by_month(platform_home: Path, raw_dir: Path, tmp_path: Path) -> None:
    materialize(FLIGHTS_CHAIN, platform_home, raw_dir, tags={
        "dagster/asset_partition_range_start": "2013-01", "dagster/asset_partition_range_end": "2013-03"})
    other = tmp_path / "other"
    for month in ("2013-01", "2013-02", "2013-03"):
        materialize(FLIGHTS_CHAIN, other, raw_dir, month)
    for month in ("2013-01", "2013-02", "2013-03"):
        a = pl.read_parquet(PlatformPaths(platform_home).validated_file("flights", month))
        b = pl.read_parquet(PlatformPaths(other).validated_file("flights", month))
        assert a.height == SMALL_FLIGHT_ROWS and a.equals(b)


def test_reference_tables_validate_in_full(platform_home: Path, real_data_dir: Path) -> None:
    result = materialize(["raw_planes", "planes", "raw_airports", "airports", "raw_airlines", "airlines"], platform_home, real_data_dir)
    assert metadata(result, "planes")["rows_valid"] == 3322
    assert metadata(result, "airports")["rows_valid"] == 1458
    assert metadata(result, "airlines")["rows_valid"] == 16
