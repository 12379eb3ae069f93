"""The Kubernetes Jobs dagster-k8s builds for our steps, using its own job construction code.

K8sStepHandler.launch_step merges the executor's container context with the step's
`dagster-k8s/config` tag and calls `construct_dagster_k8s_job`; these tests do the same merge with
the library's classes and stop where the Job would be sent to a cluster.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from dagster_k8s import K8sRunLauncher
from dagster_k8s.container_context import K8sContainerContext
from dagster_k8s.job import (
    UserDefinedDagsterK8sConfig,
    construct_dagster_k8s_job,
    get_user_defined_k8s_config,
)

from platform_assets.lib import k8s
from platform_assets.lib.k8s import GpuStepSettings, gpu_step_k8s_config, k8s_executor_config
from platform_assets.lib.models.keys import ModelKeys
from platform_assets.settings import reload

from .kube_models import as_model, to_dict

IMAGE = "registry.example.com/flight-platform:0.1.0"
DELAY = ModelKeys("delay")
# Step keys of the delay model's training and scoring steps (delay__model, delay__predictions).
TRAINING_STEP = DELAY.op("model")
SCORING_STEP = DELAY.op("predictions")
DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
FAKE_KUBECONFIG = """
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:6443"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: ctx, context: {cluster: c, user: u}}]
current-context: ctx
"""


@pytest.fixture(scope="module")
def run_launcher(tmp_path_factory: pytest.TempPathFactory) -> K8sRunLauncher:
    """The run launcher deploy/dagster.yaml configures; the kubeconfig is read, never contacted."""
    kubeconfig = tmp_path_factory.mktemp("kube") / "config"
    kubeconfig.write_text(FAKE_KUBECONFIG)
    config = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())["run_launcher"]["config"]
    config = {**config, "job_namespace": "flight-platform", "load_incluster_config": False}
    return K8sRunLauncher(
        **config,
        kubeconfig_file=str(kubeconfig),
        instance_config_map="dagster-instance",
        dagster_home="/opt/dagster/dagster_home",
    )


def build_step_job(run_launcher: K8sRunLauncher, step_key: str, step_tags: dict[str, Any]) -> dict[str, Any]:
    exc = k8s_executor_config()
    launcher_context = K8sContainerContext(
        env_config_maps=run_launcher.env_config_maps,
        env_secrets=run_launcher.env_secrets,
        namespace=run_launcher.job_namespace,
    )
    executor_context = launcher_context.merge(K8sContainerContext(
        env_config_maps=exc["env_config_maps"],
        env_secrets=exc["env_secrets"],
        namespace="flight-platform",
        run_k8s_config=UserDefinedDagsterK8sConfig.from_dict(exc["step_k8s_config"]),
    ))
    # Step tags reach the step handler as strings, as Dagster stores op tags.
    as_strings = {k: v if isinstance(v, str) else json.dumps(v) for k, v in step_tags.items()}
    context = executor_context.merge(K8sContainerContext(run_k8s_config=get_user_defined_k8s_config(as_strings)))
    job = construct_dagster_k8s_job(
        job_config=context.get_k8s_job_config(IMAGE, run_launcher),
        args=["dagster", "api", "execute_step"],
        job_name=f"dagster-step-{step_key}",
        pod_name=f"dagster-step-{step_key}",
        component="step_worker",
        user_defined_k8s_config=context.run_k8s_config,
        labels={"dagster/op": step_key},
        env_vars=[{"name": "DAGSTER_RUN_STEP_KEY", "value": step_key}],
    )
    return to_dict(job)


def container(job: dict[str, Any]) -> dict[str, Any]:
    [c] = job["spec"]["template"]["spec"]["containers"]
    return c


def training_tags() -> dict[str, Any]:
    from platform_assets.definitions import defs

    delay_model = defs.resolve_assets_def(DELAY.model)
    return dict(delay_model.node_def.tags)


def test_training_step_pod_asks_for_a_gpu_on_the_gpu_pool(run_launcher: K8sRunLauncher) -> None:
    tags = {"dagster-k8s/config": gpu_step_k8s_config(GpuStepSettings())}
    job = build_step_job(run_launcher, TRAINING_STEP, tags)
    as_model(job, "V1Job")
    c = container(job)
    assert c["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert c["resources"]["requests"] == {"cpu": "4", "memory": "16Gi"}
    pod = job["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert c["image"] == IMAGE
    assert {"name": "DAGSTER_RUN_STEP_KEY", "value": TRAINING_STEP} in c["env"]
    assert {"secretRef": {"name": "flight-platform-secrets"}} in c["envFrom"]
    assert {"configMapRef": {"name": "flight-platform-config"}} in c["envFrom"]


def test_the_training_asset_definition_carries_the_gpu_pod_spec(run_launcher: K8sRunLauncher) -> None:
    job = build_step_job(run_launcher, TRAINING_STEP, training_tags())
    as_model(job, "V1Job")
    assert "nvidia.com/gpu" in container(job)["resources"]["limits"]
    assert job["spec"]["template"]["spec"]["tolerations"][0]["key"] == "nvidia.com/gpu"
    cpu_step = build_step_job(run_launcher, SCORING_STEP, {})
    assert "nvidia.com/gpu" not in container(cpu_step)["resources"]["limits"]


def test_gpu_count_node_selector_and_tolerations_come_from_config(
    run_launcher: K8sRunLauncher, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLATFORM_GPU_COUNT", "4")
    monkeypatch.setenv("PLATFORM_GPU_NODE_SELECTOR", '{"pool": "a100"}')
    monkeypatch.setenv("PLATFORM_GPU_TOLERATIONS", '[{"key": "gpu-only", "operator": "Equal", "value": "yes", "effect": "NoSchedule"}]')
    reload()
    job = build_step_job(run_launcher, TRAINING_STEP, k8s.training_op_tags())
    as_model(job, "V1Job")
    assert container(job)["resources"]["limits"]["nvidia.com/gpu"] == "4"
    pod = job["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"pool": "a100"}
    assert pod["tolerations"][0]["key"] == "gpu-only"


def test_bad_gpu_selector_config_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLATFORM_GPU_NODE_SELECTOR", "pool=a100")
    with pytest.raises(ValueError, match="PLATFORM_GPU_NODE_SELECTOR must be JSON"):
        GpuStepSettings.from_env()


def test_cpu_step_gets_modest_cpu_only_resources(run_launcher: K8sRunLauncher) -> None:
    job = build_step_job(run_launcher, "flights", {})
    as_model(job, "V1Job")
    c = container(job)
    assert c["resources"] == {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "4Gi"}}
    assert "nodeSelector" not in job["spec"]["template"]["spec"]
    assert {"secretRef": {"name": "flight-platform-secrets"}} in c["envFrom"]


def test_k8s_mode_uses_the_k8s_job_executor(monkeypatch: pytest.MonkeyPatch) -> None:
    from platform_assets.lib.k8s import platform_executor

    monkeypatch.setenv("PLATFORM_ENV", "k8s")
    reload()
    assert platform_executor().name == "platform_k8s_executor"
    monkeypatch.setenv("PLATFORM_ENV", "local")
    reload()
    assert platform_executor().name == "in_process"


def test_search_workers_are_parallel_gpu_pods(run_launcher: K8sRunLauncher, monkeypatch: pytest.MonkeyPatch) -> None:
    """delay_hyperparameter_search fans its trials out: every `delay__search_worker[worker_k]` step is its own pod,
    with the training pod's GPU spec, and the k8s executor runs up to max_concurrent of them at once
    against one Optuna study (PLATFORM_OPTUNA_STORAGE, shared by every pod)."""
    from platform_assets.definitions import defs
    from platform_assets.lib.models.search_job import study_storage
    from platform_assets.paths import PlatformPaths

    search = defs.get_job_def(DELAY.search_job)
    assert search.name == "delay_hyperparameter_search"
    worker = search.graph.node_named(DELAY.op("search_worker"))
    assert worker.definition.input_defs[0].dagster_type  # a mapped input: one step per DynamicOutput
    assert search.graph.node_named(DELAY.op("plan_search")).definition.output_defs[0].is_dynamic
    tags = dict(worker.definition.tags)
    pods = [build_step_job(run_launcher, f"{worker.name}[worker_{k}]", tags) for k in range(3)]
    for k, job in enumerate(pods):
        as_model(job, "V1Job")
        assert container(job)["resources"]["limits"]["nvidia.com/gpu"] == "1"
        assert {"name": "DAGSTER_RUN_STEP_KEY", "value": f"delay__search_worker[worker_{k}]"} in container(job)["env"]
    assert len({job["metadata"]["name"] for job in pods}) == 3
    assert k8s_executor_config()["max_concurrent"] >= 3
    monkeypatch.setenv("PLATFORM_OPTUNA_STORAGE", "postgresql://optuna@postgres:5432/optuna")
    reload()
    assert study_storage(PlatformPaths(Path("/nowhere"))) == "postgresql://optuna@postgres:5432/optuna"
