"""Every YAML under deploy/ parses and matches the Kubernetes (or Dagster) schema it is written for."""

from __future__ import annotations

import configparser
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
# No public API validates an instance config (dagster.yaml) against Dagster's schema.
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
    ("apps/v1", "Deployment"): "V1Deployment",
    ("v1", "Service"): "V1Service",
    ("networking.k8s.io/v1", "Ingress"): "V1Ingress",
    ("networking.k8s.io/v1", "NetworkPolicy"): "V1NetworkPolicy",
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
    from platform_assets.lib.k8s import GpuStepSettings

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


# --- security: nothing reachable without authentication, no credential written in the repo ---

SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|CREDENTIAL|API_KEY|CONNECTION_STRING|BACKEND_STORE_URI", re.IGNORECASE)
SECRET_ARG = re.compile(r"^--[\w-]*(secret|password)[\w-]*=", re.IGNORECASE)
WEBSERVER = "dagster-dagster-webserver"  # the chart's service names for release `dagster`
READ_ONLY_WEBSERVER = "dagster-dagster-webserver-read-only"


def values() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "helm" / "values.yaml").read_text())


def objects(kind: str) -> list[dict[str, Any]]:
    return [doc for name, doc in manifests() if doc["kind"] == kind and not name.startswith("secret.example")]


def example_secrets() -> dict[str, dict[str, str]]:
    docs = yaml.safe_load_all((DEPLOY / "k8s" / "secret.example.yaml").read_text())
    return {d["metadata"]["name"]: d["stringData"] for d in docs}


def containers_behind(service_name: str) -> list[dict[str, Any]]:
    [service] = [s for s in objects("Service") if s["metadata"]["name"] == service_name]
    selector = service["spec"]["selector"].items()
    pods = [d["spec"]["template"] for d in objects("Deployment")]
    return [c for p in pods if selector <= p["metadata"]["labels"].items() for c in p["spec"]["containers"]]


def authenticates(container: dict[str, Any]) -> bool:
    args = container.get("args", [])
    if "oauth2-proxy" in container["image"]:
        return any(a.startswith("--allowed-group=") for a in args)
    return container["name"] == "mlflow" and args[:2] == ["--app-name", "basic-auth"]


def proxy_upstreams() -> dict[str, str]:
    """Proxy deployment -> host of its upstream."""
    found = {}
    for deployment in objects("Deployment"):
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            for arg in container.get("args", []):
                if arg.startswith("--upstream="):
                    found[deployment["metadata"]["name"]] = arg.split("//")[1].split(".")[0]
    return found


def inline_secrets(doc: Any, where: str = "") -> list[str]:
    """Places in a manifest or values file where a credential is written instead of referenced."""
    found = []
    if isinstance(doc, dict):
        if doc.get("kind") == "Secret" and (doc.get("data") or doc.get("stringData")):
            found.append(f"{where}: Secret with data")
        if "name" in doc and "value" in doc and SECRET_NAME.search(str(doc["name"])):
            found.append(f"{where}: env {doc['name']} has an inline value")
        for key, value in doc.items():
            named_secret = SECRET_NAME.search(str(key)) and not re.search(r"secret(name)?$", str(key), re.IGNORECASE)
            if named_secret and isinstance(value, (str, int)) and str(value):
                found.append(f"{where}.{key}: inline value")
            found += inline_secrets(value, f"{where}.{key}")
    elif isinstance(doc, list):
        for i, item in enumerate(doc):
            if isinstance(item, str) and SECRET_ARG.match(item):
                found.append(f"{where}[{i}]: credential in an argument")
            found += inline_secrets(item, f"{where}[{i}]")
    return found


def test_the_inline_secret_detector_finds_what_it_must() -> None:
    planted = {
        "postgresql": {"postgresqlPassword": "hunter2"},
        "env": [{"name": "MLFLOW_TRACKING_PASSWORD", "value": "x"}],
        "args": ["--cookie-secret=abc"],
        "secret": {"kind": "Secret", "stringData": {"a": "b"}},
    }
    assert len(inline_secrets(planted)) == 4
    allowed = {"global": {"postgresqlSecretName": "s"}, "env": [{"name": "A_SECRET", "valueFrom": {"secretKeyRef": {}}}]}
    assert inline_secrets(allowed) == []


