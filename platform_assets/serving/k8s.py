"""The model server as KServe InferenceServices, one per model declared with serving, built from the
kserve SDK's models.

    python -m platform_assets.serving.k8s > deploy/kserve/inferenceservice.yaml

Each predictor is the same image as the code location (deploy/Dockerfile) running the server module
for its one model (`--serve-model`), with the rollout its declaration states, the platform's config
map and secrets (MLflow tracking URI, Feast's Redis online store) and the `PLATFORM_HOME` claim.
`canaryTrafficPercent` is KServe's own rollout of a new revision of the server (a new image or
flags); which model version answers is decided inside the server by the MLflow aliases (champion,
challenger) and its own canary or shadow mode.

No KServe request logger: the server writes the request log itself, to the day-partitioned parquet
tables under `PLATFORM_HOME` on the shared claim, with what the HTTP bodies a logger forwards do not
carry (the feature values served, the variant and version per flight, shadow scores). A logger
would need a broker and a collector to write a second, poorer copy of the same table.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from platform_assets.ml.declaration import MODELS_DIR, ModelDeclaration
from platform_assets.serving.server import served_models

NAMESPACE = "flight-platform"
IMAGE = "registry.example.com/flight-platform:latest"
CONFIG_MAP = "flight-platform-config"
SECRET = "flight-platform-secrets"
SERVICE_ACCOUNT = "flight-platform"
# The request log is written under PLATFORM_HOME (the config map's value), on the platform's claim.
HOME_CLAIM = "flight-platform-home"
HOME_MOUNT = "/var/lib/platform"
PORT = 8080
# The pods' label the network policy `model-server-behind-auth` (deploy/k8s) selects: only the
# authenticating proxy may reach them.
POD_LABELS = {"app.kubernetes.io/name": "model-server"}


def service_name(model: str) -> str:
    """The InferenceService of a registered model: its name as a DNS label."""
    return model.replace("_", "-")


def _container(declared: ModelDeclaration, image: str) -> Any:
    from kubernetes import client as k8s

    health = k8s.V1HTTPGetAction(path=f"/v1/models/{declared.name}", port=PORT)
    return k8s.V1Container(
        name="kserve-container",
        image=image,
        command=["python", "-m", "platform_assets.serving.server"],
        args=[
            "--host", "0.0.0.0",
            "--port", str(PORT),
            "--serve-model", declared.name,
            "--rollout", declared.serving.rollout,
            "--canary-percent", str(declared.serving.canary_percent),
        ],
        env_from=[
            k8s.V1EnvFromSource(config_map_ref=k8s.V1ConfigMapEnvSource(name=CONFIG_MAP)),
            k8s.V1EnvFromSource(secret_ref=k8s.V1SecretEnvSource(name=SECRET)),
        ],
        ports=[k8s.V1ContainerPort(container_port=PORT, protocol="TCP")],
        readiness_probe=k8s.V1Probe(http_get=health, period_seconds=5),
        volume_mounts=[k8s.V1VolumeMount(name="platform-home", mount_path=HOME_MOUNT)],
        resources=k8s.V1ResourceRequirements(
            requests={"cpu": "1", "memory": "2Gi"}, limits={"cpu": "2", "memory": "4Gi"}
        ),
    )


def inference_service(
    declared: ModelDeclaration,
    image: str = IMAGE,
    namespace: str = NAMESPACE,
    canary_traffic_percent: int | None = 20,
    min_replicas: int = 1,
    max_replicas: int = 3,
) -> Any:
    """A V1beta1InferenceService serving one declared model."""
    from kserve import V1beta1InferenceService, V1beta1InferenceServiceSpec, V1beta1PredictorSpec
    from kubernetes import client as k8s

    return V1beta1InferenceService(
        api_version="serving.kserve.io/v1beta1",
        kind="InferenceService",
        metadata=k8s.V1ObjectMeta(
            name=service_name(declared.name),
            namespace=namespace,
            labels={"app.kubernetes.io/part-of": "flight-platform", "model": declared.name},
        ),
        spec=V1beta1InferenceServiceSpec(
            predictor=V1beta1PredictorSpec(
                containers=[_container(declared, image)],
                service_account_name=SERVICE_ACCOUNT,
                labels=POD_LABELS,
                volumes=[
                    k8s.V1Volume(
                        name="platform-home",
                        persistent_volume_claim=k8s.V1PersistentVolumeClaimVolumeSource(
                            claim_name=HOME_CLAIM
                        ),
                    )
                ],
                min_replicas=min_replicas,
                max_replicas=max_replicas,
                canary_traffic_percent=canary_traffic_percent,
            )
        ),
    )


def manifests(models_dir: Path = MODELS_DIR, **kwargs: Any) -> list[dict[str, Any]]:
    """An InferenceService per model declared with serving, as the plain dicts kubectl applies
    (camelCase keys, no nulls), in the order of the declarations."""
    from kserve import ApiClient

    api = ApiClient()
    return [api.sanitize_for_serialization(inference_service(d, **kwargs)) for d in served_models(models_dir)]


def main() -> int:
    import yaml

    sys.stdout.write(
        "# Generated by `python -m platform_assets.serving.k8s`; edit platform_assets/serving/k8s.py.\n"
        "# One InferenceService per model declared with serving (defs/models/<model>/defs.yaml).\n"
    )
    yaml.safe_dump_all(manifests(), sys.stdout, sort_keys=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
