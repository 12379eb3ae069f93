import zipfile
from pathlib import Path

import polars as pl
import pytest

from platform_assets.core.raw_files import RawFileError, locate, read_raw
from platform_assets.core.tables import FLIGHTS, TABLES, WEATHER

from ..conftest import write_csv

EXPECTED_ROWS = {"flights": 336_776, "weather": 26_115, "planes": 3_322, "airports": 1_458, "airlines": 16}


@pytest.mark.parametrize("table", sorted(TABLES))
def test_real_files_parse_with_declared_types_and_no_cast_errors(real_data_dir: Path, table: str) -> None:
    spec = TABLES[table]
    raw = read_raw(locate(real_data_dir, spec), spec)
    assert raw.frame.height == EXPECTED_ROWS[table]
    assert {c: raw.frame.schema[c] for c in spec.columns} == spec.columns
    assert raw.frame["_cast_errors"].null_count() == raw.frame.height
    assert raw.frame["_source_row"].to_list()[:3] == [1, 2, 3]


def test_weather_visib_mixed_integer_and_decimal_text_reads_as_float(real_data_dir: Path) -> None:
    frame = read_raw(real_data_dir / "weather.csv", WEATHER).frame
    assert frame.schema["visib"] == pl.Float64
    assert {10.0, 1.5} <= set(frame["visib"].unique().to_list())


def test_missing_required_column_names_file_column_and_rule(raw_dir: Path) -> None:
    path = raw_dir / "flights.csv"
    write_csv(pl.read_csv(path, infer_schema=False).drop("dep_delay"), path)
    with pytest.raises(RawFileError) as err:
        read_raw(path, FLIGHTS)
    assert (err.value.file, err.value.column, err.value.rule) == (str(path), "dep_delay", "required column")
    assert "flights.csv" in str(err.value) and "dep_delay" in str(err.value)


def test_empty_file_is_refused(raw_dir: Path) -> None:
    path = raw_dir / "planes.csv"
    path.write_bytes(b"")
    with pytest.raises(RawFileError, match="file not empty") as err:
        read_raw(path, TABLES["planes"])
    assert err.value.file == str(path)


def test_bad_encoding_names_line_and_column(raw_dir: Path) -> None:
    path = raw_dir / "airlines.csv"
    lines = path.read_bytes().split(b"\n")
    lines[3] = lines[3].replace(b"Inc.", b"Inc\xff")
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(RawFileError) as err:
        read_raw(path, TABLES["airlines"])
    assert err.value.rule == "UTF-8 encoding"
    assert err.value.column == "name"
    assert "line 4" in err.value.detail


def test_truncated_zip_is_unreadable(tmp_path: Path, real_data_dir: Path) -> None:
    blob = (real_data_dir / "flights.csv.zip").read_bytes()
    path = tmp_path / "flights.csv.zip"
    path.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(RawFileError, match="readable zip archive"):
        read_raw(path, FLIGHTS)


def test_zip_archive_is_read_like_the_csv(tmp_path: Path, raw_dir: Path) -> None:
    csv_path = raw_dir / "flights.csv"
    zip_path = tmp_path / "flights.csv.zip"
    with zipfile.ZipFile(zip_path, "w") as archive:
        archive.write(csv_path, "flights.csv")
    from_zip = read_raw(zip_path, FLIGHTS).frame
    from_csv = read_raw(csv_path, FLIGHTS).frame
    assert from_zip.equals(from_csv)


def test_few_unparseable_cells_keep_their_text_for_quarantine(raw_dir: Path) -> None:
    path = raw_dir / "flights.csv"
    text = pl.read_csv(path, infer_schema=False)
    text = text.with_columns(
        pl.when(pl.int_range(pl.len()) == 5).then(pl.lit("late")).otherwise(pl.col("dep_delay")).alias("dep_delay")
    )
    write_csv(text, path)
    frame = read_raw(path, FLIGHTS).frame
    assert frame["dep_delay"][5] is None
    assert frame["_cast_errors"][5] == "dep_delay=late"
    assert frame["_cast_errors"].null_count() == frame.height - 1


def test_text_in_a_whole_numeric_column_is_a_structural_break(raw_dir: Path) -> None:
    path = raw_dir / "planes.csv"
    text = pl.read_csv(path, infer_schema=False).with_columns(pl.lit("many").alias("seats"))
    write_csv(text, path)
    with pytest.raises(RawFileError) as err:
        read_raw(path, TABLES["planes"])
    assert err.value.column == "seats"
    assert err.value.rule == "values parse as Int32"
    assert "'many'" in err.value.detail


def test_csv_cut_mid_row_is_refused_naming_the_first_missing_column(raw_dir: Path) -> None:
    path = raw_dir / "airports.csv"
    blob = path.read_bytes()
    cut = blob[: blob.rfind(b",", 0, len(blob) - 5)]  # last line loses its final field
    path.write_bytes(cut)
    with pytest.raises(RawFileError) as err:
        read_raw(path, TABLES["airports"])
    assert (err.value.column, err.value.rule) == ("tzone", "every row has all 8 fields")
    assert "line 1459 has 7 of 8 fields" in err.value.detail and "truncated" in err.value.detail


def test_short_row_in_a_quoted_csv_is_found_by_the_csv_parser(tmp_path: Path) -> None:
    path = write_bytes(tmp_path / "airlines.csv", b'carrier,name\n9E,"Endeavor, Air"\nAA\nB6,JetBlue\n')
    with pytest.raises(RawFileError) as err:
        read_raw(path, TABLES["airlines"])
    assert (err.value.column, err.value.detail) == ("name", "line 3 has 1 of 2 fields")


def test_header_only_file_is_refused(tmp_path: Path) -> None:
    path = write_bytes(tmp_path / "airlines.csv", b"carrier,name\n")
    with pytest.raises(RawFileError, match="file has data rows"):
        read_raw(path, TABLES["airlines"])


def test_renamed_column_names_the_missing_one_and_the_unexpected_one(raw_dir: Path) -> None:
    path = raw_dir / "weather.csv"
    write_csv(pl.read_csv(path, infer_schema=False).rename({"wind_speed": "windspeed"}), path)
    with pytest.raises(RawFileError) as err:
        read_raw(path, WEATHER)
    assert (err.value.column, err.value.rule) == ("wind_speed", "required column")
    assert "unexpected column(s) ['windspeed'] (renamed?)" in err.value.detail


def write_bytes(path: Path, blob: bytes) -> Path:
    path.write_bytes(blob)
    return path


def test_missing_file_names_the_folder(tmp_path: Path) -> None:
    with pytest.raises(RawFileError, match="file exists") as err:
        locate(tmp_path, FLIGHTS)
    assert str(tmp_path) in str(err.value)
