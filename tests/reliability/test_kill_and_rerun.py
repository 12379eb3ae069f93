"""SIGKILL a real run of ingestion + validation at every commit point, then rerun.

A reader of the killed run's state sees only whole files (every visible parquet reads in full,
every CURRENT pointer names a landed copy); the rerun succeeds and leaves byte for byte what an
uninterrupted run leaves, with rows in = valid + quarantined for every table.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import polars as pl
import pytest

from platform_assets.data.landing import POINTER
from platform_assets.paths import PlatformPaths
from tests.conftest import write_csv
from tests.defs.assets.helpers import materialize, sha256

ROOT = Path(__file__).resolve().parents[2]
PARTITION = "2013-01"
TABLES = ("weather", "flights")
ASSETS = ["raw_weather", "weather", "raw_flights", "flights"]
RENAMES = 8  # landing copy + CURRENT per table, then quarantine + validated per table
KILL_POINTS = [("before", n) for n in range(1, RENAMES + 1)] + [("after", 2), ("after", RENAMES)]


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory, real_data_dir: Path) -> Path:
    folder = tmp_path_factory.mktemp("raw")
    shutil.copy(real_data_dir / "weather.csv", folder / "weather.csv")
    flights = pl.read_csv(zipfile.ZipFile(real_data_dir / "flights.csv.zip").read("flights.csv"), infer_schema=False)
    write_csv(flights.filter(pl.col("month") == "1").head(2000), folder / "flights.csv")
    return folder


@pytest.fixture(scope="module")
def uninterrupted(raw: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    home = tmp_path_factory.mktemp("reference")
    assert materialize(ASSETS, home, raw, PARTITION).success
    paths = PlatformPaths(home)
    return {
        f"{kind}/{t}": sha256(f(t, PARTITION))
        for t in TABLES
        for kind, f in (("validated", paths.validated_file), ("quarantine", paths.quarantine_file))
    }


def run_child(home: Path, raw: Path, when: str, n: int) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "tests.reliability.kill_child", str(home), str(raw), PARTITION, when, str(n)]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)


def assert_readers_see_only_whole_files(home: Path) -> None:
    for path in home.rglob("*"):
        if path.name.startswith("."):
            assert path.name.endswith(".tmp"), path  # a killed write's temp file, invisible to globs
        elif path.suffix == ".parquet":
            pl.read_parquet(path)  # raises on a partial file
        elif path.name == POINTER:
            assert (path.parent / path.read_text().strip()).is_file(), path


@pytest.mark.parametrize("when, n", KILL_POINTS, ids=[f"{w}-rename-{n}" for w, n in KILL_POINTS])
def test_sigkill_then_rerun_conserves_rows_and_matches_an_uninterrupted_run(
    when: str, n: int, raw: Path, uninterrupted: dict[str, str], tmp_path: Path
) -> None:
    home = tmp_path / "home"
    child = run_child(home, raw, when, n)
    assert child.returncode == -signal.SIGKILL, child.stdout + child.stderr
    assert_readers_see_only_whole_files(home)

    assert materialize(ASSETS, home, raw, PARTITION).success
    assert_readers_see_only_whole_files(home)
    paths = PlatformPaths(home)
    for table in TABLES:
        landed = pl.read_parquet(paths.landing_dir(table, PARTITION) / (paths.landing_dir(table, PARTITION) / POINTER).read_text().strip())
        valid = pl.read_parquet(paths.validated_file(table, PARTITION))
        quarantined = pl.read_parquet(paths.quarantine_file(table, PARTITION))
        assert valid.height + quarantined.height == landed.height
        assert len(list(paths.landing_dir(table, PARTITION).glob("*.parquet"))) == 1
    got = {
        f"{kind}/{t}": sha256(f(t, PARTITION))
        for t in TABLES
        for kind, f in (("validated", paths.validated_file), ("quarantine", paths.quarantine_file))
    }
    assert got == uninterrupted


def test_the_kill_points_cover_every_rename_of_the_run(raw: Path, tmp_path: Path) -> None:
    child = run_child(tmp_path / "home", raw, "before", RENAMES + 1)
    assert child.returncode == 3 and "finished True" in child.stdout, child.stdout + child.stderr
