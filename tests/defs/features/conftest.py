"""A small real warehouse, built once per session, and fresh Feast state for every test."""

import shutil
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from platform_assets.defs.ingestion.assets import raw_assets
from platform_assets.defs.validation.assets import validated_assets
from platform_assets.defs.warehouse.assets import warehouse_models
from platform_assets.lib.dbt import dbt_resource
from platform_assets.lib.resources import FeastResource, PlatformPathsResource, RawSourceResource
from platform_assets.paths import PlatformPaths
from tests.conftest import write_csv

MONTHS = ("2013-01", "2013-02")
# Every 12th flight keeps each month's whole date range (so the rolling features vary) in ~2,300 rows.
FLIGHT_STRIDE = 12


@pytest.fixture(scope="session")
def feature_tables(
    tmp_path_factory: pytest.TempPathFactory, real_data_dir: Path, real_flights_text: pl.DataFrame
) -> Path:
    """Feature tables dbt wrote for two months of sampled real flights (built once)."""
    root = tmp_path_factory.mktemp("feature_warehouse")
    raw = root / "raw"
    raw.mkdir()
    for name in ("weather.csv", "planes.csv", "airports.csv", "airlines.csv"):
        shutil.copy(real_data_dir / name, raw / name)
    months = [str(int(m[-2:])) for m in MONTHS]
    sample = real_flights_text.filter(pl.col("month").is_in(months)).gather_every(FLIGHT_STRIDE)
    write_csv(sample, raw / "flights.csv")
    home = root / "platform"
    resources = {
        "platform": PlatformPathsResource(home=str(home)),
        "raw_source": RawSourceResource(data_dir=str(raw)),
        "dbt": dbt_resource("local"),
    }
    upstream = [*raw_assets, *validated_assets]
    with pytest.MonkeyPatch.context() as env:
        env.setenv("PLATFORM_HOME", str(home))
        env.setenv("DAGSTER_HOME", str(home / "dagster"))
        reference = ["raw_planes", "planes", "raw_airports", "airports", "raw_airlines", "airlines"]
        dg.materialize(upstream, selection=reference, resources=resources)
        # Both months in one run of each step: one dbt build instead of two.
        months = {"dagster/asset_partition_range_start": MONTHS[0], "dagster/asset_partition_range_end": MONTHS[-1]}
        monthly = ["raw_flights", "flights", "raw_weather", "weather"]
        dg.materialize(upstream, selection=monthly, tags=months, resources=resources)
        dg.materialize([warehouse_models], tags=months, resources=resources)
    return PlatformPaths(home).feature_tables


@pytest.fixture
def feast_home(platform_home: Path, feature_tables: Path) -> Path:
    """PLATFORM_HOME (set in the environment) holding a copy of the feature tables, no Feast state."""
    shutil.copytree(feature_tables, PlatformPaths(platform_home).feature_tables)
    return platform_home


@pytest.fixture
def feast_resources(feast_home: Path) -> dict:
    return {"platform": PlatformPathsResource(home=str(feast_home)), "feast": FeastResource()}
