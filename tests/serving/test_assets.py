"""The serving group's assets on replayed traffic: request log, online evaluation with the
challenger check and the promotion it gates, and the skew report."""

from __future__ import annotations

import json

import dagster as dg
import polars as pl
from mlflow import MlflowClient

from platform_assets.defs.serving.assets import (
    CHALLENGER_CHECK,
    online_evaluation,
    online_promotion,
    request_log,
    serving_skew,
)
from platform_assets.lib.resources import MLflowResource, PlatformPathsResource
from platform_assets.ml.metrics import rank_auc
from platform_assets.ml.registry import CHAMPION, PREVIOUS, alias_version
from platform_assets.serving.evaluation import day_outcomes
from platform_assets.serving.request_log_files import day_dir, read_day
from platform_assets.serving.rollout import CHALLENGER
from tests.serving.conftest import copy_registry
from tests.serving.world import MODEL, WorldFeastResource

DAY = "2013-03-01"
ASSETS = [request_log, online_evaluation, online_promotion, serving_skew]


def _materialize(world, tracking_uri: str, max_auc_loss: float) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        ASSETS,
        partition_key=DAY,
        resources={
            "platform": PlatformPathsResource(home=str(world.home)),
            "mlflow_store": MLflowResource(home=str(world.home), tracking_uri=tracking_uri),
            "feast": WorldFeastResource(repo_dir=str(world.feature_repo)),
        },
        run_config={"ops": {"online_evaluation": {"config": {"min_labelled": 10, "max_auc_loss": max_auc_loss}}}},
    )


def _metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    events = [e for e in result.get_asset_materialization_events() if e.asset_key.to_user_string() == asset]
    return {k: v.value for k, v in events[0].materialization.metadata.items()} if events else {}


def _check(result: dg.ExecuteInProcessResult) -> dg.AssetCheckEvaluation:
    [evaluation] = [e for e in result.get_asset_check_evaluations() if e.check_name == CHALLENGER_CHECK]
    return evaluation


def test_replayed_day_materializes_log_evaluation_promotion_and_skew(world, replayed, tmp_path) -> None:
    flights, _ = replayed
    day_flights = flights.filter(pl.col("day") == 1).height
    tracking_uri = copy_registry(world, tmp_path / "mlflow")
    result = _materialize(world, tracking_uri, max_auc_loss=1.0)
    assert result.success

    log = _metadata(result, "request_log")
    assert log["dagster/row_count"] == 2 * day_flights  # shadow: champion and challenger per flight
    assert log["flights"] == day_flights
    assert log["rows_by_variant"] == {"champion v1": day_flights, "shadow v2": day_flights}
    # the day's flush files compacted into one, every row kept; nothing dropped
    assert log["files"] == 1 and log["files_before_compaction"] >= 1
    assert log["rows_by_model"] == {MODEL.name: 2 * day_flights}
    assert log["rows_dropped"] == 0 and log["rows_dropped_by_model"] == {MODEL.name: 0}
    assert len(list(day_dir(world.paths, MODEL.name, DAY).glob("*.parquet"))) == 1
    assert 0 < log["latency_p50_ms"] <= log["latency_p99_ms"]

    evaluation = _metadata(result, "online_evaluation")
    # The online AUCs, recomputed here from the day's request log and its validated outcomes.
    served = read_day(world.paths, MODEL.name, DAY).join(
        day_outcomes(world.paths, DAY).select("flight_id", MODEL.label), on="flight_id"
    ).filter(pl.col(MODEL.label).is_not_null())
    for variant, version in (("champion", "1"), ("shadow", "2")):
        rows = served.filter(pl.col("variant") == variant)
        expected = rank_auc(rows[MODEL.label].to_numpy(), rows["score"].to_numpy())
        assert evaluation[f"{variant}_v{version}_auc"] == round(expected, 4)
    report = json.loads((world.paths.reports / "serving" / "online_evaluation" / f"day={DAY}" / "evaluation.json").read_text())
    assert report["paired_flights"] == day_flights
    assert _check(result).passed and evaluation["decision"] == "promote"

    # The check passed, so the challenger became champion; the old champion is kept as previous.
    client = MlflowClient(tracking_uri, registry_uri=tracking_uri)
    assert _metadata(result, "online_promotion")["champion_version"] == "2"
    assert str(alias_version(client, CHAMPION, MODEL.name).version) == "2"
    assert str(alias_version(client, PREVIOUS, MODEL.name).version) == "1"
    assert alias_version(client, CHALLENGER, MODEL.name) is None

    # The replay advanced the online store with its clock: nothing served differs from offline.
    skew = _metadata(result, "serving_skew")
    assert skew["compared"] == skew["flights"] == day_flights
    assert skew["skewed_flights"] == 0


