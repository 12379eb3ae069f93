"""Kubernetes specs for steps: the GPU training pod and modest CPU pods for everything else.

Read from environment variables so a Helm release (or any deployment) configures the node pool
without code changes; the defaults fit a GPU node pool tainted `nvidia.com/gpu:NoSchedule`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

# Names of the Kubernetes secret/config map the Helm values create (deploy/helm/values.yaml).
PLATFORM_SECRET = "flight-platform-secrets"
PLATFORM_CONFIG_MAP = "flight-platform-config"
DEFAULT_GPU_NODE_SELECTOR = {"nvidia.com/gpu.present": "true"}
DEFAULT_GPU_TOLERATIONS = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]


def _json_env(name: str, default: Any) -> Any:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{name} must be JSON, got {raw!r}: {exc}") from exc


@dataclass(frozen=True)
class GpuStepSettings:
    gpu_count: int = 1
    cpu_request: str = "4"
    memory_request: str = "16Gi"
    memory_limit: str = "32Gi"
    node_selector: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_GPU_NODE_SELECTOR))
    tolerations: list[dict[str, str]] = field(default_factory=lambda: list(DEFAULT_GPU_TOLERATIONS))

    @classmethod
    def from_env(cls) -> GpuStepSettings:
        return cls(
            gpu_count=int(os.environ.get("PLATFORM_GPU_COUNT", "1")),
            cpu_request=os.environ.get("PLATFORM_GPU_STEP_CPU", "4"),
            memory_request=os.environ.get("PLATFORM_GPU_STEP_MEMORY", "16Gi"),
            memory_limit=os.environ.get("PLATFORM_GPU_STEP_MEMORY_LIMIT", "32Gi"),
            node_selector=_json_env("PLATFORM_GPU_NODE_SELECTOR", DEFAULT_GPU_NODE_SELECTOR),
            tolerations=_json_env("PLATFORM_GPU_TOLERATIONS", DEFAULT_GPU_TOLERATIONS),
        )


def gpu_step_k8s_config(settings: GpuStepSettings | None = None) -> dict[str, Any]:
    """`dagster-k8s/config` for the training step: GPUs as limits (Kubernetes requires it)."""
    s = settings or GpuStepSettings.from_env()
    return {
        "container_config": {
            "resources": {
                "requests": {"cpu": s.cpu_request, "memory": s.memory_request},
                "limits": {"memory": s.memory_limit, "nvidia.com/gpu": str(s.gpu_count)},
            },
        },
        "pod_spec_config": {"node_selector": s.node_selector, "tolerations": s.tolerations},
    }


CPU_STEP_K8S_CONFIG: dict[str, Any] = {
    "container_config": {
        "resources": {
            "requests": {"cpu": "500m", "memory": "1Gi"},
            "limits": {"cpu": "2", "memory": "4Gi"},
        }
    }
}


def training_op_tags() -> dict[str, Any]:
    return {"dagster-k8s/config": gpu_step_k8s_config()}


def k8s_executor_config() -> dict[str, Any]:
    return {
        "env_secrets": [PLATFORM_SECRET],
        "env_config_maps": [PLATFORM_CONFIG_MAP],
        "step_k8s_config": CPU_STEP_K8S_CONFIG,
        "max_concurrent": int(os.environ.get("PLATFORM_K8S_MAX_CONCURRENT_STEPS", "8")),
    }


def k8s_executor() -> dg.ExecutorDefinition:
    from dagster_k8s import k8s_job_executor

    return k8s_job_executor.configured(k8s_executor_config(), name="platform_k8s_executor")
