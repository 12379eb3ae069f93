"""Feature services: the exact feature set of each model version, for training and serving."""

from feast import FeatureService
from feature_views import carrier_daily, origin_weather, plane_facts, route_daily

# wind_gust stays out: it is missing for most hours, and wind_speed carries the signal.
delay_model_v1 = FeatureService(
    name="delay_model_v1",
    features=[
        origin_weather[
            ["temp", "dewp", "humid", "wind_dir", "wind_speed", "precip", "pressure", "visib"]
        ],
        carrier_daily,
        route_daily,
        plane_facts,
    ],
    owner="ml-platform@flights.example",
    description="Features of the arrival-delay classifier v1 (arr_delay > 15 min), all known "
    "before scheduled departure.",
    tags={"model": "delay_model", "version": "1", "label": "is_delayed"},
)

cancellation_model_v1 = FeatureService(
    name="cancellation_model_v1",
    features=[origin_weather, carrier_daily, route_daily, plane_facts],
    owner="ml-platform@flights.example",
    description="Features of the cancellation classifier v1 (dep_time missing), all known before "
    "scheduled departure.",
    tags={"model": "cancellation_model", "version": "1", "label": "is_cancelled"},
)
