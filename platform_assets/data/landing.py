"""The landing zone: immutable, content-addressed parquet copies of raw files.

A landing file's name is derived from the source file's sha256 and the declared schema, so landing
the same file twice writes nothing, and a changed source lands beside the old copy instead of
replacing it. `CURRENT` in each folder names the copy validation reads: a partition is validated
from one copy, so rows of two versions of a file are never mixed.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from platform_assets.data.raw_files import RawFile, RawFileError
from platform_assets.data.tables import TableSpec
from platform_assets.paths import PlatformPaths

POINTER = "CURRENT"


@dataclass(frozen=True)
class Landed:
    path: Path
    rows: int
    already_landed: bool
    replaced_sha256: str | None = None
    """The source hash of the copy CURRENT named before, when this landing changed it."""


def current_copy(folder: Path) -> Path | None:
    pointer = folder / POINTER
    return folder / pointer.read_text().strip() if pointer.exists() else None


def changed_source(raw: RawFile, spec: TableSpec, folder: Path) -> str | None:
    """The source sha256 of the landed copy a different file would replace, or None."""
    current = current_copy(folder)
    if current is None or current.name == f"{landing_id(raw, spec)}.parquet":
        return None
    return pl.scan_parquet(current).select("_source_sha256").head(1).collect().item()


def landing_id(raw: RawFile, spec: TableSpec) -> str:
    fingerprint = f"{raw.sha256}|{sorted((c, str(t)) for c, t in spec.columns.items())}"
    return hashlib.sha256(fingerprint.encode()).hexdigest()[:16]


def partition_rows(raw: RawFile, spec: TableSpec, partition: str | None) -> pl.DataFrame:
    if partition is None:
        return raw.frame
    rows = raw.by_month.get(partition)
    if rows is None or rows.height == 0:
        raise RawFileError(raw.path, column="month", rule="partition has rows", detail=f"no rows for {partition}")
    return rows


def unroutable_rows(raw: RawFile, months: list[str]) -> pl.DataFrame:
    """Rows whose year-month is unparseable or outside every partition: landed apart, never dropped."""
    stray = [part for key, part in raw.by_month.items() if key not in months]
    return pl.concat(stray) if stray else raw.frame.clear()


def land(paths: PlatformPaths, spec: TableSpec, raw: RawFile, rows: pl.DataFrame, folder: Path) -> Landed:
    target = folder / f"{landing_id(raw, spec)}.parquet"
    replaced = changed_source(raw, spec, folder)
    already = target.exists()
    if not already:
        lineage = rows.with_columns(
            pl.lit(str(raw.path)).alias("_source_file"),
            pl.lit(raw.sha256).alias("_source_sha256"),
            pl.lit(datetime.now(UTC)).cast(pl.Datetime("us", "UTC")).alias("_ingested_at"),
        )
        _write_new(lineage, target)
    if current_copy(folder) != target:
        _point_to(folder, target.name)
    return Landed(path=target, rows=rows.height, already_landed=already, replaced_sha256=replaced)

def read_current(paths: PlatformPaths, table: str, partition: str | None) -> tuple[Path, pl.DataFrame]:
    folder = paths.landing_dir(table, partition)
    pointer = folder / POINTER
    if not pointer.exists():
        where = f"{table}[{partition}]" if partition else table
        raise FileNotFoundError(f"no landed copy of {where} under {folder}: materialize raw_{table} first")
    path = folder / pointer.read_text().strip()
    return path, pl.read_parquet(path)


def _write_new(frame: pl.DataFrame, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    # unique temp name: two runs landing the same file never write into one temp file
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    try:
        frame.write_parquet(tmp, compression="zstd")
        tmp.chmod(0o444)  # landing copies are never modified; read-only before it becomes visible
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _point_to(folder: Path, name: str) -> None:
    tmp = folder / f".{POINTER}.{uuid.uuid4().hex}.tmp"
    try:
        tmp.write_text(name + "\n")
        os.replace(tmp, folder / POINTER)
    finally:
        tmp.unlink(missing_ok=True)
