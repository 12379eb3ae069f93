"""Request instances: a `flights.csv` row without its outcome columns, checked field by field.

Every broken rule is reported with the field it concerns (`instances[3].sched_dep_time` in a v1
body, `sched_dep_time[3]` in a v2 one) and the rule's name, so a client can fix its request without
reading the server's code.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

LOCAL_TZ = ZoneInfo("America/New_York")
MAX_INSTANCES = 1000
REQUIRED = (
    "year",
    "month",
    "day",
    "sched_dep_time",
    "sched_arr_time",
    "carrier",
    "flight",
    "origin",
    "dest",
    "distance",
)
# Known only once the flight has left: a request carrying them is not a prediction before departure.
AFTER_DEPARTURE = ("dep_time", "dep_delay", "arr_time", "arr_delay", "air_time")
INTEGER_FIELDS = ("year", "month", "day", "sched_dep_time", "sched_arr_time", "flight", "hour", "minute")


class RequestError(ValueError):
    """One or more broken rules; the message names each field and rule."""

    def __init__(self, problems: Sequence[tuple[str, str, str]]) -> None:
        self.problems = list(problems)
        super().__init__(
            "; ".join(f"{field}: rule '{rule}' broken: {detail}" for field, rule, detail in problems)
        )


@dataclass(frozen=True)
class Flight:
    """A validated instance with what the model derives from it."""

    flight_id: str
    """The warehouse's flight key (stg_flights): date, carrier, flight number, origin, departure."""
    flight_date: str
    event_timestamp: datetime
    """Scheduled departure in UTC: the prediction time."""
    origin: str
    dest: str
    carrier: str
    tailnum: str | None
    distance: float
    sched_dep_hour: int
    sched_dep_dow: int
    instance: dict[str, Any]

    @classmethod
    def from_event(cls, row: dict[str, Any]) -> Flight:
        """A flight as the request parser would give it, from a row of flight_training_events."""
        return cls(
            flight_id=row["flight_id"],
            flight_date=row["event_timestamp"].date().isoformat(),
            event_timestamp=row["event_timestamp"],
            origin=row["origin"],
            dest=row["dest"],
            carrier=row["carrier"],
            tailnum=row["tailnum"],
            distance=row["distance"],
            sched_dep_hour=row["sched_dep_hour"],
            sched_dep_dow=row["sched_dep_dow"],
            instance={},
        )

    @property
    def route(self) -> str:
        return f"{self.origin}-{self.dest}"

    def bucket(self) -> float:
        """A stable position in [0, 100) from the flight key: the canary share is a range of it."""
        digest = hashlib.sha256(self.flight_id.encode()).digest()
        return int.from_bytes(digest[:8], "big") % 10_000 / 100


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _hhmm(value: int) -> bool:
    return 0 <= value <= 2359 and value % 100 < 60


