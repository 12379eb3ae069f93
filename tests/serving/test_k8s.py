"""The InferenceService under deploy/kserve: generated from the kserve SDK's models, consistent
with the platform's other manifests, and runnable by the server it names."""

from __future__ import annotations

from pathlib import Path

import yaml
from kserve import (
    V1beta1InferenceService,
    V1beta1InferenceServiceSpec,
    V1beta1LoggerSpec,
    V1beta1PredictorSpec,
)

from platform_assets.ml.declaration import declared
from platform_assets.serving import k8s
from platform_assets.serving.server import parse_args
from tests.k8s.kube_models import as_model

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
MANIFEST = DEPLOY / "kserve" / "inferenceservice.yaml"
MODEL = declared("delay").spec


def _docs(name: str) -> list[dict]:
    return list(yaml.safe_load_all((DEPLOY / "k8s" / name).read_text()))


def test_the_committed_manifest_is_the_generated_one() -> None:
    assert yaml.safe_load(MANIFEST.read_text()) == k8s.manifest()


def test_every_field_is_one_the_kserve_and_kubernetes_models_define() -> None:
    # The kserve SDK deserializes only its own models, so each level is checked against its model:
    # a misspelt key would otherwise pass unnoticed.
    doc = yaml.safe_load(MANIFEST.read_text())
    assert doc["apiVersion"] == "serving.kserve.io/v1beta1" and doc["kind"] == "InferenceService"
    assert set(doc) <= set(V1beta1InferenceService.attribute_map.values())
    as_model(doc["metadata"], "V1ObjectMeta")
    assert set(doc["spec"]) <= set(V1beta1InferenceServiceSpec.attribute_map.values())
    predictor = doc["spec"]["predictor"]
    assert set(predictor) <= set(V1beta1PredictorSpec.attribute_map.values())
    assert set(predictor["logger"]) <= set(V1beta1LoggerSpec.attribute_map.values())
    as_model(predictor["volumes"], "list[V1Volume]")


def test_predictor_canary_logger_and_container() -> None:
    predictor = yaml.safe_load(MANIFEST.read_text())["spec"]["predictor"]
    assert predictor["canaryTrafficPercent"] == 20
    assert predictor["logger"] == {"mode": "all", "url": k8s.LOGGER_URL}
    [container] = predictor["containers"]
    as_model(container, "V1Container")  # every field is a real Kubernetes container field
    assert container["readinessProbe"]["httpGet"]["path"] == f"/v1/models/{MODEL.name}"
    # the server accepts exactly these flags and listens where the probe looks
    args = parse_args(container["args"])
    assert (args.host, args.port, args.rollout, args.canary_percent) == ("0.0.0.0", 8080, "canary", 20.0)
    assert container["ports"][0]["containerPort"] == args.port


def test_references_exist_in_the_platforms_manifests() -> None:
    predictor = yaml.safe_load(MANIFEST.read_text())["spec"]["predictor"]
    [container] = predictor["containers"]
    [configmap] = _docs("configmap.yaml")
    secrets = {d["metadata"]["name"] for d in _docs("secret.example.yaml")}
    claims = {d["metadata"]["name"] for d in _docs("pvc.yaml")}
    accounts = {d["metadata"]["name"] for d in _docs("serviceaccount.yaml") if d["kind"] == "ServiceAccount"}
    refs = {k: v["name"] for e in container["envFrom"] for k, v in e.items()}
    assert refs == {"configMapRef": configmap["metadata"]["name"], "secretRef": "flight-platform-secrets"}
    assert refs["secretRef"] in secrets
    assert predictor["serviceAccountName"] in accounts
    [volume] = predictor["volumes"]
    assert volume["persistentVolumeClaim"]["claimName"] in claims
    [mount] = container["volumeMounts"]
    assert mount["name"] == volume["name"] and mount["mountPath"] == configmap["data"]["PLATFORM_HOME"]


def test_the_server_pods_sit_behind_the_model_server_network_policy() -> None:
    predictor = yaml.safe_load(MANIFEST.read_text())["spec"]["predictor"]
    [policy] = [d for d in _docs("network-policy.yaml") if d["metadata"]["name"] == "model-server-behind-auth"]
    selector = policy["spec"]["podSelector"]["matchLabels"]
    assert selector.items() <= predictor["labels"].items()
