"""The parquet feature tables that dbt writes (under $PLATFORM_HOME/warehouse/features, or
$FEATURES_ROOT when set): the platform's one path layout, core/paths.py, says where."""

import os

from feast import FileSource
from feast.data_format import ParquetFormat

from platform_assets.paths import PlatformPaths
from platform_assets.settings import Settings

# Read when Feast imports this file (feast apply, or the Dagster feast_registry asset), so the
# registry records the absolute paths of the PLATFORM_HOME it was applied for.
if not os.environ.get("PLATFORM_HOME"):
    raise RuntimeError("PLATFORM_HOME is not set: export it before running feast in feature_repo/")
PATHS = PlatformPaths.from_settings(Settings.from_env())


def _feature_table(name: str, description: str) -> FileSource:
    return FileSource(
        name=name,
        path=str(PATHS.feature_table(name)),
        file_format=ParquetFormat(),
        timestamp_field="event_timestamp",
        description=description,
    )


origin_weather_source = _feature_table(
    "feat_origin_weather", "Hourly weather observed at each NYC origin airport."
)
carrier_daily_source = _feature_table(
    "feat_carrier_daily", "Carrier delay statistics known at each UTC midnight."
)
route_daily_source = _feature_table(
    "feat_route_daily", "Route delay statistics known at each UTC midnight."
)
plane_source = _feature_table("feat_plane", "Plane facts, valid from 2013-01-01.")
