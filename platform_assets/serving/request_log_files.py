"""The request log's files: a folder per served model and day, whole parquet files only.

    $PLATFORM_HOME/serving/request_log/<model>/day=YYYY-MM-DD/
        <time>-<id>.parquet            rows the server wrote in one flush
        compacted-<time>-<id>.parquet  the rows of the files it replaces (named in its parquet metadata)
        dropped-<time>-<id>.json       how many answered rows the server could not keep (buffer full)

A day is the flight's scheduled date, the same day its outcome is validated, so online evaluation
joins one partition with one day's labels. Every file appears by rename of a finished dot-file, so
no reader sees a partial one. `compact_day` writes one file with the rows of the day's live files,
names them in its metadata, renames it into place and only then deletes them; a reader leaves out
every file a compacted file names, and reads again when its listing changed under it (a compaction
finished meanwhile), so it neither counts a row twice nor misses one.
"""

from __future__ import annotations

import fcntl
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from platform_assets.paths import PlatformPaths

if TYPE_CHECKING:
    import polars as pl

COMPACTED = "compacted-"
DROPPED = "dropped-"
REPLACES = "request_log.replaces"
READ_ATTEMPTS = 20
# Compacted files a day keeps before a compaction merges them all (see compact_day).
MAX_COMPACTED = 4


def request_log_dir(paths: PlatformPaths, model: str) -> Path:
    """The log of one served model (its registered name)."""
    return paths.home / "serving" / "request_log" / model


def day_dir(paths: PlatformPaths, model: str, day: str) -> Path:
    return request_log_dir(paths, model) / f"day={day}"


def log_schema() -> dict[str, Any]:
    import polars as pl

    # One row per (instance, variant): shadow mode logs the champion's answer and the challenger's
    # unanswered score; `features` is the JSON of the feature values actually served.
    return {
        "request_id": pl.String,
        "received_at": pl.Datetime("us", "UTC"),
        "flight_date": pl.String,
        "flight_id": pl.String,
        "event_timestamp": pl.Datetime("us", "UTC"),
        "instance": pl.String,
        "features": pl.String,
        "missing_features": pl.List(pl.String),
        "variant": pl.String,
        "answered": pl.Boolean,
        "model_version": pl.String,
        "score": pl.Float64,
        "latency_ms": pl.Float64,
    }


def encode(values: dict[str, Any] | str) -> str:
    """JSON of a served instance or feature row (NaN as null); a few microseconds with orjson
    (KServe's own JSON library), where the standard library's takes ~8 per row."""
    import orjson

    if isinstance(values, str):  # encoded by an earlier flush that failed
        return values
    try:
        return orjson.dumps(values, default=str).decode()
    except TypeError:  # what orjson refuses (an integer beyond 64 bits) the standard library takes
        return json.dumps(values, default=str, separators=(",", ":"))


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_SEPARATOR = "\x1f"


