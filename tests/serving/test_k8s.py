"""The InferenceServices under deploy/kserve: one per model declared with serving, generated from the
kserve SDK's models, consistent with the platform's other manifests, and runnable by the server
they name."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from kserve import V1beta1InferenceService, V1beta1InferenceServiceSpec, V1beta1PredictorSpec

from platform_assets.ml.declaration import load_declarations
from platform_assets.serving import k8s
from platform_assets.serving.server import parse_args
from tests.k8s.kube_models import as_model

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
MANIFEST = DEPLOY / "kserve" / "inferenceservice.yaml"
SERVED = {d.name: d for d in load_declarations().values() if d.serving.enabled}


def _docs(path: Path) -> list[dict]:
    return list(yaml.safe_load_all(path.read_text()))


def _services() -> dict[str, dict]:
    """The committed InferenceServices by the model they serve."""
    return {doc["metadata"]["labels"]["model"]: doc for doc in _docs(MANIFEST)}


def test_the_committed_manifest_is_the_generated_one() -> None:
    assert _docs(MANIFEST) == k8s.manifests()


def test_one_inference_service_per_model_declared_with_serving() -> None:
    services = _services()
    assert set(services) == set(SERVED) == {"flight_delay_model", "flight_cancellation_model"}
    assert {doc["metadata"]["name"] for doc in services.values()} == {
        "flight-delay-model", "flight-cancellation-model"
    }


@pytest.mark.parametrize("model", sorted(SERVED))
def test_every_field_is_one_the_kserve_and_kubernetes_models_define(model: str) -> None:
    # The kserve SDK deserializes only its own models, so each level is checked against its model:
    # a misspelt key would otherwise pass unnoticed.
    doc = _services()[model]
    assert doc["apiVersion"] == "serving.kserve.io/v1beta1" and doc["kind"] == "InferenceService"
    assert set(doc) <= set(V1beta1InferenceService.attribute_map.values())
    as_model(doc["metadata"], "V1ObjectMeta")
    assert set(doc["spec"]) <= set(V1beta1InferenceServiceSpec.attribute_map.values())
    predictor = doc["spec"]["predictor"]
    assert set(predictor) <= set(V1beta1PredictorSpec.attribute_map.values())
    as_model(predictor["volumes"], "list[V1Volume]")


@pytest.mark.parametrize("model", sorted(SERVED))
def test_predictor_serves_its_model_as_declared(model: str) -> None:
    predictor = _services()[model]["spec"]["predictor"]
    assert predictor["canaryTrafficPercent"] == 20
    # The server writes the request log itself (see platform_assets/serving/k8s.py): no logger
    # pointing at a sink nothing under deploy/ defines.
    assert "logger" not in predictor
    [container] = predictor["containers"]
    as_model(container, "V1Container")  # every field is a real Kubernetes container field
    assert container["readinessProbe"]["httpGet"]["path"] == f"/v1/models/{model}"
    # the server accepts exactly these flags, serves this model as declared, listens where probed
    args = parse_args(container["args"])
    declared = SERVED[model].serving
    assert (args.host, args.port, args.serve_model) == ("0.0.0.0", 8080, [model])
    assert (args.rollout, args.canary_percent) == (declared.rollout, declared.canary_percent)
    assert container["ports"][0]["containerPort"] == args.port == container["readinessProbe"]["httpGet"]["port"]


@pytest.mark.parametrize("model", sorted(SERVED))
def test_references_exist_in_the_platforms_manifests(model: str) -> None:
    predictor = _services()[model]["spec"]["predictor"]
    [container] = predictor["containers"]
    [configmap] = _docs(DEPLOY / "k8s" / "configmap.yaml")
    secrets = {d["metadata"]["name"] for d in _docs(DEPLOY / "k8s" / "secret.example.yaml")}
    claims = {d["metadata"]["name"] for d in _docs(DEPLOY / "k8s" / "pvc.yaml")}
    accounts = {d["metadata"]["name"] for d in _docs(DEPLOY / "k8s" / "serviceaccount.yaml") if d["kind"] == "ServiceAccount"}
    refs = {k: v["name"] for e in container["envFrom"] for k, v in e.items()}
    assert refs == {"configMapRef": configmap["metadata"]["name"], "secretRef": "flight-platform-secrets"}
    assert refs["secretRef"] in secrets
    assert predictor["serviceAccountName"] in accounts
    [volume] = predictor["volumes"]
    assert volume["persistentVolumeClaim"]["claimName"] in claims
    [mount] = container["volumeMounts"]
    assert mount["name"] == volume["name"] and mount["mountPath"] == configmap["data"]["PLATFORM_HOME"]


def test_the_server_pods_sit_behind_the_model_server_network_policy() -> None:
    [policy] = [d for d in _docs(DEPLOY / "k8s" / "network-policy.yaml")
                if d["metadata"]["name"] == "model-server-behind-auth"]
    selector = policy["spec"]["podSelector"]["matchLabels"]
    for doc in _services().values():
        assert selector.items() <= doc["spec"]["predictor"]["labels"].items()
