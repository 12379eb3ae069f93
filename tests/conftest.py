from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

from platform_assets.data.raw_files import packaged_data_dir
from platform_assets.settings import reload

SMALL_FLIGHT_ROWS = 2000  # per month, for the small raw folder


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    return packaged_data_dir()


@pytest.fixture(scope="session")
def real_flights_text(real_data_dir: Path) -> pl.DataFrame:
    """The real flights file as text, so corrupted copies keep every other value byte for byte."""
    import zipfile

    blob = zipfile.ZipFile(real_data_dir / "flights.csv.zip").read("flights.csv")
    return pl.read_csv(blob, infer_schema=False)


def write_csv(frame: pl.DataFrame, path: Path) -> Path:
    frame.write_csv(path, null_value="NA")
    return path


@pytest.fixture
def raw_dir(tmp_path: Path, real_data_dir: Path, real_flights_text: pl.DataFrame) -> Path:
    """A raw folder like the package's: real reference tables, real flights for Jan-Mar (sampled)."""
    folder = tmp_path / "raw"
    folder.mkdir()
    for name in ("weather.csv", "planes.csv", "airports.csv", "airlines.csv"):
        shutil.copy(real_data_dir / name, folder / name)
    small = real_flights_text.filter(pl.col("month").is_in(["1", "2", "3"])).group_by(
        "month", maintain_order=True
    ).head(SMALL_FLIGHT_ROWS)
    write_csv(small.select(real_flights_text.columns), folder / "flights.csv")
    return folder


@pytest.fixture(autouse=True)
def fresh_settings() -> Iterator[None]:
    """Settings are read once per process; each test reads them afresh from its environment."""
    reload()
    yield
    reload()


@pytest.fixture
def platform_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "platform"
    monkeypatch.setenv("PLATFORM_HOME", str(home))
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))
    reload()
    return home