def test_no_secret_is_inline_in_values_manifests_or_the_instance_config() -> None:
    found = inline_secrets(values(), "values.yaml")
    found += inline_secrets(yaml.safe_load((DEPLOY / "dagster.yaml").read_text()), "dagster.yaml")
    for name, doc in manifests():
        if not name.startswith("secret.example"):
            found += inline_secrets(doc, name)
    assert found == []


def test_every_secret_reference_names_a_key_of_the_secret_templates_which_hold_only_placeholders() -> None:
    templates = example_secrets()
    refs = re.findall(r"secretKeyRef: \{name: ([\w-]+), key: ([\w-]+)\}", "".join(
        p.read_text() for p in (DEPLOY / "k8s").glob("*.yaml")))
    assert refs and all(key in templates[name] for name, key in refs)
    v = values()
    named = [v["global"]["postgresqlSecretName"], v["mlflow"]["auth"]["adminSecret"], v["modelServer"]["auth"]["credentialsSecret"]]
    assert set(named) - {"dagster-postgresql-secret"} <= set(templates)
    for secret in templates.values():
        for key, value in secret.items():
            if SECRET_NAME.search(key) or key.endswith(("password", "secret", "key", "uri")):
                assert "change-me" in value, (key, "template values are placeholders")


def test_no_service_is_exposed_outside_the_cluster_and_the_chart_ingress_is_off() -> None:
    assert {s["spec"].get("type", "ClusterIP") for s in objects("Service")} == {"ClusterIP"}
    v = values()
    assert v["dagsterWebserver"]["service"]["type"] == "ClusterIP"
    assert v["ingress"]["enabled"] is False


def test_every_ingress_route_ends_at_a_backend_that_authenticates_over_tls() -> None:
    routes = 0
    for ingress in objects("Ingress"):
        tls_hosts = {h for t in ingress["spec"]["tls"] for h in t["hosts"]}
        for rule in ingress["spec"]["rules"]:
            assert rule["host"] in tls_hosts
            for path in rule["http"]["paths"]:
                containers = containers_behind(path["backend"]["service"]["name"])
                assert containers and all(authenticates(c) for c in containers), rule["host"]
                routes += 1
    assert routes == 4


def test_webservers_and_model_server_are_reached_only_through_their_proxies() -> None:
    v = values()
    model_service = v["modelServer"]["service"]["name"]
    upstreams = proxy_upstreams()
    assert upstreams == {
        "dagster-auth": WEBSERVER,
        "dagster-viewer-auth": READ_ONLY_WEBSERVER,
        v["modelServer"]["auth"]["proxy"]: model_service,
    }
    assert v["dagsterWebserver"]["enableReadOnly"] is True
    policies = {p["metadata"]["name"]: p["spec"] for p in objects("NetworkPolicy")}
    webserver = policies["dagster-webserver-behind-auth"]
    assert webserver["podSelector"]["matchLabels"] == {"component": "dagster-webserver"}
    [source] = webserver["ingress"][0]["from"]
    assert set(source["podSelector"]["matchExpressions"][0]["values"]) == {"dagster-auth", "dagster-viewer-auth"}
    model = policies["model-server-behind-auth"]
    # deploy/kserve holds an InferenceService per served model; the proxy fronts the one the values name
    [isvc] = [d for d in yaml.safe_load_all((DEPLOY / "kserve" / "inferenceservice.yaml").read_text())
              if d["metadata"]["name"] == v["modelServer"]["inferenceService"]]
    assert isvc["metadata"]["name"] == model_service
    assert model["podSelector"]["matchLabels"].items() <= isvc["spec"]["predictor"]["labels"].items()
    [sources] = [rule["from"] for rule in model["ingress"]]
    assert {"podSelector": {"matchLabels": {"app.kubernetes.io/instance": "model-server-auth"}}} in sources
    [proxy] = containers_behind(v["modelServer"]["auth"]["proxy"])
    assert [f"--allowed-group={g}" for g in v["modelServer"]["auth"]["allowedGroups"]] == [
        a for a in proxy["args"] if a.startswith("--allowed-group=")]
    [viewer] = containers_behind("dagster-viewer-auth")
    [editor] = containers_behind("dagster-auth")
    assert "--allowed-group=platform-viewers" in viewer["args"] and "--allowed-group=platform-viewers" not in editor["args"]


