"""The model server as a process: batch parity, canary and shadow, alias moves, bad bodies."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import polars as pl
import pytest
import requests
from mlflow import MlflowClient

from platform_assets.featurestore.historical import historical_features
from platform_assets.ml.pyfunc import predict_version
from platform_assets.ml.registry import CHAMPION
from platform_assets.serving.evaluation import day_outcomes, served_features
from platform_assets.serving.request_log_files import read_all
from platform_assets.serving.traffic import _instance, month_flights
from tests.serving.conftest import REPLAY_DAYS, copy_registry, running_server, wait_for
from tests.serving.world import CANCELLATION, MODEL


def test_online_scores_equal_batch_scores_of_the_same_flights(world, replayed) -> None:
    flights, result = replayed
    assert result.failed == [] and result.flights == flights.height
    assert result.requests < flights.height  # flights sharing a feature state share a request
    log = read_all(world.paths, MODEL.name)
    answered = log.filter(pl.col("answered"))
    assert answered.height == flights.height and set(answered["model_version"]) == {"1"}

    # Batch scoring of the same flights: Feast's offline point-in-time join at the same prediction
    # time, then the registered version through MLflow (ml.pyfunc.predict_version).
    served = served_features(log)
    events = pl.concat([day_outcomes(world.paths, f"2013-03-{d:02d}") for d in REPLAY_DAYS])
    entities = served[["flight_id", "event_timestamp"]].merge(
        events.select("flight_id", "origin", "dest", "route", "carrier", "tailnum", "distance",
                      "sched_dep_hour", "sched_dep_dow").to_pandas(),
        on="flight_id",
    )
    assert len(entities) == flights.height
    offline = historical_features(world.store(), entities, MODEL.feature_service)
    batch = predict_version(MODEL.name, "1", offline)
    online = answered.sort("received_at").unique("flight_id", keep="last")
    online_scores = dict(zip(online["flight_id"], online["score"]))
    np.testing.assert_allclose(
        [online_scores[f] for f in offline["flight_id"]], batch, rtol=0, atol=1e-6
    )
    # ... because the online store served exactly the offline values (the replay clock at work)
    features = [c for c in served.columns if c not in ("flight_id", "event_timestamp")]
    on = served.set_index("flight_id").loc[offline["flight_id"], features].astype("float64")
    off = offline.set_index("flight_id")[features].astype("float64")
    np.testing.assert_array_equal(on.to_numpy(), off.to_numpy())


def test_shadow_mode_logs_both_versions_and_answers_with_the_champion(world, replayed) -> None:
    flights, result = replayed
    assert result.variants == {"champion": flights.height}
    log = read_all(world.paths, MODEL.name)
    per_flight = log.group_by("flight_id").agg(
        pl.col("variant").sort().alias("variants"), pl.col("model_version").sort().alias("versions"),
        pl.col("answered").sum().alias("answered"),
    )
    assert per_flight.height == flights.height
    assert per_flight["variants"].to_list() == [["champion", "shadow"]] * flights.height
    assert per_flight["versions"].to_list() == [["1", "2"]] * flights.height
    assert per_flight["answered"].to_list() == [1] * flights.height
    shadow = log.filter(pl.col("variant") == "shadow").sort("flight_id")
    champion = log.filter(pl.col("variant") == "champion").sort("flight_id")
    assert not np.allclose(shadow["score"].to_numpy(), champion["score"].to_numpy())


def _instances(world, n: int) -> list[dict]:
    flights = pl.concat([month_flights(world.paths, m) for m in ("2013-01", "2013-02", "2013-03")])
    return [_instance(r) for r in flights.head(n).to_dicts()]


def test_canary_share_within_three_points_of_the_configured_share(world, tmp_path) -> None:
    instances = _instances(world, 2000)
    with running_server(world, tmp_path / "canary", "--rollout", "canary", "--canary-percent", "20") as server:
        session = requests.Session()
        details, mixes = [], []
        for start in range(0, len(instances), 100):
            response = server.predict(instances[start : start + 100], session)
            assert response.status_code == 200, response.text
            details += response.json()["details"]
            mixes.append("+".join(sorted({d["variant"] for d in response.json()["details"]})))
        again = server.predict(instances[:100], session).json()["details"]
        mixes.append(mixes[0])
        mixed = {"model": MODEL.name, "protocol": "v1", "variant": "canary+champion"}
        metrics = {
            "canary": server.metric("model_instances_total", model=MODEL.name, variant="canary", model_version="2"),
            "champion": server.metric("model_instances_total", model=MODEL.name, variant="champion", model_version="1"),
            "requests": server.metric("model_requests_total", status="200", **mixed),
            "latencies": server.metric("model_request_duration_seconds_count", **mixed),
        }
    variants = [d["variant"] for d in details]
    share = variants.count("canary") / len(variants)
    assert abs(share - 0.20) <= 0.03, share
    assert {d["model_version"] for d in details if d["variant"] == "canary"} == {"2"}
    assert {d["model_version"] for d in details if d["variant"] == "champion"} == {"1"}
    # the same flight always goes to the same variant
    assert [d["variant"] for d in again] == variants[:100]
    # /metrics counts the same: instances per variant and version, requests per variant mix
    assert metrics["canary"] == variants.count("canary") + [d["variant"] for d in again].count("canary")
    assert metrics["champion"] == variants.count("champion") + [d["variant"] for d in again].count("champion")
    assert mixes.count("canary+champion") > 0
    assert metrics["requests"] == metrics["latencies"] == mixes.count("canary+champion")


def test_alias_moved_while_requests_run_fails_none(world, tmp_path) -> None:
    tracking_uri = copy_registry(world, tmp_path / "mlflow")
    instances = _instances(world, 50)
    answers: list[tuple[float, int, str]] = []
    stop = threading.Event()

    def client() -> None:
        session = requests.Session()
        i = 0
        while not stop.is_set():
            response = server.predict([instances[i % len(instances)]], session)
            version = response.json()["details"][0]["model_version"] if response.ok else ""
            answers.append((time.monotonic(), response.status_code, version))
            i += 1

    with running_server(world, tmp_path / "alias", "--alias-poll-seconds", "0.2",
                        tracking_uri=tracking_uri) as server:
        threads = [threading.Thread(target=client) for _ in range(2)]
        for t in threads:
            t.start()
        wait_for(lambda: len(answers) >= 20, "20 answers from v1")
        MlflowClient(tracking_uri, registry_uri=tracking_uri).set_registered_model_alias(
            MODEL.name, CHAMPION, "2"
        )
        moved = time.monotonic()
        # The event, not the clock: the server answers with v2 once its watcher saw the move ...
        wait_for(lambda: any(v == "2" for _, _, v in answers), "an answer from v2")
        switched = next(i for i, (_, _, v) in enumerate(answers) if v == "2")
        # ... and keeps answering with it (both client threads, another 40 requests).
        wait_for(lambda: len(answers) >= switched + 40, "40 answers after the switch")
        stop.set()
        for t in threads:
            t.join()
    assert answers and all(status == 200 for _, status, _ in answers)
    assert {v for t, _, v in answers if t < moved} == {"1"}
    # Two client threads: an answer from v1 may still land just after v2's first one, never later.
    assert {v for _, _, v in answers[switched + 2 :]} == {"2"}


def _bad_bodies(valid: dict) -> list[tuple[object, str]]:
    """(body, the field or word the 4xx must name)."""
    def replaced(**changes: object) -> dict:
        return {"instances": [{**valid, **changes}]}

    without_origin = {k: v for k, v in valid.items() if k != "origin"}
    return [
        (b"{not json", "request format"),
        ([valid], "body"),
        ({"rows": [valid]}, "instances"),
        ({"instances": "one flight"}, "instances"),
        ({"instances": []}, "instances"),
        ({"instances": [42]}, "instances[0]"),
        ({"instances": [without_origin]}, "instances[0].origin"),
        (replaced(year="2013"), "instances[0].year"),
        (replaced(origin="XXX"), "instances[0].origin"),
        (replaced(dest="ZZZ"), "instances[0].dest"),
        (replaced(month=2, day=30), "instances[0].day"),
        (replaced(sched_dep_time=2575), "instances[0].sched_dep_time"),
        (replaced(time_hour="yesterday"), "instances[0].time_hour"),
        (replaced(time_hour="2013-03-01T00:00:00Z"), "instances[0].time_hour"),
        (replaced(dep_delay=12), "instances[0].dep_delay"),
        (replaced(distance=-5), "instances[0].distance"),
        (replaced(hour=3), "instances[0].hour"),
        (replaced(carrier="united"), "instances[0].carrier"),
        (replaced(flight=True), "instances[0].flight"),
        ({"instances": [valid] * 1001}, "instances"),
    ]


@pytest.fixture(scope="module")
def champion_server(world, replayed, tmp_path_factory):
    """A champion-only server, started once for the tests below (after the replay filled the store)."""
    with running_server(world, tmp_path_factory.mktemp("champion")) as server:
        yield server


def test_malformed_bodies_get_4xx_naming_the_field_and_the_server_stays_up(world, champion_server) -> None:
    [valid] = _instances(world, 1)
    server = champion_server
    cases = _bad_bodies(valid)
    assert len(cases) == 20 and len({json.dumps(b) if not isinstance(b, bytes) else b.decode() for b, _ in cases}) == 20
    for body, field in cases:
        if isinstance(body, bytes):
            response = requests.post(server.predict_url, data=body, timeout=10,
                                     headers={"content-type": "application/json"})
        else:
            response = requests.post(server.predict_url, json=body, timeout=10)
        assert 400 <= response.status_code < 500, (field, response.status_code, response.text)
        assert field in response.json()["error"], (field, response.text)
        if field.startswith("instances[0]."):
            assert "rule '" in response.json()["error"]
    ok = server.predict([valid])
    assert ok.status_code == 200 and len(ok.json()["predictions"]) == 1
    # Sent without a JSON content type, as plain `curl -d` sends it: parsed all the same.
    form = {"content-type": "application/x-www-form-urlencoded"}  # what `curl -d` says it sends
    plain = requests.post(server.predict_url, data=json.dumps({"instances": [valid]}), headers=form, timeout=10)
    assert plain.status_code == 200 and plain.json()["predictions"] == ok.json()["predictions"]
    garbled = requests.post(server.predict_url, data="{not json", headers=form, timeout=10)
    assert garbled.status_code == 400 and "body: rule 'JSON object'" in garbled.json()["error"]
    assert server.process.poll() is None


def test_unknown_tailnum_is_flagged_not_failed(world, champion_server) -> None:
    valid = next(i for i in _instances(world, 20) if i["tailnum"] is not None)
    known = champion_server.predict([valid]).json()
    unknown = champion_server.predict([{**valid, "tailnum": "N0NE"}, {**valid, "tailnum": None}])
    assert unknown.status_code == 200
    plane = {"plane_age_years", "plane_seats", "plane_engines"}
    for detail in unknown.json()["details"]:
        assert plane <= set(detail["missing_features"])
    # the plane of a known tail number has its seats (its age may be unknown: then it is flagged too)
    assert "plane_seats" not in known["details"][0]["missing_features"]
    assert all(0 < p < 1 for p in unknown.json()["predictions"])


def test_a_declared_model_without_a_champion_is_left_out_and_the_others_serve(world, replayed, tmp_path) -> None:
    """The repository's declarations (delay and cancellation) on a state where only the delay model
    has a champion, as after `make run`: the server starts, serves the delay model, names the other."""
    from platform_assets.ml.declaration import MODELS_DIR

    tracking_uri = copy_registry(world, tmp_path / "mlflow")
    MlflowClient(tracking_uri, registry_uri=tracking_uri).delete_registered_model_alias(CANCELLATION.name, CHAMPION)
    with running_server(world, tmp_path / "both", "--models-dir", str(MODELS_DIR), tracking_uri=tracking_uri) as server:
        listed = requests.get(f"{server.url}/v1/models", timeout=10).json()
        assert listed == {"models": [MODEL.name]}
        assert server.predict(_instances(world, 1)).status_code == 200
        log = server.log_file.read_text()
        assert "flight_cancellation_model is not served: it has no 'champion' version yet" in log
