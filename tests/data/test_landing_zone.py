from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import polars as pl
import pytest

from platform_assets.data import landing_zone
from platform_assets.data.landing_zone import LandingState, months_in, plan, scan, table_of
from platform_assets.replay.feeder import Feeder

REFERENCE = {"planes.csv": "tailnum,year\nN1,2004\n", "airports.csv": "faa,name\nEWR,Newark\n", "airlines.csv": "carrier,name\nUA,United\n"}


def monthly_text(months: list[str], extra: str = "") -> str:
    rows = "".join(f"{m[:4]},{int(m[5:])},1{extra}\n" for m in months)
    return f"year,month,day\n{rows}"


def land(folder: Path, name: str, text: str | bytes, mtime: int) -> Path:
    """A landed file with a set mtime (seconds), so which one is newest is decided by the test."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    os.utime(path, ns=(mtime * 10**9, mtime * 10**9))
    return path


def land_reference(folder: Path, mtime: int = 1) -> None:
    for name, text in REFERENCE.items():
        land(folder, name, text, mtime)


YEAR = [f"2013-{m:02d}" for m in range(1, 13)]


@pytest.mark.parametrize(
    ("name", "table"),
    [
        ("flights.csv.zip", "flights"),
        ("flights_2013-06.csv", "flights"),
        ("flights_2013-01_2013-05.zip", "flights"),
        ("weather.csv", "weather"),
        ("planes.csv", "planes"),
        ("airports-v2.csv", "airports"),
        ("airlines.csv.zip", "airlines"),
        (".flights_2013-06.csv.1a2b.tmp", None),
        (".weather.csv", None),
        ("flights_2013-06.csv.tmp", None),
        ("flights_2013-06.csv.part", None),
        ("readme.txt", None),
        ("routes.csv", None),
    ],
)
def test_a_file_name_says_its_table(name: str, table: str | None) -> None:
    assert table_of(name) == table


def test_months_of_a_file_from_its_year_and_month_columns(tmp_path: Path) -> None:
    text = monthly_text(["2013-03", "2013-01", "2013-03"])
    csv = land(tmp_path, "flights_x.csv", text, 1)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("flights_x.csv", text)
    zipped = land(tmp_path, "flights_x.csv.zip", buffer.getvalue(), 1)
    assert months_in(csv) == months_in(zipped) == ("2013-01", "2013-03")


def test_a_monthly_file_without_a_month_column_plans_nothing_and_says_why(tmp_path: Path) -> None:
    land_reference(tmp_path)
    land(tmp_path, "flights_bad.csv", "year,day\n2013,1\n", 2)
    land(tmp_path, "weather.csv", monthly_text(["2013-01"]), 2)
    [bad] = [f for f in scan(tmp_path) if f.name == "flights_bad.csv"]
    assert bad.months == () and "month" in (bad.problem or "")
    planned = plan(scan(tmp_path))
    assert planned.months == []
    assert any(n.startswith("flights_bad.csv: months unreadable") for n in planned.notes)
    assert "waiting: 2013-01 (no flights file)" in planned.notes


def test_a_scan_reuses_hash_and_months_of_an_unchanged_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    land(tmp_path, "flights_a.csv", monthly_text(["2013-01"]), 1)
    land(tmp_path, "weather_a.csv", monthly_text(["2013-01"]), 1)
    first = scan(tmp_path)
    read: list[str] = []
    inspect = landing_zone.inspect
    monkeypatch.setattr(landing_zone, "inspect", lambda path, table: read.append(path.name) or inspect(path, table))
    assert scan(tmp_path, first) == first and read == []
    land(tmp_path, "flights_a.csv", monthly_text(["2013-02"]), 2)
    again = scan(tmp_path, first)
    assert read == ["flights_a.csv"]
    assert {f.name: f.months for f in again} == {"flights_a.csv": ("2013-02",), "weather_a.csv": ("2013-01",)}
    # what the cursor carries reads back equal
    assert LandingState.from_cursor(LandingState(files=again).to_cursor()).files == again


def test_a_whole_year_file_is_one_range_run_and_month_files_one_run_each(tmp_path: Path) -> None:
    land_reference(tmp_path)
    land(tmp_path, "flights.csv", monthly_text(YEAR), 2)
    land(tmp_path, "weather.csv", monthly_text(YEAR), 2)
    [year] = plan(scan(tmp_path)).months
    assert (year.start, year.end, len(year.months)) == ("2013-01", "2013-12", 12)
    assert (year.flights.name, year.weather.name) == ("flights.csv", "weather.csv")

    months = tmp_path / "months"
    land_reference(months)
    for m in ("2013-01", "2013-02"):
        land(months, f"flights_{m}.csv", monthly_text([m]), 2)
        land(months, f"weather_{m}.csv", monthly_text([m]), 2)
    runs = plan(scan(months)).months
    assert [(r.months, r.flights.name, r.weather.name) for r in runs] == [
        (("2013-01",), "flights_2013-01.csv", "weather_2013-01.csv"),
        (("2013-02",), "flights_2013-02.csv", "weather_2013-02.csv"),
    ]


def test_the_newest_landed_file_wins_a_month(tmp_path: Path) -> None:
    land_reference(tmp_path)
    land(tmp_path, "flights.csv", monthly_text(YEAR[:4]), 2)
    land(tmp_path, "weather.csv", monthly_text(YEAR[:4]), 2)
    land(tmp_path, "flights_2013-03.csv", monthly_text(["2013-03"], extra=""), 3)
    runs = plan(scan(tmp_path)).months
    assert [(r.months, r.flights.name) for r in runs] == [
        (("2013-01", "2013-02"), "flights.csv"),
        (("2013-03",), "flights_2013-03.csv"),
        (("2013-04",), "flights.csv"),
    ]
    # same mtime: the name decides, so every scan picks the same file
    land(tmp_path, "flights_2013-03b.csv", monthly_text(["2013-03"]), 3)
    [march] = [r for r in plan(scan(tmp_path)).months if r.months == ("2013-03",)]
    assert march.flights.name == "flights_2013-03b.csv"


def test_reference_tables_go_first_and_months_wait_for_all_three(tmp_path: Path) -> None:
    land(tmp_path, "flights_2013-01.csv", monthly_text(["2013-01"]), 1)
    land(tmp_path, "weather_2013-01.csv", monthly_text(["2013-01"]), 1)
    land(tmp_path, "planes.csv", REFERENCE["planes.csv"], 1)
    early = plan(scan(tmp_path))
    assert [f.name for f in early.reference.files] == ["planes.csv"]
    assert early.months == []
    assert "months wait for the reference table(s) airports, airlines" in early.notes
    land_reference(tmp_path, mtime=2)
    ready = plan(scan(tmp_path), requested_reference=early.reference.fingerprint)
    assert [f.name for f in ready.reference.files] == ["planes.csv", "airports.csv", "airlines.csv"]
    assert [r.months for r in ready.months] == [("2013-01",)]
    (tmp_path / "airlines.csv").unlink()  # a removed file runs nothing; the months wait again
    gone = plan(scan(tmp_path), requested_reference=ready.reference.fingerprint)
    assert gone.empty and "months wait for the reference table(s) airlines" in gone.notes


def test_files_landed_again_with_the_same_content_plan_nothing(tmp_path: Path) -> None:
    land_reference(tmp_path)
    land(tmp_path, "flights_2013-01.csv", monthly_text(["2013-01"]), 2)
    land(tmp_path, "weather_2013-01.csv", monthly_text(["2013-01"]), 2)
    state = LandingState(files=scan(tmp_path))
    first = plan(state.files)
    state.record(first)
    assert first.reference is not None and len(first.months) == 1
    for name, text in REFERENCE.items():
        land(tmp_path, name, text, 5)
    land(tmp_path, "flights_2013-01.csv", monthly_text(["2013-01"]), 5)
    state = LandingState.from_cursor(state.to_cursor())
    state.files = scan(tmp_path, state.files)
    again = plan(state.files, state.months, state.reference)
    assert again.empty
    assert "already requested from the same files: 2013-01" in again.notes
    # changed content is a new run for the month, under a new run key
    land(tmp_path, "flights_2013-01.csv", monthly_text(["2013-01"], extra="\n2013,1,2"), 6)
    changed = plan(scan(tmp_path, state.files), state.months, state.reference)
    assert changed.reference is None
    [run] = changed.months
    assert run.months == ("2013-01",) and run.run_key != first.months[0].run_key


def test_consecutive_months_split_where_one_was_requested_before(tmp_path: Path) -> None:
    land_reference(tmp_path)
    land(tmp_path, "flights.csv", monthly_text(YEAR[:3]), 2)
    land(tmp_path, "weather.csv", monthly_text(YEAR[:3]), 2)
    [whole] = plan(scan(tmp_path)).months
    runs = plan(scan(tmp_path), {"2013-02": whole.fingerprint}).months
    assert [r.months for r in runs] == [("2013-01",), ("2013-03",)]


def test_feeder_lands_months_with_the_source_values(tmp_path: Path, real_data_dir: Path) -> None:
    feeder = Feeder(None, tmp_path / "incoming")
    assert [p.name for p in feeder.land_reference()] == ["planes.csv", "airports.csv", "airlines.csv"]
    assert (tmp_path / "incoming" / "planes.csv").read_bytes() == (real_data_dir / "planes.csv").read_bytes()
    january = feeder.land_months(["2013-01"])
    spring = feeder.land_months(["2013-02", "2013-03"])
    assert [p.name for p in january + spring] == [
        "flights_2013-01.csv", "weather_2013-01.csv", "flights_2013-02_2013-03.csv", "weather_2013-02_2013-03.csv",
    ]
    source = (real_data_dir / "weather.csv").read_text().splitlines()
    for landed, months in ((january[1], ("1",)), (spring[1], ("2", "3"))):
        # weather.csv is sorted by airport, then hour: each landed file keeps the source's order
        expected = [source[0], *(line for line in source[1:] if line.split(",")[2] in months)]
        assert landed.read_text().splitlines() == expected
    flights = pl.read_csv(spring[0], infer_schema=False)
    assert flights.columns[:3] == ["year", "month", "day"] and set(flights["month"]) == {"2", "3"}
    assert sorted(os.listdir(tmp_path / "incoming")) == sorted(p.name for p in [*january, *spring, *feeder.land_reference()])
    with pytest.raises(ValueError, match="no flights rows for 2014-01"):
        feeder.land_months(["2014-01"])


def test_a_month_after_the_reference_year_is_planned_and_a_gap_splits_runs(tmp_path: Path) -> None:
    land_reference(tmp_path)
    for m in ("2013-12", "2014-01"):
        land(tmp_path, f"flights_{m}.csv", monthly_text([m]), 2)
        land(tmp_path, f"weather_{m}.csv", monthly_text([m]), 2)
    land(tmp_path, "flights_2014-03.csv", monthly_text(["2014-03"]), 2)
    land(tmp_path, "weather_2014-03.csv", monthly_text(["2014-03"]), 2)
    planned = plan(scan(tmp_path))
    assert [r.months for r in planned.months] == [("2013-12",), ("2014-01",), ("2014-03",)]
