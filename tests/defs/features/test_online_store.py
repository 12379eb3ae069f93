import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import polars as pl
import pytest
from feast import FeatureStore

from platform_assets.featurestore.table_contracts import FeatureTableError
from platform_assets.lib.resources import PlatformPathsResource
from platform_assets.paths import PlatformPaths
from tests.models.conftest import DELAY, MODEL

from .helpers import materialize, metadata, sha256, training_window

END_OF_FEBRUARY = datetime(2013, 3, 1, tzinfo=UTC)
SAMPLE = 25


def service_views(store: FeatureStore) -> list[tuple[str, str, str, list[str]]]:
    """(view, join key, parquet file, features) for every view of the feature service."""
    views = []
    for projection in store.get_feature_service(MODEL.feature_service).feature_view_projections:
        view = store.get_feature_view(projection.name)
        views.append((view.name, view.join_keys[0], view.batch_source.path, [f.name for f in projection.features]))
    return views


def online_values(store: FeatureStore, view: str, key: str, features: list[str], entities: list[str]) -> pd.DataFrame:
    refs = [f"{view}:{f}" for f in features]
    return store.get_online_features(features=refs, entity_rows=[{key: e} for e in entities]).to_df()


@pytest.fixture
def january_and_february_online(feast_resources: dict) -> dict[str, dict]:
    materialize("feast_registry", feast_resources)
    return {month: metadata(materialize("online_features", feast_resources, month)) for month in ("2013-01", "2013-02")}


def test_online_store_serves_what_the_offline_store_gives_at_the_latest_timestamp(
    feast_resources: dict, january_and_february_online: dict
) -> None:
    store = feast_resources["feast"].store()
    for view, key, path, features in service_views(store):
        latest = (
            pl.read_parquet(path)
            .filter(pl.col("event_timestamp") <= END_OF_FEBRUARY)
            .group_by(key)
            .agg(pl.col("event_timestamp").max())
            .sort(key)
        )
        sample = latest.sample(min(SAMPLE, latest.height), seed=13).sort(key).to_pandas()
        offline = store.get_historical_features(
            entity_df=sample, features=[f"{view}:{f}" for f in features]
        ).to_df().sort_values(key).reset_index(drop=True)
        online = online_values(store, view, key, features, list(sample[key])).sort_values(key).reset_index(drop=True)
        assert list(online[key]) == list(offline[key])
        for feature in features:
            pd.testing.assert_series_equal(
                online[feature].astype("float64"), offline[feature].astype("float64"), check_names=False, obj=f"{view}:{feature}"
            )
        assert offline[features].notna().any().any(), f"{view}: the comparison saw only nulls"


def test_rows_written_are_the_entities_in_the_online_store(
    feast_home: Path, feast_resources: dict, january_and_february_online: dict
) -> None:
    january = january_and_february_online["2013-01"]
    assert january["window_start"] == "2013-01-01T00:00:00+00:00"
    assert january["window_end"] == "2013-02-01T00:00:00+00:00"
    assert january["rows_written_by_view"]["plane_facts"] > 1000
    # Plane facts carry one timestamp in January, so February has none to write.
    assert january_and_february_online["2013-02"]["rows_written_by_view"]["plane_facts"] == 0
    online_db = PlatformPaths(feast_home).feast_dir / "online_store.db"
    with sqlite3.connect(online_db) as con:
        for view, written in january["rows_written_by_view"].items():
            [(stored,)] = con.execute(f"select count(distinct entity_key) from flight_delays_{view}").fetchall()
            assert stored == max(written, january_and_february_online["2013-02"]["rows_written_by_view"][view])


def test_rerunning_an_older_month_keeps_the_newer_online_values(
    feast_resources: dict, january_and_february_online: dict
) -> None:
    store = feast_resources["feast"].store()
    before = online_values(store, "carrier_daily", "carrier", ["carrier_flights_28d"], ["UA", "DL", "B6"])
    again = metadata(materialize("online_features", feast_resources, "2013-01"))
    assert again["views_skipped_newer_online"] == ["carrier_daily", "origin_weather", "plane_facts", "route_daily"]
    assert again["rows_written"] == 0
    after = online_values(store, "carrier_daily", "carrier", ["carrier_flights_28d"], ["UA", "DL", "B6"])
    pd.testing.assert_frame_equal(before, after)


def test_feature_service_serves_one_flight(feast_resources: dict, january_and_february_online: dict) -> None:
    store = feast_resources["feast"].store()
    service = store.get_feature_service(MODEL.feature_service)
    row = {"origin": "EWR", "carrier": "UA", "route": "EWR-IAH", "tailnum": "N14228"}
    served = store.get_online_features(features=service, entity_rows=[row]).to_dict()
    assert served["carrier_flights_28d"][0] > 0 and served["temp"][0] is not None
    assert served["plane_seats"][0] == 149


def break_table(path: Path, fault: str, column: str) -> None:
    frame = pl.read_parquet(path)
    if fault == "null":
        frame = frame.with_columns(
            pl.when(pl.int_range(pl.len()) == 5).then(None).otherwise(pl.col(column)).alias(column)
        )
    else:
        frame = frame.drop(column)
    frame.write_parquet(path)


@pytest.mark.parametrize(
    ("table", "fault", "column"),
    [("feat_plane", "null", "event_timestamp"), ("feat_carrier_daily", "drop", "carrier"), ("feat_route_daily", "null", "route")],
)
def test_bad_feature_table_fails_before_anything_is_written_online(
    feast_home: Path, feast_resources: dict, table: str, fault: str, column: str
) -> None:

    materialize("feast_registry", feast_resources)
    materialize("online_features", feast_resources, "2013-01")
    online_db = PlatformPaths(feast_home).feast_dir / "online_store.db"
    snapshot = sha256(online_db)
    path = PlatformPaths(feast_home).feature_tables / f"{table}.parquet"
    break_table(path, fault, column)

    with pytest.raises(FeatureTableError, match=rf"{path}: column '{column}'"):
        materialize("online_features", feast_resources, "2013-02")
    assert sha256(online_db) == snapshot


def test_bad_feature_table_fails_the_training_set_without_writing_it(feast_home: Path, feast_resources: dict) -> None:
    materialize("feast_registry", feast_resources)
    path = PlatformPaths(feast_home).feature_tables / "feat_route_daily.parquet"
    break_table(path, "drop", "route_delay_rate_28d")
    with pytest.raises(FeatureTableError, match=rf"{path}: column 'route_delay_rate_28d' is missing"):
        materialize("training_set", feast_resources, run_config=training_window("2013-01", "2013-01"))
    assert not PlatformPaths(feast_home).training_set_file("2013-01", "2013-01", DELAY.name("training_set")).exists()


def test_online_features_refuses_a_mismatched_platform_home(feast_resources: dict, tmp_path: Path) -> None:
    materialize("feast_registry", feast_resources)
    other = {**feast_resources, "platform": PlatformPathsResource(home=str(tmp_path / "elsewhere"))}
    with pytest.raises(ValueError, match="Feast reads PLATFORM_HOME=.* but the platform resource points at .*elsewhere"):
        materialize("online_features", other, "2013-01")