def test_a_failed_challenger_check_skips_the_promotion(world, replayed, tmp_path) -> None:
    tracking_uri = copy_registry(world, tmp_path / "mlflow")
    # Demand an AUC gain no model can show: the check fails and the champion stays.
    result = _materialize(world, tracking_uri, max_auc_loss=-1.0)
    assert result.success
    check = _check(result)
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert check.description.startswith("Keep the champion: shadow v2 online AUC")
    assert _metadata(result, "online_promotion") == {}
    client = MlflowClient(tracking_uri, registry_uri=tracking_uri)
    assert str(alias_version(client, CHAMPION, MODEL.name).version) == "1"
    assert str(alias_version(client, CHALLENGER, MODEL.name).version) == "2"


def test_stale_online_store_shows_as_skew(world, replayed, tmp_path) -> None:
    from platform_assets.serving.evaluation import day_outcomes, skew
    from platform_assets.serving.request_log_files import read_day

    log = read_day(world.paths, MODEL.name, DAY)
    # Pretend the server had served yesterday's carrier rates: the report names that feature.
    stale = log.with_columns(
        pl.col("features").map_elements(
            lambda text: json.dumps({**json.loads(text), "carrier_delay_rate_7d": 0.99}),
            return_dtype=pl.String,
        )
    )
    report = skew(stale, day_outcomes(world.paths, DAY), world.store(), MODEL.feature_service, 1e-9)
    assert report.skewed_flights == report.compared > 0
    assert report.by_feature["carrier_delay_rate_7d"]["skewed_share"] == 1.0
    assert report.by_feature["temp"]["skewed_share"] == 0.0
    assert set(report.details["feature"]) == {"carrier_delay_rate_7d"}


def test_promotion_sensor_evaluates_each_logged_day_once_its_outcomes_are_known(world) -> None:
    from platform_assets.defs.serving.sensors import online_promotion_sensor

    instance = dg.DagsterInstance.ephemeral()
    resources = {"platform": PlatformPathsResource(home=str(world.home))}
    context = dg.build_sensor_context(instance=instance, resources=resources)
    assert "no request_log partition" in online_promotion_sensor(context).skip_message

    # 2013-06-01 has no flights in the world: logged traffic waits for its outcomes.
    for day in (DAY, "2013-06-01"):
        instance.report_runless_asset_event(dg.AssetMaterialization("request_log", partition=day))
    result = online_promotion_sensor(context)
    assert [(r.partition_key, r.run_key) for r in result.run_requests] == [(DAY, f"online-evaluation-{DAY}")]
    again = online_promotion_sensor(dg.build_sensor_context(instance=instance, resources=resources, cursor=result.cursor))
    assert "wait for validated outcomes: 2013-06-01" in again.skip_message


def test_request_log_reports_the_rows_the_server_could_not_keep(world, replayed, tmp_path) -> None:
    from platform_assets.paths import PlatformPaths
    from platform_assets.serving.request_log_files import write_dropped, write_rows

    paths = PlatformPaths(tmp_path)
    rows = read_day(world.paths, MODEL.name, DAY)
    for part in rows.iter_slices(n_rows=100):
        write_rows(day_dir(paths, MODEL.name, DAY), part)
    for dropped in (3, 4):  # two flushes found the buffer full
        write_dropped(day_dir(paths, MODEL.name, DAY), dropped)
    result = dg.materialize([request_log], partition_key=DAY, resources={"platform": PlatformPathsResource(home=str(tmp_path))})
    log = _metadata(result, "request_log")
    assert log["rows_dropped"] == 7 and log["dagster/row_count"] == rows.height
    assert (log["files_before_compaction"], log["files"]) == (-(-rows.height // 100), 1)


def test_compaction_sensor_asks_for_the_days_whose_log_grew_and_again_only_after_it_grew(tmp_path) -> None:
    from platform_assets.defs.serving.sensors import (
        COMPACT_AFTER_FILES,
        request_log_compaction_sensor,
    )
    from platform_assets.paths import PlatformPaths
    from platform_assets.serving.request_log_files import compact_day, log_schema, write_rows

    paths = PlatformPaths(tmp_path)
    frame = pl.DataFrame(schema=log_schema())
    for day, count in (("2013-03-01", COMPACT_AFTER_FILES), ("2013-03-02", COMPACT_AFTER_FILES - 1)):
        for _ in range(count):
            write_rows(day_dir(paths, MODEL.name, day), frame)
    context = dg.build_sensor_context(resources={"platform": PlatformPathsResource(home=str(tmp_path))})
    [request] = request_log_compaction_sensor(context).run_requests
    newest = max(p.name for p in day_dir(paths, MODEL.name, "2013-03-01").glob("*.parquet"))
    assert (request.partition_key, request.run_key) == ("2013-03-01", f"request-log-2013-03-01-{newest}")
    compact_day(paths, MODEL.name, "2013-03-01")
    assert "no day's request log holds" in request_log_compaction_sensor(context).skip_message