def _time_hour(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_body(
    body: Any, origins: Collection[str], airports: Collection[str]
) -> list[Flight]:
    """Flights of a v1 body `{"instances": [...]}`, or RequestError naming every broken rule."""
    if isinstance(body, (bytes, bytearray, str)):
        # KServe parses JSON only when the request says `Content-Type: application/json`; a body
        # sent without it (plain `curl -d`) arrives as bytes.
        try:
            body = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise RequestError([("body", "JSON object", f"not valid JSON: {exc}")]) from None
    if not isinstance(body, Mapping):
        raise RequestError([("body", "JSON object", f"got {type(body).__name__}")])
    if "instances" not in body:
        raise RequestError([("instances", "required field", "the body has no 'instances'")])
    instances = body["instances"]
    if not isinstance(instances, list) or not instances:
        raise RequestError([("instances", "non-empty list", f"got {instances!r:.60}")])
    return parse_instances(instances, origins, airports, _v1_name)


def _v1_name(index: int, field: str) -> str:
    return f"instances[{index}].{field}" if field else f"instances[{index}]"


def parse_instances(
    instances: Sequence[Any],
    origins: Collection[str],
    airports: Collection[str],
    name: Callable[[int, str], str],
) -> list[Flight]:
    """Flights of instances (dicts of a flight's fields), or RequestError naming every broken rule;
    `name(index, field)` says where a field is in the request (`instances[3].origin` in v1,
    `origin[3]` in v2; the field is empty for the instance itself)."""
    if len(instances) > MAX_INSTANCES:
        raise RequestError(
            [("instances", f"at most {MAX_INSTANCES} instances", f"got {len(instances)}")]
        )
    flights, problems = [], []
    for i, instance in enumerate(instances):
        flight, broken = _parse_instance(partial(name, i), instance, origins, airports)
        problems += broken
        if flight is not None:
            flights.append(flight)
    if problems:
        raise RequestError(problems)
    return flights


# Records a broken rule: (field, rule, detail); the field is named within its instance.
_Broken = Callable[[str, str, str], None]


def _parse_instance(
    name: Callable[[str], str], instance: Any, origins: Collection[str], airports: Collection[str]
) -> tuple[Flight | None, list[tuple[str, str, str]]]:
    """The instance's flight, or None and every broken rule, checked in stages: types first, then
    the values (codes, date and times), then the derived fields given beside them."""
    if not isinstance(instance, Mapping):
        return None, [(name(""), "JSON object", f"got {type(instance).__name__}")]
    problems: list[tuple[str, str, str]] = []

    def broken(field: str, rule: str, detail: str) -> None:
        problems.append((name(field), rule, detail))

    _check_fields(instance, broken)
    if problems:
        return None, problems
    _check_codes(instance, origins, airports, broken)
    local_date = _local_date(instance, broken)
    if local_date is None:
        return None, problems
    for field in ("sched_dep_time", "sched_arr_time"):
        if not _hhmm(instance[field]):
            broken(field, "HHMM time of day (0000-2359)", f"got {instance[field]}")
    if problems:
        return None, problems
    scheduled_hour = _scheduled_hour(instance, local_date, broken)
    if problems:
        return None, problems
    return _flight(instance, local_date, scheduled_hour), []


def _check_fields(instance: Mapping[str, Any], broken: _Broken) -> None:
    """Required fields present, no field known only after departure, and every field's type."""
    for field in REQUIRED:
        if instance.get(field) is None:
            broken(field, "required field", "missing or null")
    for field in AFTER_DEPARTURE:
        if field in instance:
            broken(field, "known only after departure", "remove it: predictions are made before take-off")
    for field in INTEGER_FIELDS:
        value = instance.get(field)
        if value is not None and not _is_int(value):
            broken(field, "integer", f"got {value!r:.40}")
    for field in ("carrier", "origin", "dest"):
        value = instance.get(field)
        if value is not None and not isinstance(value, str):
            broken(field, "string", f"got {value!r:.40}")
    tailnum = instance.get("tailnum")
    if tailnum is not None and not isinstance(tailnum, str):
        broken("tailnum", "string or null", f"got {tailnum!r:.40}")
    distance = instance.get("distance")
    if distance is not None and (
        not isinstance(distance, int | float) or isinstance(distance, bool) or not distance > 0
    ):
        broken("distance", "positive number (miles)", f"got {distance!r:.40}")


def _check_codes(
    instance: Mapping[str, Any], origins: Collection[str], airports: Collection[str], broken: _Broken
) -> None:
    """The carrier an airline code, the origin one of the served airports, the destination known."""
    carrier, origin, dest = instance["carrier"], instance["origin"], instance["dest"]
    if not (len(carrier) == 2 and carrier.isalnum() and carrier == carrier.upper()):
        broken("carrier", "two-character airline code", f"got {carrier!r:.40}")
    if origin not in origins:
        broken("origin", f"known origin airport ({', '.join(sorted(origins))})", f"got {origin!r:.40}")
    if dest not in airports:
        broken("dest", "known airport FAA code", f"got {dest!r:.40}")


def _local_date(instance: Mapping[str, Any], broken: _Broken) -> date | None:
    """The flight's date in New York, None if year, month and day make no date."""
    try:
        return date(instance["year"], instance["month"], instance["day"])
    except ValueError as exc:
        broken("day", "valid calendar date (year, month, day)", str(exc))
        return None


def _scheduled_hour(instance: Mapping[str, Any], local_date: date, broken: _Broken) -> datetime:
    """The scheduled departure's hour in UTC, checked against the hour, minute and time_hour given
    beside sched_dep_time."""
    hour, minute = divmod(instance["sched_dep_time"], 100)
    if instance.get("hour") is not None and instance["hour"] != hour:
        broken("hour", "hour = sched_dep_time // 100", f"got {instance['hour']}, expected {hour}")
    if instance.get("minute") is not None and instance["minute"] != minute:
        broken("minute", "minute = sched_dep_time % 100", f"got {instance['minute']}, expected {minute}")
    local = datetime(local_date.year, local_date.month, local_date.day, hour, tzinfo=LOCAL_TZ)
    scheduled_hour = local.astimezone(UTC)
    if instance.get("time_hour") is not None:
        given = _time_hour(instance["time_hour"])
        if given is None:
            broken("time_hour", "ISO 8601 timestamp", f"got {instance['time_hour']!r:.40}")
        elif given != scheduled_hour:
            broken(
                "time_hour",
                "scheduled hour in UTC of year/month/day/hour in New York",
                f"got {instance['time_hour']}, expected {scheduled_hour:%Y-%m-%dT%H:%M:%SZ}",
            )
        else:
            scheduled_hour = given
    return scheduled_hour


def _flight(instance: Mapping[str, Any], local_date: date, scheduled_hour: datetime) -> Flight:
    """The flight of a valid instance."""
    carrier, origin = instance["carrier"], instance["origin"]
    hour, minute = divmod(instance["sched_dep_time"], 100)
    flight_id = (
        f"{local_date.year:04d}-{local_date.month:02d}-{local_date.day:02d}-{carrier}-"
        f"{instance['flight']}-{origin}-{instance['sched_dep_time']:04d}"
    )
    return Flight(
        flight_id=flight_id,
        flight_date=local_date.isoformat(),
        # As stg_flights: time_hour (the scheduled hour in UTC) plus the minute.
        event_timestamp=scheduled_hour + timedelta(minutes=minute),
        origin=origin,
        dest=instance["dest"],
        carrier=carrier,
        tailnum=instance.get("tailnum") or None,
        distance=float(instance["distance"]),
        sched_dep_hour=hour,
        sched_dep_dow=local_date.isoweekday(),
        instance=dict(instance),
    )
