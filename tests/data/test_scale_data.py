from pathlib import Path

import polars as pl
import pytest

from benchmarks.scale_data import scale_raw
from platform_assets.data.contracts import contract_for
from platform_assets.data.raw_files import locate, read_raw
from platform_assets.data.tables import TABLES, TableSpec

MONTH = "2013-01"


@pytest.fixture(scope="module")
def doubled(tmp_path_factory: pytest.TempPathFactory, real_data_dir: Path) -> Path:
    out = tmp_path_factory.mktemp("raw2")
    scale_raw(2, out, real_data_dir, months=[1])
    return out


def frame(folder: Path, spec: TableSpec) -> pl.DataFrame:
    return read_raw(locate(folder, spec), spec).frame


def test_doubles_flights_planes_and_airlines(doubled: Path, real_data_dir: Path) -> None:
    january = frame(real_data_dir, TABLES["flights"]).filter(pl.col("month") == 1)
    scaled = frame(doubled, TABLES["flights"])
    assert scaled.height == 2 * january.height
    for name in ("planes", "airlines"):
        assert frame(doubled, TABLES[name]).height == 2 * frame(real_data_dir, TABLES[name]).height
    # the copy has the original's distributions: same delays per origin and hour, twice over
    stats = ["origin", "hour"]
    delays = pl.col("arr_delay").sum().alias("delay"), pl.len().alias("n")
    original = january.group_by(stats).agg(*delays).with_columns(pl.col("delay", "n") * 2)
    assert scaled.group_by(stats).agg(*delays).sort(stats).equals(original.sort(stats))


@pytest.mark.parametrize("table", sorted(TABLES))
def test_keys_unique_and_every_row_passes_the_contract(doubled: Path, table: str) -> None:
    spec = TABLES[table]
    rows = frame(doubled, spec)
    assert not rows.select(pl.struct(spec.key).is_duplicated().any()).item()
    contract = contract_for(table, MONTH if spec.monthly else None)
    contract.pandera_schema().validate(rows, lazy=True)
    valid, quarantined = contract.split(rows, table)
    assert (valid.height, quarantined.height) == (rows.height, 0)


def test_copies_reference_airlines_planes_and_airports_as_the_original_does(
    doubled: Path, real_data_dir: Path
) -> None:
    flights = frame(doubled, TABLES["flights"])
    airports = set(frame(doubled, TABLES["airports"])["faa"])
    january = frame(real_data_dir, TABLES["flights"]).filter(pl.col("month") == 1)
    assert set(flights["carrier"]) <= set(frame(doubled, TABLES["airlines"])["carrier"])
    # dests the airports file lacks (San Juan and the like) stay the only ones missing
    assert set(flights["dest"]) - airports == set(january["dest"]) - airports
    planes = set(frame(doubled, TABLES["planes"])["tailnum"])
    original = set(frame(real_data_dir, TABLES["airlines"])["carrier"])
    known = flights.group_by(pl.col("carrier").is_in(original).alias("original")).agg(
        pl.col("tailnum").is_in(planes).sum()
    )
    # the copy finds its planes exactly as often as the original does
    assert known["tailnum"].n_unique() == 1 and known.height == 2
