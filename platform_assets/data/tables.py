"""Declared types of the reference tables: the landing copy is cast to these, never inferred."""

from __future__ import annotations

from dataclasses import dataclass, field

import dagster as dg
import polars as pl

UTC_DATETIME = pl.Datetime("us", "UTC")
LINEAGE_COLUMNS = ("_source_file", "_source_sha256", "_source_row")


@dataclass(frozen=True, eq=False)  # hashed by identity: specs are module constants
class TableSpec:
    name: str
    columns: dict[str, pl.DataType]
    key: tuple[str, ...]
    monthly: bool = False
    optional_columns: frozenset[str] = field(default_factory=frozenset)

    @property
    def file_names(self) -> tuple[str, ...]:
        return (f"{self.name}.csv", f"{self.name}.csv.zip")

    @property
    def required_columns(self) -> list[str]:
        return [c for c in self.columns if c not in self.optional_columns]


def table_schema(spec: TableSpec) -> dg.TableSchema:
    """The declared columns as Dagster shows them (`dagster/column_schema`)."""
    return dg.TableSchema(columns=[dg.TableColumn(c, str(t)) for c, t in spec.columns.items()])


I32, F64, STR = pl.Int32(), pl.Float64(), pl.String()

FLIGHTS = TableSpec(
    name="flights",
    monthly=True,
    key=("year", "month", "day", "carrier", "flight", "origin", "sched_dep_time"),
    columns={
        "year": I32, "month": I32, "day": I32,
        "dep_time": I32, "sched_dep_time": I32, "dep_delay": F64,
        "arr_time": I32, "sched_arr_time": I32, "arr_delay": F64,
        "carrier": STR, "flight": I32, "tailnum": STR, "origin": STR, "dest": STR,
        "air_time": F64, "distance": F64, "hour": I32, "minute": I32,
        "time_hour": UTC_DATETIME,
    },
)

WEATHER = TableSpec(
    name="weather",
    monthly=True,
    key=("origin", "time_hour"),
    columns={
        "origin": STR, "year": I32, "month": I32, "day": I32, "hour": I32,
        "temp": F64, "dewp": F64, "humid": F64, "wind_dir": I32, "wind_speed": F64,
        "wind_gust": F64, "precip": F64, "pressure": F64, "visib": F64,
        "time_hour": UTC_DATETIME,
    },
)

PLANES = TableSpec(
    name="planes",
    key=("tailnum",),
    columns={
        "tailnum": STR, "year": I32, "type": STR, "manufacturer": STR, "model": STR,
        "engines": I32, "seats": I32, "speed": I32, "engine": STR,
    },
)

AIRPORTS = TableSpec(
    name="airports",
    key=("faa",),
    columns={
        "faa": STR, "name": STR, "lat": F64, "lon": F64, "alt": I32, "tz": I32,
        "dst": STR, "tzone": STR,
    },
)

AIRLINES = TableSpec(name="airlines", key=("carrier",), columns={"carrier": STR, "name": STR})

TABLES: dict[str, TableSpec] = {t.name: t for t in (FLIGHTS, WEATHER, PLANES, AIRPORTS, AIRLINES)}
