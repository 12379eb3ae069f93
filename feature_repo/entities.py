"""What the flight-delay features describe: an origin airport, a carrier, a route, a plane."""

from feast import Entity, ValueType

# value_type is declared on every entity: without it materialization fails to encode the keys.
origin = Entity(
    name="origin",
    join_keys=["origin"],
    value_type=ValueType.STRING,
    description="NYC departure airport (FAA code: EWR, JFK, LGA).",
)

carrier = Entity(
    name="carrier",
    join_keys=["carrier"],
    value_type=ValueType.STRING,
    description="Two-letter airline code, e.g. UA.",
)

route = Entity(
    name="route",
    join_keys=["route"],
    value_type=ValueType.STRING,
    description="Origin and destination airports joined by a hyphen, e.g. EWR-IAH.",
)

plane = Entity(
    name="plane",
    join_keys=["tailnum"],
    value_type=ValueType.STRING,
    description="Aircraft tail number, e.g. N14228.",
)