def test_mlflow_runs_the_basic_auth_app_with_no_default_password_and_viewers_read_only() -> None:
    [config] = [c for c in objects("ConfigMap") if c["metadata"]["name"] == "mlflow-auth-config"]
    ini = configparser.ConfigParser()
    ini.read_string(config["data"]["basic_auth.ini"])
    assert "admin_password" not in ini["mlflow"] and "admin_username" not in ini["mlflow"]
    assert ini["mlflow"]["default_permission"] == values()["mlflow"]["auth"]["defaultPermission"] == "READ"
    [container] = containers_behind("mlflow")
    env = {e["name"]: e for e in container["env"]}
    for name in ("MLFLOW_AUTH_ADMIN_USERNAME", "MLFLOW_AUTH_ADMIN_PASSWORD", "MLFLOW_FLASK_SERVER_SECRET_KEY"):
        assert env[name]["valueFrom"]["secretKeyRef"]["name"] == values()["mlflow"]["auth"]["adminSecret"]
    assert env["MLFLOW_AUTH_CONFIG_PATH"]["value"].startswith(
        next(m["mountPath"] for m in container["volumeMounts"] if m["name"] == "auth-config"))


def test_mlflow_s_auth_app_reads_the_admin_password_from_the_environment_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The installed MLflow honours the variables the manifest sets, and has no password fallback."""
    import importlib.util

    import mlflow

    # the auth package's __init__ needs mlflow[auth] (Flask-WTF); its config module does not
    module = Path(mlflow.__file__).parent / "server" / "auth" / "config.py"
    spec = importlib.util.spec_from_file_location("mlflow_auth_config", module)
    auth_config = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(auth_config)
    [config] = [c for c in objects("ConfigMap") if c["metadata"]["name"] == "mlflow-auth-config"]
    path = tmp_path / "basic_auth.ini"
    path.write_text(config["data"]["basic_auth.ini"])
    monkeypatch.setenv("MLFLOW_AUTH_CONFIG_PATH", str(path))
    monkeypatch.delenv("MLFLOW_AUTH_ADMIN_USERNAME", raising=False)
    monkeypatch.delenv("MLFLOW_AUTH_ADMIN_PASSWORD", raising=False)
    assert auth_config.read_auth_config().admin_password is None
    monkeypatch.setenv("MLFLOW_AUTH_ADMIN_USERNAME", "ops")
    monkeypatch.setenv("MLFLOW_AUTH_ADMIN_PASSWORD", "from-the-secret")
    got = auth_config.read_auth_config()
    assert (got.admin_username, got.admin_password, got.default_permission) == ("ops", "from-the-secret", "READ")


def parse_quantity(text: str) -> int:
    units = {"k": 1024, "m": 1024**2, "g": 1024**3}
    return int(text[:-1]) * units[text[-1].lower()] if text[-1].lower() in units else int(text)


def test_model_server_limits_are_configured_and_the_ingress_enforces_the_body_size() -> None:
    from platform_assets.serving.instances import MAX_INSTANCES

    limits = values()["modelServer"]["limits"]
    # Every limit the values state is one a component enforces: nothing decorative.
    assert set(limits) == {"maxInstancesPerRequest", "maxBodyBytes"}
    assert limits["maxInstancesPerRequest"] == MAX_INSTANCES
    assert limits["maxBodyBytes"] == 1024 * 1024
    [ingress] = [i for i in objects("Ingress") if i["metadata"]["name"] == "model-server"]
    body = ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"]
    assert parse_quantity(body) == limits["maxBodyBytes"]