def rows_frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    """The log's frame of the rows the server handed over (dicts of what it served).

    Built from plain column lists: polars converting dicts, datetimes or nested lists holds the GIL
    for milliseconds (4 ms for 500 rows, measured), a stall of the event loop answering requests,
    where Python loops let it in at every switch interval."""
    import polars as pl

    schema = log_schema()
    plain: dict[str, list[Any]] = {name: [row[name] for row in rows] for name in schema}
    for name in ("instance", "features"):
        plain[name] = [encode(v) for v in plain[name]]
    for name in ("received_at", "event_timestamp"):
        plain[name] = [(t - _EPOCH) // _MICROSECOND for t in plain[name]]
    plain["missing_features"] = [_SEPARATOR.join(m) for m in plain["missing_features"]]
    staged = schema | {"received_at": pl.Int64, "event_timestamp": pl.Int64, "missing_features": pl.String}
    missing = pl.col("missing_features")
    return pl.DataFrame(plain, schema=staged).with_columns(
        pl.col("received_at", "event_timestamp").cast(schema["received_at"]),
        pl.when(missing == "")
        .then(pl.lit([], dtype=schema["missing_features"]))
        .otherwise(missing.str.split(_SEPARATOR))
        .alias("missing_features"),
    )


def _new_name(prefix: str = "", suffix: str = ".parquet") -> str:
    return f"{prefix}{datetime.now(UTC):%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:8]}{suffix}"


def _publish(folder: Path, name: str, write: Any) -> Path:
    """Write through `write(tmp_path)` under a dot-name, then rename: readers see whole files."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / name
    tmp = folder / f".{name}.tmp"
    try:
        write(tmp)
        tmp.rename(target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def write_rows(folder: Path, frame: pl.DataFrame) -> Path:
    """One flush's rows of one day, as a new file."""
    return _publish(folder, _new_name(), frame.write_parquet)


def write_dropped(folder: Path, rows: int) -> Path:
    """A record of `rows` answered rows of the day that were not kept."""
    return _publish(folder, _new_name(DROPPED, ".json"), lambda p: p.write_text(json.dumps({"rows": rows})))


def dropped_rows(paths: PlatformPaths, model: str, day: str) -> int:
    folder = day_dir(paths, model, day)
    return sum(json.loads(p.read_text())["rows"] for p in folder.glob(f"{DROPPED}*.json"))


def _replaced(path: Path) -> list[str]:
    import polars as pl

    return json.loads(pl.read_parquet_metadata(path).get(REPLACES, "[]"))


def _listing(folder: Path) -> tuple[list[Path], set[str]]:
    """The folder's live files (sorted), and the names the compacted files among them replace."""
    files = sorted(p for p in folder.glob("*.parquet"))
    replaced: set[str] = set()
    for path in files:
        if path.name.startswith(COMPACTED):
            replaced.update(_replaced(path))
    return [p for p in files if p.name not in replaced], replaced


def live_files(folder: Path) -> list[Path]:
    """The files a reader reads: every parquet file no compacted file replaces."""
    for _ in range(READ_ATTEMPTS):
        try:
            return _listing(folder)[0]
        except FileNotFoundError:  # a compacted file replaced by a newer one and deleted meanwhile
            continue
    raise RuntimeError(f"{folder}: the listing kept changing during {READ_ATTEMPTS} attempts")


def read_day(paths: PlatformPaths, model: str, day: str) -> pl.DataFrame:
    """Every row logged for `model` for flights of `day` (empty frame with the log's schema when none)."""
    import polars as pl

    folder = day_dir(paths, model, day)
    for _ in range(READ_ATTEMPTS):
        files = live_files(folder)
        try:
            frames = [pl.read_parquet(f) for f in files]
        except FileNotFoundError:  # compacted meanwhile: the compacted file holds these rows
            continue
        # A file listed and read may have been replaced after the listing: then read again.
        now = set(live_files(folder))
        if all(f in now for f in files):
            return pl.concat(frames, how="vertical") if frames else pl.DataFrame(schema=log_schema())
    raise RuntimeError(f"{folder}: compactions kept replacing the files during {READ_ATTEMPTS} reads")


def days(paths: PlatformPaths, model: str) -> list[str]:
    root = request_log_dir(paths, model)
    if not root.exists():
        return []
    return sorted(p.name.removeprefix("day=") for p in root.glob("day=*") if any(p.glob("*.parquet")))


def read_all(paths: PlatformPaths, model: str) -> pl.DataFrame:
    import polars as pl

    frames = [read_day(paths, model, d) for d in days(paths, model)]
    return pl.concat(frames) if frames else pl.DataFrame(schema=log_schema())


@dataclass(frozen=True)
class Compaction:
    files_before: int
    files_after: int
    rows: int


@contextmanager
def _compaction_lock(folder: Path) -> Iterator[None]:
    # Two compactions of one day at once would each write the same rows: one at a time. flock is
    # released when its holder dies, so a crashed compaction leaves no stale lock.
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / ".compaction.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def compact_day(paths: PlatformPaths, model: str, day: str) -> Compaction:
    """Merge the day's flush files into one compacted file; when that would leave more than
    MAX_COMPACTED compacted files, merge everything into one. A day is then at most MAX_COMPACTED
    files plus what the server wrote since, and a busy day is not rewritten whole at every run.
    The writer may keep adding files meanwhile; the result counts the files and rows it saw."""
    import polars as pl

    folder = day_dir(paths, model, day)
    with _compaction_lock(folder):
        live, replaced = _listing(folder)
        # Finish what an interrupted compaction left: files its compacted file already holds.
        for name in replaced:
            (folder / name).unlink(missing_ok=True)
        compacted = [f for f in live if f.name.startswith(COMPACTED)]
        flushed = [f for f in live if not f.name.startswith(COMPACTED)]
        merged = live if len(compacted) + bool(flushed) > MAX_COMPACTED else flushed
        if len(merged) < 2:
            return Compaction(len(live), len(live), sum(_rows(f) for f in live))
        kept = [f for f in live if f not in merged]
        frame = pl.concat([pl.read_parquet(f) for f in merged], how="vertical")
        metadata = {REPLACES: json.dumps([f.name for f in merged])}
        _publish(folder, _new_name(COMPACTED), lambda p: frame.write_parquet(p, metadata=metadata))
        for path in merged:
            path.unlink()
        return Compaction(len(live), len(kept) + 1, sum(_rows(f) for f in kept) + frame.height)


def _rows(path: Path) -> int:
    import polars as pl

    return pl.scan_parquet(path).select(pl.len()).collect().item()
