"""The landing folder: raw files as they arrive, and the runs they call for.

Writers land a file atomically (write `.name.tmp`, then rename), so a scan never reads half a file:
dot-files and anything not named like a raw table are ignored. A scan reads each file's sha256 and
the months its year/month columns hold, and reuses both for a file whose size and mtime did not
change since the previous scan. Planning turns a scan into the runs to request: the reference
tables when their files changed, then each month whose flights and weather files have landed,
consecutive months read from the same two files grouped into one run. What was requested before is
given back as fingerprints (the names and hashes of the files a run read), so a file landed again
with the same content starts nothing.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from platform_assets.data.raw_files import NULL_MARKERS
from platform_assets.data.tables import TABLES
from platform_assets.months import FIRST_MONTH, months_through

MONTHLY_TABLES = tuple(name for name, spec in TABLES.items() if spec.monthly)
REFERENCE_TABLES = tuple(name for name, spec in TABLES.items() if not spec.monthly)
_NAME = re.compile(rf"^({'|'.join(TABLES)})[^/]*?\.(csv|csv\.zip|zip)$")


def table_of(name: str) -> str | None:
    """The table a landed file's name holds (`flights_2013-06.csv` -> flights), or None: a dot-file,
    a partial or temporary file, or a name no raw table has."""
    if name.startswith("."):
        return None
    match = _NAME.match(name)
    return match.group(1) if match else None


@dataclass(frozen=True)
class LandedFile:
    name: str
    path: Path
    table: str
    sha256: str
    size: int
    mtime_ns: int
    months: tuple[str, ...] = ()
    """'YYYY-MM' of the rows' year/month columns, sorted; empty for a reference table."""
    problem: str | None = None
    """Why the months could not be read (no year/month column, not a CSV): the file plans nothing."""

    @property
    def label(self) -> str:
        """Name and short hash, as run keys and fingerprints name a file."""
        return f"{self.name}@{self.sha256[:12]}"

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "path": str(self.path), "months": list(self.months)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LandedFile:
        return cls(**{**data, "path": Path(data["path"]), "months": tuple(data["months"])})


def _csv_member(path: Path, blob: bytes) -> bytes:
    if not path.name.endswith(".zip"):
        return blob
    with zipfile.ZipFile(io.BytesIO(blob)) as archive:
        members = [n for n in archive.namelist() if n.endswith(".csv")]
        if len(members) != 1:
            raise ValueError(f"the archive holds {len(members)} CSV members, not one")
        return archive.read(members[0])


def months_in(path: Path, blob: bytes | None = None) -> tuple[str, ...]:
    """The months of a flights or weather file: only its year and month columns are parsed.
    Raises ValueError when they cannot be read."""
    text = _csv_member(path, path.read_bytes() if blob is None else blob)
    try:
        frame = pl.read_csv(text, columns=["year", "month"], infer_schema=False, null_values=NULL_MARKERS)
    except (pl.exceptions.PolarsError, pl.exceptions.NoDataError) as exc:
        raise ValueError(str(exc).splitlines()[0]) from exc
    pairs = (
        frame.select(pl.col("year", "month").cast(pl.Int32, strict=False))
        .drop_nulls()
        .filter(pl.col("month").is_between(1, 12))
        .unique()
    )
    return tuple(sorted(f"{y:04d}-{m:02d}" for y, m in pairs.iter_rows()))


def inspect(path: Path, table: str) -> LandedFile:
    """A file's hash and months, read once."""
    stat = path.stat()
    blob = path.read_bytes()
    months: tuple[str, ...] = ()
    problem = None
    if table in MONTHLY_TABLES:
        try:
            months = months_in(path, blob)
        except (ValueError, zipfile.BadZipFile) as exc:
            problem = f"months unreadable: {exc}"
    return LandedFile(
        name=path.name,
        path=path,
        table=table,
        sha256=hashlib.sha256(blob).hexdigest(),
        size=stat.st_size,
        mtime_ns=stat.st_mtime_ns,
        months=months,
        problem=problem,
    )


def scan(folder: Path, previous: Iterable[LandedFile] = ()) -> list[LandedFile]:
    """The raw files in `folder`, by name; a file whose size and mtime match the previous scan's
    entry keeps that entry's hash and months instead of being read again."""
    known = {f.name: f for f in previous}
    if not folder.is_dir():
        return []
    found: list[LandedFile] = []
    for path in sorted(folder.iterdir()):
        table = table_of(path.name)
        if table is None or not path.is_file():
            continue
        try:
            stat = path.stat()
            cached = known.get(path.name)
            if cached and (cached.path, cached.size, cached.mtime_ns) == (path, stat.st_size, stat.st_mtime_ns):
                found.append(cached)
            else:
                found.append(inspect(path, table))
        except FileNotFoundError:  # renamed or removed while scanned: the next scan sees it
            continue
    return found


def ignored(folder: Path) -> list[str]:
    """Names in `folder` no scan reads (temporary, partial or unknown files)."""
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if table_of(p.name) is None)


def _newest(files: Iterable[LandedFile]) -> LandedFile | None:
    return max(files, key=lambda f: (f.mtime_ns, f.name), default=None)


