"""Both KServe protocols for both declared models, called through KServe's own client
(`kserve.InferenceRESTClient`) as a team's service would: the same probabilities as batch scoring,
a v2 request built from the model's metadata alone, and v2 bodies that break a rule."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import polars as pl
import pytest
import requests
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig

from platform_assets.featurestore.historical import historical_features
from platform_assets.ml.pyfunc import predict_version
from platform_assets.serving.evaluation import day_outcomes
from platform_assets.serving.instances import parse_body
from platform_assets.serving.traffic import (
    INSTANCE_COLUMNS,
    FeatureClock,
    _instance,
    batches,
    month_flights,
)
from tests.serving.conftest import running_server
from tests.serving.world import CANCELLATION, MODEL

# After the replayed days (conftest's REPLAY_DAYS): the feature clock moves on from there.
DAY = "2013-03-03"
NUMPY = {"INT64": np.int64, "FP64": np.float64, "BYTES": np.object_}
FACTS = ("flight_id", "origin", "dest", "route", "carrier", "tailnum", "distance", "sched_dep_hour", "sched_dep_dow")


@pytest.fixture(scope="module")
def server(world, replayed, tmp_path_factory):
    """Both models, as declared (champion only), after the replay moved the online store."""
    with running_server(world, tmp_path_factory.mktemp("protocols")) as server:
        yield server


def v2_request(metadata: dict, instances: list[dict], binary: bool = False) -> InferRequest:
    """Built from the metadata alone: one tensor per listed input, of its datatype, one value per
    flight (an unknown tail number as an empty string). `binary`: tensors and answer in the
    protocol's binary extension instead of JSON."""
    tensors = []
    for spec in metadata["inputs"]:
        values = [instance[spec["name"]] for instance in instances]
        if spec["datatype"] == "BYTES":
            values = ["" if v is None else v for v in values]
        tensor = InferInput(spec["name"], [len(values)], spec["datatype"])
        tensor.set_data_from_numpy(np.array(values, dtype=NUMPY[spec["datatype"]]), binary_data=binary)
        tensors.append(tensor)
    parameters = {"binary_data_output": True} if binary else None
    return InferRequest(model_name=metadata["name"], infer_inputs=tensors, parameters=parameters)


def _output(tensor) -> list:
    values = tensor.data if tensor.data is not None else tensor.as_numpy().tolist()
    return [v.decode() if isinstance(v, bytes) else v for v in values]


def test_metadata_lists_every_request_field_and_the_outputs(server) -> None:
    for spec in (MODEL, CANCELLATION):
        metadata = requests.get(f"{server.url}/v2/models/{spec.name}", timeout=10).json()
        assert [i["name"] for i in metadata["inputs"]] == list(INSTANCE_COLUMNS)
        types = {i["name"]: i["datatype"] for i in metadata["inputs"]}
        assert types["origin"] == types["carrier"] == types["time_hour"] == "BYTES"
        assert types["distance"] == "FP64" and types["year"] == types["sched_dep_time"] == "INT64"
        assert {tuple(i["shape"]) for i in metadata["inputs"]} == {(-1,)}
        assert metadata["outputs"] == [
            {"name": spec.prediction, "datatype": "FP64", "shape": [-1]},
            *({"name": n, "datatype": "BYTES", "shape": [-1]} for n in ("variant", "model_version", "missing_features")),
        ]
    ready = requests.get(f"{server.url}/v2/health/ready", timeout=10).json()
    assert ready == {"ready": True}
    assert requests.get(f"{server.url}/v1/models", timeout=10).json() == {"models": [CANCELLATION.name, MODEL.name]}


async def _both_protocols(server, world, flights: pl.DataFrame, metadata: dict) -> dict[str, dict[str, list]]:
    """Each request of the replayed flights sent on v1 and on v2 (built from metadata; every other
    one in binary tensors), to both models; per model: flight ids, v1 probabilities, v2
    probabilities and v2 variants/versions."""
    got: dict[str, dict[str, list]] = {s.name: {"ids": [], "v1": [], "v2": [], "variant": [], "version": []}
                                       for s in (MODEL, CANCELLATION)}
    v1 = InferenceRESTClient(RESTConfig(protocol="v1"))
    v2 = InferenceRESTClient(RESTConfig(protocol="v2"))
    # The replay clock: the online store holds, before each request, exactly what was known then.
    clock = FeatureClock(world.store(), MODEL.feature_service)
    for k, batch in enumerate(batches(flights, clock, max_batch=8)):
        ids = [f.flight_id for f in parse_body({"instances": batch.instances}, {"EWR", "JFK", "LGA"},
                                               {i["dest"] for i in batch.instances})]
        for spec in (MODEL, CANCELLATION):
            answer = await v1.infer(server.url, {"instances": batch.instances}, model_name=spec.name)
            request = v2_request(metadata[spec.name], batch.instances, binary=k % 2 == 1)
            response = await v2.infer(server.url, request, model_name=spec.name)
            outputs = {o.name: _output(o) for o in response.outputs}
            out = got[spec.name]
            out["ids"] += ids
            out["v1"] += answer["predictions"]
            out["v2"] += outputs[spec.prediction]
            out["variant"] += outputs["variant"]
            out["version"] += outputs["model_version"]
    await v1.close()
    await v2.close()
    return got


