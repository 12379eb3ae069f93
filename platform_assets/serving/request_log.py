"""The request log: every scored instance, append-only, partitioned by the flight's local date.

Rows are buffered in memory and written every `flush_seconds` as a new parquet file in the
partition folder (`$PLATFORM_HOME/serving/request_log/<model>/day=YYYY-MM-DD/<time>-<uuid>.parquet`); no
file is ever rewritten, so a reader sees whole files only. A day is the flight's scheduled date,
the same day its outcome is validated, so online evaluation joins one partition with one day's
labels.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from platform_assets.paths import PlatformPaths

if TYPE_CHECKING:
    import polars as pl

log = logging.getLogger(__name__)



def request_log_dir(paths: PlatformPaths, model: str) -> Path:
    """The log of one served model (its registered name)."""
    return paths.home / "serving" / "request_log" / model


def day_dir(paths: PlatformPaths, model: str, day: str) -> Path:
    return request_log_dir(paths, model) / f"day={day}"


class RequestLogWriter:
    """Buffers rows and appends them as parquet files per day partition, from a background thread."""

    def __init__(self, root: Path, flush_seconds: float = 1.0) -> None:
        self.root = root
        self.flush_seconds = flush_seconds
        self._rows: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="request-log", daemon=True)
        self.rows_written = 0

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self._thread.start()

    def append(self, rows: Sequence[dict[str, Any]]) -> None:
        with self._lock:
            self._rows.extend(rows)

    def flush(self) -> int:
        import polars as pl

        with self._write_lock:
            with self._lock:
                rows, self._rows = self._rows, []
            if not rows:
                return 0
            # Encoded here, off the request path: the server hands over the dicts it served.
            for row in rows:
                for column in ("instance", "features"):
                    if not isinstance(row[column], str):
                        row[column] = encode(row[column])
            frame = pl.DataFrame(rows, schema=_polars_schema(), orient="row")
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
            for (day,), part in frame.group_by(["flight_date"], maintain_order=True):
                folder = self.root / f"day={day}"
                folder.mkdir(parents=True, exist_ok=True)
                target = folder / f"{stamp}-{uuid.uuid4().hex[:8]}.parquet"
                tmp = folder / f".{target.name}.tmp"
                part.write_parquet(tmp)
                tmp.rename(target)
            self.rows_written += len(rows)
            return len(rows)

    def _run(self) -> None:
        while not self._stop.wait(self.flush_seconds):
            try:
                self.flush()
            except Exception:  # keep serving; the rows stay for the next try
                log.exception("request log flush failed")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.flush()


def _polars_schema() -> dict[str, Any]:
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


def encode(values: dict[str, Any]) -> str:
    return json.dumps(values, default=str, separators=(",", ":"))


def days(paths: PlatformPaths, model: str) -> list[str]:
    root = request_log_dir(paths, model)
    if not root.exists():
        return []
    return sorted(p.name.removeprefix("day=") for p in root.glob("day=*") if any(p.glob("*.parquet")))


def read_day(paths: PlatformPaths, model: str, day: str) -> pl.DataFrame:
    """Every row logged for `model` for flights of `day` (empty frame with the log's schema when none)."""
    import polars as pl

    files = sorted(day_dir(paths, model, day).glob("*.parquet"))
    if not files:
        return pl.DataFrame(schema=_polars_schema())
    return pl.concat([pl.read_parquet(f) for f in files], how="vertical")


def read_all(paths: PlatformPaths, model: str) -> pl.DataFrame:
    import polars as pl

    frames = [read_day(paths, model, d) for d in days(paths, model)]
    return pl.concat(frames) if frames else pl.DataFrame(schema=_polars_schema())

