"""The months of the reference year, and windows of consecutive months (training, hold-out, replay).

Every piece of month arithmetic in the platform goes through MonthWindow. Plain Python: the Dagster
partitions over the same months are in lib/partitions.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache

FIRST_MONTH, END_MONTH = "2013-01", "2014-01"
_MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


@cache
def _months() -> tuple[str, ...]:
    months, month = [], FIRST_MONTH
    while month < END_MONTH:
        months.append(month)
        month = next_month(month)
    return tuple(months)


def all_months() -> list[str]:
    """The reference year's months (the replay's), FIRST_MONTH up to (not including) END_MONTH."""
    return list(_months())


def months_through(last: str) -> list[str]:
    """Every month from FIRST_MONTH through `last` (the newest month landed, say)."""
    months, month = [], FIRST_MONTH
    while month <= last:
        months.append(month)
        month = next_month(month)
    return months


def month_start(month: str) -> datetime:
    """00:00 UTC on the first day of a YYYY-MM month."""
    if not _MONTH.match(month):
        raise ValueError(f"month {month!r} is not YYYY-MM")
    return datetime.strptime(month, "%Y-%m").replace(tzinfo=UTC)


def next_month(month: str) -> str:
    start = month_start(month)
    return f"{start.year + start.month // 12:04d}-{start.month % 12 + 1:02d}"


@dataclass(frozen=True)
class MonthWindow:
    """Consecutive months `start`..`end`, both included, all of them partitions (FIRST_MONTH on)."""

    start: str
    end: str

    def __post_init__(self) -> None:
        for month in (self.start, self.end):
            month_start(month)
            if month < FIRST_MONTH:
                raise ValueError(f"month {month} is not a partition (the first is {FIRST_MONTH})")
        if self.start > self.end:
            raise ValueError(f"window start {self.start} is after its end {self.end}")

    @classmethod
    def parse(cls, text: str) -> MonthWindow:
        """'2013-01..2013-04', as MLflow tags and metadata write a window."""
        start, _, end = text.partition("..")
        return cls(start, end or start)

    @classmethod
    def trailing(cls, before: str, count: int) -> MonthWindow | None:
        """The `count` months just before `before`; None when the partitions have fewer."""
        keys = months_through(before)
        i = keys.index(before)
        if count < 1 or i < count:
            return None
        return cls(keys[i - count], keys[i - 1])

    @property
    def months(self) -> list[str]:
        keys = months_through(self.end)
        return keys[keys.index(self.start) :]

    def following(self, count: int) -> list[str]:
        """The `count` months right after the window (its hold-out)."""
        if count < 1:
            raise ValueError(f"no {count} month(s) after {self.end} to hold out")
        months, month = [], self.end
        for _ in range(count):
            month = next_month(month)
            months.append(month)
        return months

    @property
    def start_time(self) -> datetime:
        return month_start(self.start)

    @property
    def end_time(self) -> datetime:
        """Start of the month after the window (exclusive end)."""
        return month_start(next_month(self.end))

    def __str__(self) -> str:
        return f"{self.start}..{self.end}"
