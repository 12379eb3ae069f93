import zipfile
from dataclasses import replace
from pathlib import Path

import polars as pl
import pytest

from platform_assets.data import raw_files
from platform_assets.data.raw_files import RawFileError, locate, read_raw
from platform_assets.data.tables import FLIGHTS, TABLES, WEATHER

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


@pytest.mark.parametrize("method", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2])
def test_zip_archive_is_read_like_the_csv(tmp_path: Path, raw_dir: Path, method: int) -> None:
    csv_path = raw_dir / "flights.csv"
    zip_path = tmp_path / "flights.csv.zip"
    with zipfile.ZipFile(zip_path, "w", compression=method) as archive:
        archive.write(csv_path, "flights.csv")
    from_zip = read_raw(zip_path, FLIGHTS).frame
    from_csv = read_raw(csv_path, FLIGHTS).frame
    assert from_zip.equals(from_csv)


def test_a_corrupt_deflated_member_is_unreadable_not_misread(tmp_path: Path, raw_dir: Path) -> None:
    zip_path = tmp_path / "flights.csv.zip"
    with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.write(raw_dir / "flights.csv", "flights.csv")
        info = archive.getinfo("flights.csv")
    blob = bytearray(zip_path.read_bytes())
    data_start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    for offset in (data_start + info.compress_size // 2, data_start + info.compress_size - 1):
        broken = bytearray(blob)
        broken[offset] ^= 0xFF  # one flipped byte: a bad stream, or a stream whose CRC-32 differs
        path = tmp_path / f"broken-{offset}" / "flights.csv.zip"
        path.parent.mkdir()
        path.write_bytes(bytes(broken))
        with pytest.raises(RawFileError) as err:
            read_raw(path, FLIGHTS)
        assert err.value.rule == "readable zip archive" and err.value.file == str(path)


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


# --- the typed read (happy path) against the text read + cast (the path that diagnoses) -----------


def slow_read(path: Path, spec) -> pl.DataFrame:
    """The file read the slow way: every cell as text, fields counted per line, then cast."""
    text = raw_files._csv_bytes(path, path.read_bytes(), spec)
    strings = raw_files._read_strings(path, text, spec)
    raw_files._check_field_counts(path, text, strings.columns)
    return raw_files._cast_declared(path, strings, spec)


@pytest.mark.parametrize("table", sorted(TABLES))
def test_typed_read_of_the_real_files_equals_the_text_read_and_cast(real_data_dir: Path, table: str) -> None:
    spec = TABLES[table]
    path = locate(real_data_dir, spec)
    text = raw_files._csv_bytes(path, path.read_bytes(), spec)
    assert raw_files._read_typed(path, text, spec) is not None  # the real files take the fast path
    assert read_raw(path, spec).frame.equals(slow_read(path, spec), null_equal=True)


EDGE_VALUES = [
    "5", "+5", "-5", "-0", "05", " 5", "\t5", "5 ", "5\t", "1e3", "1E-3", "1.", ".5", "-.5e2", "1.0", "5.5",
    "inf", "-inf", "nan", "NaN", "Infinity", "0x10", "1_000", "2147483647", "2147483648", "-2147483649",
    "1.7976931348623157e309", "0.30000000000000004", "abc", "+", "-", "e5", "\u00a05", "\uff15", '" 5"', '"5"',
]


@pytest.mark.parametrize("dtype", raw_files.READER_TYPES, ids=str)
@pytest.mark.parametrize("value", EDGE_VALUES)
def test_typed_read_parses_a_value_as_the_cast_does_or_leaves_the_file_to_the_text_read(
    tmp_path: Path, value: str, dtype: pl.DataType
) -> None:
    """What _read_typed relies on: the CSV reader's parse of a declared column and _parse's cast
    of its text agree, or the typed read gives the file up (then the text read decides)."""
    spec = replace(TABLES["airlines"], columns={"carrier": pl.String(), "n": dtype})
    path = write_bytes(tmp_path / "airlines.csv", f"carrier,n\nAA,{value}\nB6,7\n".encode())
    text = path.read_bytes()
    typed = raw_files._read_typed(path, text, spec)
    strings = raw_files._read_strings(path, text, spec)
    cast = strings.select(raw_files._parse("n", dtype))["n"]
    if typed is None:
        assert cast[0] is None  # given up only where the cast fails too
    else:
        assert typed["n"].equals(cast, null_equal=True)
    # and through read_raw, a cell the cast cannot take keeps its text for quarantine either way
    frame = read_raw(path, spec).frame
    assert frame["n"].equals(cast, null_equal=True)
    assert frame["_cast_errors"][0] == (None if cast[0] is not None or strings["n"][0] is None else f"n={strings['n'][0]}")


def test_blank_before_a_number_is_a_cast_error_not_a_number(raw_dir: Path) -> None:
    """polars' typed reader would read ' 2' as 2; the declared cast refuses it, so the file takes
    the text read and the cell goes to quarantine as before."""
    path = raw_dir / "flights.csv"
    lines = path.read_bytes().split(b"\n")
    fields = lines[6].split(b",")
    fields[5] = b" 2"  # dep_delay
    lines[6] = b",".join(fields)
    path.write_bytes(b"\n".join(lines))
    frame = read_raw(path, FLIGHTS).frame
    assert frame["dep_delay"][5] is None and frame["_cast_errors"][5] == "dep_delay= 2"
    assert frame["_cast_errors"].null_count() == frame.height - 1


def test_short_row_found_by_the_typed_read_gives_the_error_of_the_text_read(raw_dir: Path) -> None:
    """A short row inside the file: the typed read sees nulls in the last column and counts fields;
    the message names file, column and rule exactly as the text read's diagnosis does."""
    path = raw_dir / "flights.csv"
    lines = path.read_bytes().split(b"\n")
    lines[10] = lines[10][: lines[10].rfind(b",")]  # loses time_hour
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(RawFileError) as fast:
        read_raw(path, FLIGHTS)
    with pytest.raises(RawFileError) as slow:
        slow_read(path, FLIGHTS)
    assert (fast.value.file, fast.value.column, fast.value.rule) == (str(path), "time_hour", "every row has all 19 fields")
    assert str(fast.value) == str(slow.value)
    assert "line 11 has 18 of 19 fields" in fast.value.detail and "truncated" not in fast.value.detail


def test_text_in_the_datetime_column_after_a_typed_read_gives_the_error_of_the_text_read(raw_dir: Path) -> None:
    path = raw_dir / "flights.csv"
    write_csv(pl.read_csv(path, infer_schema=False).with_columns(pl.lit("soon").alias("time_hour")), path)
    text = path.read_bytes()
    assert raw_files._read_typed(path, text, FLIGHTS) is not None
    with pytest.raises(RawFileError) as fast:
        read_raw(path, FLIGHTS)
    with pytest.raises(RawFileError) as slow:
        slow_read(path, FLIGHTS)
    assert (fast.value.column, fast.value.rule) == ("time_hour", "values parse as Datetime(time_unit='us', time_zone='UTC')")
    assert str(fast.value) == str(slow.value) and "'soon'" in str(fast.value)


def test_field_count_skips_blank_lines_and_numbers_lines_as_the_file_does(tmp_path: Path) -> None:
    blob = b"carrier,name\r\n9E,Endeavor\r\n\r\n\nAA\r\nB6,JetBlue\r\n"
    assert raw_files._first_short_line(blob, 2) == (5, 1)
    assert raw_files._first_short_line(blob.replace(b"AA\r\n", b"AA,American\r\n"), 2) is None
    path = write_bytes(tmp_path / "airlines.csv", blob)
    with pytest.raises(RawFileError) as err:
        read_raw(path, TABLES["airlines"])
    assert (err.value.column, err.value.detail) == ("name", "line 5 has 1 of 2 fields")


def partitioned(frame: pl.DataFrame) -> dict[str, list[int]]:
    """Reference split: each month's source rows, months in order of first appearance."""
    parts = frame.partition_by("year", "month", as_dict=True, maintain_order=True)
    return {f"{y}-{m:02d}": part["_source_row"].to_list() for (y, m), part in parts.items()}


def test_months_of_a_date_sorted_file_are_the_partitions_of_its_rows(real_data_dir: Path) -> None:
    raw = read_raw(locate(real_data_dir, FLIGHTS), FLIGHTS)
    assert raw_files._month_runs(raw.frame) is not None  # one run of rows per month: slices
    by_month = {key: part["_source_row"].to_list() for key, part in raw.by_month.items()}
    assert by_month == partitioned(raw.frame) and len(by_month) == 12
    assert sum(part.height for part in raw.by_month.values()) == raw.frame.height


def test_a_month_that_comes_back_later_in_the_file_still_gathers_all_its_rows(tmp_path: Path, raw_dir: Path) -> None:
    """Rows of January after February's: one partition each, in file order, nothing lost."""
    text = pl.read_csv(raw_dir / "flights.csv", infer_schema=False)
    path = write_csv(pl.concat([text.head(10), text.filter(pl.col("month") == "2").head(5), text.slice(10, 10)]), tmp_path / "flights.csv")
    raw = read_raw(path, FLIGHTS)
    assert raw_files._month_runs(raw.frame) is None
    by_month = {key: part["_source_row"].to_list() for key, part in raw.by_month.items()}
    assert by_month == {"2013-01": [*range(1, 11), *range(16, 26)], "2013-02": list(range(11, 16))}
