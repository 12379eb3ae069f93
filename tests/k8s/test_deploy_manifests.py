"""Every YAML under deploy/ parses and matches the Kubernetes (or Dagster) schema it is written for."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from dagster._config import validate_config
from dagster._core.instance.config import dagster_instance_config_schema

from .kube_models import as_model

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
KIND_MODELS = {
    ("v1", "ConfigMap"): "V1ConfigMap",
    ("v1", "Secret"): "V1Secret",
    ("v1", "PersistentVolumeClaim"): "V1PersistentVolumeClaim",
    ("v1", "ServiceAccount"): "V1ServiceAccount",
    ("rbac.authorization.k8s.io/v1", "Role"): "V1Role",
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): "V1RoleBinding",
}


def manifests() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        for i, doc in enumerate(yaml.safe_load_all(path.read_text())):
            found.append((f"{path.name}#{i}", doc))
    return found


def test_every_yaml_under_deploy_parses() -> None:
    files = sorted(DEPLOY.rglob("*.yaml"))
    assert {p.name for p in files} >= {"dagster.yaml", "values.yaml", "configmap.yaml", "pvc.yaml"}
    for path in files:
        for doc in yaml.safe_load_all(path.read_text()):
            assert isinstance(doc, dict), path


@pytest.mark.parametrize("name, doc", manifests(), ids=[n for n, _ in manifests()])
def test_kubernetes_manifests_match_the_api_models(name: str, doc: dict[str, Any]) -> None:
    model = KIND_MODELS[(doc["apiVersion"], doc["kind"])]
    obj = as_model(doc, model)
    assert obj.metadata.namespace == "flight-platform"


def test_configmap_holds_valid_gpu_step_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from platform_assets.core.k8s import GpuStepSettings

    data = yaml.safe_load((DEPLOY / "k8s" / "configmap.yaml").read_text())["data"]
    for key, value in data.items():
        monkeypatch.setenv(key, value)
    settings = GpuStepSettings.from_env()
    assert settings.gpu_count == 1
    as_model(settings.tolerations, "list[V1Toleration]")
    assert settings.node_selector == {"cloud.google.com/gke-accelerator": "nvidia-l4"}


def test_helm_values_kubernetes_fragments_match_the_api_models() -> None:
    values = yaml.safe_load((DEPLOY / "helm" / "values.yaml").read_text())
    [deployment] = values["dagster-user-deployments"]["deployments"]
    as_model(deployment["resources"], "V1ResourceRequirements")
    as_model(deployment["volumes"], "list[V1Volume]")
    as_model(deployment["volumeMounts"], "list[V1VolumeMount]")
    as_model(deployment["envConfigMaps"], "list[V1ConfigMapEnvSource]")
    as_model(deployment["envSecrets"], "list[V1SecretEnvSource]")
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    as_model(launcher["runK8sConfig"]["containerConfig"]["resources"], "V1ResourceRequirements")
    as_model(launcher["volumes"], "list[V1Volume]")
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert deployment["dagsterApiGrpcArgs"] == ["--module-name", "platform_assets.definitions"]


def test_helm_values_and_dagster_yaml_agree_on_pools_and_limits() -> None:
    values = yaml.safe_load((DEPLOY / "helm" / "values.yaml").read_text())
    instance = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())
    assert values["concurrency"]["pools"]["defaultLimit"] == instance["concurrency"]["pools"]["default_limit"] == 1
    assert values["dagsterDaemon"]["runRetries"]["maxRetries"] == instance["run_retries"]["max_retries"]
    assert values["dagsterDaemon"]["runMonitoring"]["enabled"] and instance["run_monitoring"]["enabled"]


def test_dagster_yaml_is_a_valid_instance_config_with_secrets_from_env() -> None:
    instance = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())
    result = validate_config(dagster_instance_config_schema(), instance)
    assert result.success, result.errors
    db = instance["storage"]["postgres"]["postgres_db"]
    assert db["password"] == {"env": "DAGSTER_PG_PASSWORD"}
    assert "flight-platform-secrets" in instance["run_launcher"]["config"]["env_secrets"]


def test_dockerfile_prepares_the_dbt_manifest_and_runs_the_code_location() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    # the same parse as `make manifest`, on the k8s profile target the pods use
    assert "cd dbt_project && WAREHOUSE_DUCKDB_PATH=/tmp/parse.duckdb DBT_TARGET=k8s" in text
    assert "dbt parse --quiet --profiles-dir ." in text
    assert "-c constraints.txt" in text
    assert '"platform_assets.definitions"' in text
