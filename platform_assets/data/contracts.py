"""Validation contracts of the reference tables; `contract_for(...).pandera_schema()` is the pandera view."""

from __future__ import annotations

import polars as pl

from platform_assets.data.rules import Contract, Rule
from platform_assets.data.tables import AIRLINES, AIRPORTS, FLIGHTS, PLANES, WEATHER

NYC_AIRPORTS = ("EWR", "JFK", "LGA")
LOCAL_TZ = "America/New_York"


def in_range(column: str, low: float, high: float, unit: str = "") -> Rule:
    return Rule(
        f"{column}_in_range",
        pl.col(column).is_between(low, high),
        f"{column} between {low} and {high}{unit}",
        column=column,
    )


def one_of(column: str, allowed: tuple[str, ...]) -> Rule:
    return Rule(
        f"{column}_allowed_code",
        pl.col(column).is_in(list(allowed)),
        f"{column} one of {', '.join(allowed)}",
        column=column,
    )


def matches(column: str, pattern: str, what: str) -> Rule:
    return Rule(f"{column}_format", pl.col(column).str.contains(pattern), f"{column} is {what}", column=column)


def hhmm(column: str) -> Rule:
    value = pl.col(column)
    return Rule(
        f"{column}_is_hhmm",
        value.is_between(0, 2400) & (value % 100 < 60),
        f"{column} is a local time HHMM (0000-2400, minutes < 60)",
        column=column,
    )


def local_hour_matches(partition: str | None) -> list[Rule]:
    local = pl.col("time_hour").dt.convert_time_zone(LOCAL_TZ)
    rules = [
        Rule(
            "time_hour_matches_local_date_hour",
            (local.dt.year() == pl.col("year"))
            & (local.dt.month() == pl.col("month"))
            & (local.dt.day() == pl.col("day"))
            & (local.dt.hour() == pl.col("hour")),
            f"time_hour in {LOCAL_TZ} equals year-month-day hour",
        )
    ]
    if partition:
        year, month = (int(p) for p in partition.split("-"))
        rules.append(
            Rule(
                "month_matches_partition",
                (pl.col("year") == year) & (pl.col("month") == month),
                f"year-month equals the partition {partition}",
            )
        )
    return rules


def flights_contract(partition: str | None = None) -> Contract:
    return Contract(
        spec=FLIGHTS,
        nullable=frozenset({"dep_time", "dep_delay", "arr_time", "arr_delay", "tailnum", "air_time"}),
        rules=[
            in_range("month", 1, 12),
            in_range("day", 1, 31),
            hhmm("dep_time"),
            hhmm("sched_dep_time"),
            hhmm("arr_time"),
            hhmm("sched_arr_time"),
            in_range("dep_delay", -180, 1800, " minutes"),
            in_range("arr_delay", -180, 1800, " minutes"),
            matches("carrier", r"^[A-Z0-9]{2}$", "a two-character airline code"),
            in_range("flight", 1, 9999),
            matches("tailnum", r"^[A-Z0-9]{2,6}$", "a tail number of 2-6 letters/digits"),
            one_of("origin", NYC_AIRPORTS),
            matches("dest", r"^[A-Z0-9]{3}$", "a three-character airport code"),
            in_range("air_time", 1, 900, " minutes"),
            Rule("distance_positive", pl.col("distance").is_between(1, 6000, closed="both"),
                 "distance between 1 and 6000 miles", column="distance"),
            in_range("hour", 0, 23),
            in_range("minute", 0, 59),
            Rule(
                "sched_dep_time_equals_hour_minute",
                pl.col("hour") * 100 + pl.col("minute") == pl.col("sched_dep_time"),
                "sched_dep_time = hour * 100 + minute",
            ),
            Rule(
                "arr_delay_needs_arr_time",
                pl.col("arr_delay").is_null() | pl.col("arr_time").is_not_null(),
                "a flight with an arrival delay has an arrival time",
            ),
            *local_hour_matches(partition),
        ],
    )


def weather_contract(partition: str | None = None) -> Contract:
    measured = ("temp", "dewp", "humid", "wind_dir", "wind_speed", "wind_gust", "precip", "pressure", "visib")
    return Contract(
        spec=WEATHER,
        nullable=frozenset(measured),
        rules=[
            one_of("origin", NYC_AIRPORTS),
            in_range("month", 1, 12),
            in_range("day", 1, 31),
            in_range("hour", 0, 23),
            in_range("temp", -40, 130, " F"),
            in_range("dewp", -60, 100, " F"),
            in_range("humid", 0, 100, " %"),
            in_range("wind_dir", 0, 360, " degrees"),
            in_range("wind_speed", 0, 150, " mph"),
            in_range("wind_gust", 0, 200, " mph"),
            in_range("precip", 0, 10, " inches"),
            in_range("pressure", 900, 1100, " mbar"),
            in_range("visib", 0, 10, " miles"),
            *local_hour_matches(partition),
        ],
    )


PLANES_CONTRACT = Contract(
    spec=PLANES,
    nullable=frozenset({"year", "speed", "manufacturer", "model", "engine"}),
    rules=[
        matches("tailnum", r"^[A-Z0-9]{2,6}$", "a tail number of 2-6 letters/digits"),
        in_range("year", 1900, 2013),
        in_range("engines", 1, 8),
        in_range("seats", 1, 1000),
        in_range("speed", 1, 1000, " mph"),
    ],
)

AIRPORTS_CONTRACT = Contract(
    spec=AIRPORTS,
    nullable=frozenset({"tzone", "name"}),
    rules=[
        matches("faa", r"^[A-Z0-9]{3,4}$", "a three- or four-character FAA code"),
        in_range("lat", -90, 90),
        in_range("lon", -180, 180),
        in_range("alt", -1500, 30000, " feet"),
        in_range("tz", -12, 14, " hours"),
        one_of("dst", ("A", "U", "N")),
    ],
)

AIRLINES_CONTRACT = Contract(
    spec=AIRLINES,
    rules=[matches("carrier", r"^[A-Z0-9]{2}$", "a two-character airline code")],
)


def contract_for(table: str, partition: str | None = None) -> Contract:
    monthly = {"flights": flights_contract, "weather": weather_contract}
    if table in monthly:
        return monthly[table](partition)
    return {"planes": PLANES_CONTRACT, "airports": AIRPORTS_CONTRACT, "airlines": AIRLINES_CONTRACT}[table]
