"""The request log writer: every answered row kept in memory until a flush has written it.

The server appends a request's rows before it answers; a background thread writes the buffer every
`flush_seconds` as one parquet file per flight day (`request_log_files`). What it promises:

- A failed write keeps its rows (and its drop records) in the buffer; the next flush retries them.
- Memory is bounded: at most `max_rows` rows wait, counting the flush in progress. Rows answered
  while the buffer is full are not kept: they are counted (`request_log_rows_dropped_total` on
  /metrics, and a `dropped-*.json` record per day that the request_log asset sums).
- `stop()` (the server calls it after its last answer on SIGTERM or SIGINT) writes everything left.
- SIGKILL loses what no flush has written: the rows answered since the last flush began, i.e. at
  most one flush interval plus the write in progress (docs/operations.md has the measurement).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from platform_assets.serving import server_metrics as metrics
from platform_assets.serving.request_log_files import rows_frame, write_dropped, write_rows

log = logging.getLogger(__name__)
# About 1.9 KB a row in memory (instance, feature values, variant; measured with tracemalloc):
# 50,000 rows are ~100 MB, a few minutes of steady traffic with the disk gone.
MAX_BUFFERED_ROWS = 50_000
STOP_ATTEMPTS = 3


class LogWriteFailed(OSError):
    """Some rows (or drop records) could not be written; they are kept for the next flush."""


class RequestLogWriter:
    """Buffers rows and appends them as parquet files per day partition, from a background thread."""

    def __init__(
        self, root: Path, model: str, flush_seconds: float = 1.0, max_rows: int = MAX_BUFFERED_ROWS
    ) -> None:
        self.root, self.model = root, model
        self.flush_seconds, self.max_rows = flush_seconds, max_rows
        self._rows: list[dict[str, Any]] = []
        self._dropped: Counter[str] = Counter()  # day -> rows not kept, not yet recorded on disk
        self._in_flight = 0
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"request-log-{model}", daemon=True)
        self.rows_written = 0
        self.rows_dropped = 0
        self.write_failures = 0
        self._written = metrics.LOG_ROWS_WRITTEN.labels(model)
        self._dropped_metric = metrics.LOG_ROWS_DROPPED.labels(model)
        self._failures = metrics.LOG_WRITE_FAILURES.labels(model)
        self._buffered = metrics.LOG_ROWS_BUFFERED.labels(model)

    def start(self) -> None:
        if not self._thread.is_alive():
            self.root.mkdir(parents=True, exist_ok=True)
            self._thread.start()

    def append(self, rows: Sequence[dict[str, Any]]) -> None:
        with self._lock:
            room = self.max_rows - len(self._rows) - self._in_flight
            if room >= len(rows):
                self._rows.extend(rows)
                return
            kept = max(room, 0)
            self._rows.extend(rows[:kept])
            for row in rows[kept:]:
                self._dropped[row["flight_date"]] += 1
        self.rows_dropped += len(rows) - kept
        self._dropped_metric.inc(len(rows) - kept)

    @property
    def buffered(self) -> int:
        return len(self._rows) + self._in_flight

    def flush(self) -> int:
        """Write the buffer; rows of a day whose write fails go back to it. Returns rows written."""
        with self._write_lock:
            with self._lock:
                rows, self._rows = self._rows, []
                dropped, self._dropped = self._dropped, Counter()
                self._in_flight = len(rows)
            try:
                failed_rows, failed_drops = self._write(rows, dropped)
            except BaseException:  # nothing written is known: keep it all
                failed_rows, failed_drops = rows, dropped
                raise
            finally:
                with self._lock:
                    self._rows[:0] = failed_rows
                    self._dropped.update(failed_drops)
                    self._in_flight = 0
                self._buffered.set(len(self._rows))
            written = len(rows) - len(failed_rows)
            self.rows_written += written
            self._written.inc(written)
            if failed_rows or failed_drops:
                raise LogWriteFailed(f"request log of {self.model}: {len(failed_rows)} rows kept for the next flush")
            return written

    def _write(
        self, rows: list[dict[str, Any]], dropped: Counter[str]
    ) -> tuple[list[dict[str, Any]], Counter[str]]:
        """Write rows and drop records per day; return what could not be written."""
        by_day: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            by_day.setdefault(row["flight_date"], []).append(row)
        failed: list[dict[str, Any]] = []
        for day, day_rows in by_day.items():
            try:
                write_rows(self.root / f"day={day}", rows_frame(day_rows))
            except Exception:  # noqa: BLE001  whatever failed (disk, encoding), the rows are kept
                self._failed(f"rows of {day}")
                failed += day_rows
        failed_drops: Counter[str] = Counter()
        for day, count in dropped.items():
            try:
                write_dropped(self.root / f"day={day}", count)
            except Exception:  # noqa: BLE001  as above: the count is kept
                self._failed(f"drop record of {day}")
                failed_drops[day] = count
        return failed, failed_drops

    def _failed(self, what: str) -> None:
        self.write_failures += 1
        self._failures.inc()
        log.exception("request log of %s: writing the %s failed; kept for the next flush", self.model, what)

    def _run(self) -> None:
        while not self._stop.wait(self.flush_seconds):
            try:
                self.flush()
            except LogWriteFailed:  # logged in _write; the rows stay for the next try
                continue
            except Exception:  # the thread must outlive a bug: serving goes on
                log.exception("request log of %s: flush failed", self.model)

    def stop(self) -> None:
        """Stop the thread and write everything buffered (a few tries; what is left is logged)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        for attempt in range(STOP_ATTEMPTS):
            try:
                self.flush()
                return
            except Exception:  # noqa: BLE001  logged; tried again, then what is left is named
                if attempt + 1 < STOP_ATTEMPTS:
                    time.sleep(min(self.flush_seconds, 1.0))
        log.error("request log of %s: %d answered rows could not be written at stop", self.model, self.buffered)
