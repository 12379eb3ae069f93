"""Kubernetes specs for steps: the GPU training pod and modest CPU pods for everything else.

The settings read them from environment variables (PLATFORM_GPU_*), so a Helm release configures
the node pool without code changes; the defaults fit a GPU node pool tainted
`nvidia.com/gpu:NoSchedule`.
"""

from __future__ import annotations

from typing import Any

import dagster as dg

from platform_assets.settings import GpuStepSettings, settings

__all__ = ["GpuStepSettings", "gpu_step_k8s_config", "k8s_executor", "k8s_executor_config"]

# Names of the Kubernetes secret/config map the Helm values create (deploy/helm/values.yaml).
PLATFORM_SECRET = "flight-platform-secrets"
PLATFORM_CONFIG_MAP = "flight-platform-config"


def gpu_step_k8s_config(gpu: GpuStepSettings | None = None) -> dict[str, Any]:
    """`dagster-k8s/config` for the training step: GPUs as limits (Kubernetes requires it)."""
    s = gpu or settings().gpu
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
        "max_concurrent": settings().k8s_max_concurrent_steps,
    }


def k8s_executor() -> dg.ExecutorDefinition:
    from dagster_k8s import k8s_job_executor

    return k8s_job_executor.configured(k8s_executor_config(), name="platform_k8s_executor")


def platform_executor() -> dg.ExecutorDefinition:
    """Each step in its own pod on k8s; on one machine, the steps of a run in the run's process.

    Locally every single-writer store is behind a one-slot pool, so steps would rarely overlap, and a
    process per step would pay the code location's import (seconds) once per step.
    """
    if settings().env == "k8s":
        return k8s_executor()
    return dg.in_process_executor
