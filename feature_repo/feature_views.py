"""Feature views over the dbt feature tables; each TTL says how long a value may be served."""

from datetime import timedelta

from data_sources import (
    carrier_daily_source,
    origin_weather_source,
    plane_source,
    route_daily_source,
)
from entities import carrier, origin, plane, route
from feast import FeatureView, Field
from feast.types import Float64, Int32, Int64

# Weather is observed hourly; a reading older than three hours says little about a departure.
origin_weather = FeatureView(
    name="origin_weather",
    entities=[origin],
    ttl=timedelta(hours=3),
    schema=[
        Field(name="temp", dtype=Float64),
        Field(name="dewp", dtype=Float64),
        Field(name="humid", dtype=Float64),
        Field(name="wind_dir", dtype=Int32),
        Field(name="wind_speed", dtype=Float64),
        Field(name="wind_gust", dtype=Float64),
        Field(name="precip", dtype=Float64),
        Field(name="pressure", dtype=Float64),
        Field(name="visib", dtype=Float64),
    ],
    source=origin_weather_source,
    online=True,
    tags={"source": "dbt:feat_origin_weather", "cadence": "hourly"},
)

# Rows land every UTC midnight, so two days tolerate one missed daily build, not more.
carrier_daily = FeatureView(
    name="carrier_daily",
    entities=[carrier],
    ttl=timedelta(days=2),
    schema=[
        Field(name="carrier_flights_7d", dtype=Int64),
        Field(name="carrier_delay_rate_7d", dtype=Float64),
        Field(name="carrier_mean_arr_delay_7d", dtype=Float64),
        Field(name="carrier_flights_28d", dtype=Int64),
        Field(name="carrier_delay_rate_28d", dtype=Float64),
    ],
    source=carrier_daily_source,
    online=True,
    tags={"source": "dbt:feat_carrier_daily", "cadence": "daily"},
)

route_daily = FeatureView(
    name="route_daily",
    entities=[route],
    ttl=timedelta(days=2),
    schema=[
        Field(name="route_flights_28d", dtype=Int64),
        Field(name="route_delay_rate_28d", dtype=Float64),
        Field(name="route_mean_arr_delay_28d", dtype=Float64),
    ],
    source=route_daily_source,
    online=True,
    tags={"source": "dbt:feat_route_daily", "cadence": "daily"},
)

# Plane facts carry one timestamp (2013-01-01) and do not change, so they must outlive the year.
plane_facts = FeatureView(
    name="plane_facts",
    entities=[plane],
    ttl=timedelta(days=3650),
    schema=[
        Field(name="plane_age_years", dtype=Int32),
        Field(name="plane_seats", dtype=Int32),
        Field(name="plane_engines", dtype=Int32),
    ],
    source=plane_source,
    online=True,
    tags={"source": "dbt:feat_plane", "cadence": "static"},
)