def test_v1_and_v2_give_the_batch_scores_of_both_models(world, server) -> None:
    flights = month_flights(world.paths, DAY[:7]).filter(pl.col("day") == int(DAY[-2:])).head(40)
    metadata = {s.name: requests.get(f"{server.url}/v2/models/{s.name}", timeout=10).json() for s in (MODEL, CANCELLATION)}
    got = asyncio.run(_both_protocols(server, world, flights, metadata))

    events = day_outcomes(world.paths, DAY).select(*FACTS, "event_timestamp").to_pandas()
    for spec in (MODEL, CANCELLATION):
        out = got[spec.name]
        assert len(out["ids"]) == flights.height == len(set(out["ids"]))
        assert out["v1"] == out["v2"]  # the same numbers through both protocols
        assert set(out["variant"]) == {"champion"} and set(out["version"]) == {"1"}
        # Batch scoring: Feast's offline point-in-time join, then the version through MLflow.
        entities = events[events["flight_id"].isin(out["ids"])]
        offline = historical_features(world.store(), entities, spec.feature_service)
        batch = dict(zip(offline["flight_id"], predict_version(spec.name, "1", offline)))
        np.testing.assert_allclose(out["v2"], [batch[i] for i in out["ids"]], rtol=0, atol=1e-6)
    # two models, two different answers to the same flights
    assert got[MODEL.name]["v1"] != got[CANCELLATION.name]["v1"]


def _bad_v2_bodies(valid: dict) -> list[tuple[object, str]]:
    """(body, the input or field the 4xx must name)."""
    def tensors(**changes: object) -> dict:
        return {"inputs": [{**t, **changes.get(t["name"], {})} for t in valid["inputs"]]}

    def without(name: str) -> dict:
        return {"inputs": [t for t in valid["inputs"] if t["name"] != name]}

    origin = next(t for t in valid["inputs"] if t["name"] == "origin")
    return [
        (b"{not json", "body"),
        ([valid], "body"),
        ({"rows": valid["inputs"]}, "inputs"),
        ({"inputs": "one flight"}, "inputs"),
        ({"inputs": []}, "inputs"),
        ({"inputs": [{"name": "origin"}]}, "inputs[0].shape (input 'origin')"),
        ({"inputs": [*valid["inputs"], {**origin, "name": "colour"}]}, "colour"),
        ({"inputs": [*valid["inputs"], origin]}, "origin: rule 'one tensor per input'"),
        ({"inputs": [*valid["inputs"], {**origin, "name": "dep_delay", "datatype": "INT64", "data": [5]}]},
         "dep_delay[0]: rule 'known only after departure'"),
        (without("dest"), "dest: rule 'required input'"),
        (tensors(origin={"datatype": "FP64", "data": [1.0]}), "origin: rule 'datatype BYTES'"),
        (tensors(year={"shape": [2]}), "year: rule 'data: one scalar per flight"),
        (tensors(year={"shape": [1, 2]}), "year: rule 'shape [N] or [N, 1]"),
        (tensors(year={"data": ["2013"]}), "year[0]: rule 'integer'"),
        (tensors(distance={"shape": [2], "data": [1400, 1400]}), "distance: rule 'as many values as the other inputs'"),
        (tensors(origin={"data": ["XXX"]}), "origin[0]: rule 'known origin airport"),
        (tensors(sched_dep_time={"data": [2575]}), "sched_dep_time[0]: rule 'HHMM time of day"),
        (tensors(time_hour={"data": ["yesterday"]}), "time_hour[0]: rule 'ISO 8601 timestamp'"),
        (tensors(distance={"data": [-5]}), "distance[0]: rule 'positive number (miles)'"),
        ({"inputs": [{**t, "shape": [1001], "data": t["data"] * 1001} for t in valid["inputs"]]},
         "inputs: rule '1 to 1000 flights per request'"),
    ]


def test_malformed_v2_bodies_get_4xx_naming_the_input_and_the_server_stays_up(world, server) -> None:
    [instance] = [_instance(r) for r in month_flights(world.paths, "2013-03").head(1).to_dicts()]
    metadata = requests.get(f"{server.url}/v2/models/{MODEL.name}", timeout=10).json()
    valid = {"inputs": [t.to_dict() for t in v2_request(metadata, [instance]).inputs]}
    for tensor in valid["inputs"]:
        tensor.pop("parameters", None)
    url = server.infer_url(MODEL.name)
    errors_before = server.metric("model_requests_total", model=MODEL.name, protocol="v2", variant="none", status="400")
    cases = _bad_v2_bodies(valid)
    assert len(cases) == 20
    for body, named in cases:
        data = body if isinstance(body, bytes) else json.dumps(body)
        response = requests.post(url, data=data, headers={"content-type": "application/json"}, timeout=30)
        assert response.status_code == 400, (named, response.status_code, response.text)
        error = response.json()["error"]
        assert named in error and "rule '" in error, (named, error)
    # The protocol's binary extension: a JSON header (its length in a header), then the tensors.
    binary = [(b'{"rows": []}', "body: rule 'Open Inference binary request"),
              (b'{"inputs": [{"name": "year", "datatype": "INT64", "shape": [1]}]}', "'data' field is missing")]
    for body, named in binary:
        headers = {"content-type": "application/octet-stream", "inference-header-content-length": str(len(body))}
        response = requests.post(url, data=body, headers=headers, timeout=30)
        assert response.status_code == 400 and named in response.json()["error"], (named, response.text)
    ok = requests.post(url, json=valid, timeout=10)
    assert ok.status_code == 200, ok.text
    assert [o["name"] for o in ok.json()["outputs"]] == [MODEL.prediction, "variant", "model_version", "missing_features"]
    assert server.process.poll() is None
    errors = server.metric("model_requests_total", model=MODEL.name, protocol="v2", variant="none", status="400")
    assert errors - errors_before == len(cases) + len(binary)