@dataclass(frozen=True)
class ReferenceRun:
    """The reference tables' run: the newest landed file of each present table."""

    files: tuple[LandedFile, ...]

    @property
    def fingerprint(self) -> str:
        return "|".join(f.label for f in self.files)

    @property
    def run_key(self) -> str:
        return f"reference-{self.fingerprint}"


@dataclass(frozen=True)
class MonthRun:
    """Consecutive months read from the same flights and weather files."""

    months: tuple[str, ...]
    flights: LandedFile
    weather: LandedFile

    @property
    def start(self) -> str:
        return self.months[0]

    @property
    def end(self) -> str:
        return self.months[-1]

    @property
    def files(self) -> tuple[LandedFile, LandedFile]:
        return (self.flights, self.weather)

    @property
    def fingerprint(self) -> str:
        return month_fingerprint(self.flights, self.weather)

    @property
    def run_key(self) -> str:
        span = self.start if self.start == self.end else f"{self.start}..{self.end}"
        return f"months-{span}-{self.fingerprint}"


def month_fingerprint(flights: LandedFile, weather: LandedFile) -> str:
    return f"{flights.label}|{weather.label}"


@dataclass(frozen=True)
class Plan:
    reference: ReferenceRun | None
    months: list[MonthRun]
    notes: list[str] = field(default_factory=list)
    """What planned nothing, and why: for the sensor's skip reason and log."""

    @property
    def empty(self) -> bool:
        return self.reference is None and not self.months


def plan(
    files: Iterable[LandedFile],
    requested_months: Mapping[str, str] | None = None,
    requested_reference: str | None = None,
) -> Plan:
    """The runs the landed files call for, given the fingerprints requested before (per month, and
    for the reference tables). Reference tables first; months only once all three have landed."""
    requested_months = requested_months or {}
    files = list(files)
    notes = [f"{f.name}: {f.problem}" for f in files if f.problem]
    by_table: dict[str, list[LandedFile]] = {t: [] for t in TABLES}
    for f in files:
        by_table[f.table].append(f)

    present = [w for t in REFERENCE_TABLES if (w := _newest(by_table[t])) is not None]
    before = set(requested_reference.split("|")) if requested_reference else set()
    # a file removed since is no reason to run: only a new or changed one is
    reference = ReferenceRun(tuple(present)) if any(f.label not in before for f in present) else None
    missing = [t for t in REFERENCE_TABLES if not by_table[t]]
    if missing:
        notes.append(f"months wait for the reference table(s) {', '.join(missing)}")
        return Plan(reference, [], notes)

    runs: list[MonthRun] = []
    current: list[str] = []
    pair: tuple[LandedFile, LandedFile] | None = None
    waiting: list[str] = []
    done: list[str] = []
    landed = [m for f in files for m in f.months if m >= FIRST_MONTH]
    for month in months_through(max(landed)) if landed else []:
        flights = _newest(f for f in by_table["flights"] if month in f.months)
        weather = _newest(f for f in by_table["weather"] if month in f.months)
        key: tuple[LandedFile, LandedFile] | None = None
        if flights is None or weather is None:
            if flights or weather:
                waiting.append(f"{month} (no {'weather' if weather is None else 'flights'} file)")
        elif requested_months.get(month) == month_fingerprint(flights, weather):
            done.append(month)
        else:
            key = (flights, weather)
        if current and pair is not None and key != pair:
            runs.append(MonthRun(tuple(current), *pair))
            current = []
        if key is not None:
            current.append(month)
            pair = key
    if current and pair is not None:
        runs.append(MonthRun(tuple(current), *pair))
    if waiting:
        notes.append(f"waiting: {', '.join(waiting)}")
    if done:
        notes.append(f"already requested from the same files: {_span_list(done)}")
    return Plan(reference, runs, notes)


def _span_list(months: list[str]) -> str:
    """2013-01..2013-03, 2013-05: consecutive months as ranges."""
    keys = months_through(max(months))
    spans: list[list[str]] = []
    for month in months:
        if spans and keys.index(month) == keys.index(spans[-1][-1]) + 1:
            spans[-1].append(month)
        else:
            spans.append([month])
    return ", ".join(s[0] if len(s) == 1 else f"{s[0]}..{s[-1]}" for s in spans)


@dataclass
class LandingState:
    """What the landing sensor keeps between ticks (its cursor): the last scan, and the fingerprints
    requested per month and for the reference tables."""

    files: list[LandedFile] = field(default_factory=list)
    months: dict[str, str] = field(default_factory=dict)
    reference: str | None = None

    def to_cursor(self) -> str:
        return json.dumps(
            {
                "files": [f.to_json() for f in self.files],
                "months": dict(sorted(self.months.items())),
                "reference": self.reference,
            },
            sort_keys=True,
        )

    @classmethod
    def from_cursor(cls, cursor: str | None) -> LandingState:
        if not cursor:
            return cls()
        data = json.loads(cursor)
        return cls(
            files=[LandedFile.from_json(f) for f in data.get("files", [])],
            months=dict(data.get("months", {})),
            reference=data.get("reference"),
        )

    def record(self, planned: Plan) -> None:
        """Remember what `planned` requests."""
        if planned.reference is not None:
            self.reference = planned.reference.fingerprint
        for run in planned.months:
            for month in run.months:
                self.months[month] = run.fingerprint
