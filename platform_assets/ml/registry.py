"""The model registry's aliases: candidate -> champion (previous kept for rollback), by model name.

MLflow client calls only: the same helpers serve every registered model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

CHAMPION = "champion"
PREVIOUS = "previous"
CANDIDATE = "candidate"


def alias_version(client: MlflowClient, alias: str, name: str) -> ModelVersion | None:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


@dataclass(frozen=True)
class Promotion:
    champion: str
    previous: str | None


def promote(client: MlflowClient, version: str, name: str) -> Promotion:
    """Make `version` the champion; the champion it replaces keeps alias `previous` for rollback."""
    current = alias_version(client, CHAMPION, name)
    previous = (
        current.version if current is not None and str(current.version) != str(version) else None
    )
    if previous is not None:
        client.set_registered_model_alias(name, PREVIOUS, previous)
    client.set_registered_model_alias(name, CHAMPION, str(version))
    kept = alias_version(client, PREVIOUS, name)
    return Promotion(
        champion=str(version), previous=str(kept.version) if kept is not None else None
    )


def rollback(client: MlflowClient, name: str) -> Promotion:
    """Give the champion alias back to the `previous` version; the demoted one is tagged, not deleted.

    The `previous` alias is removed so that a second rollback cannot bounce back to the bad version.
    """
    previous = alias_version(client, PREVIOUS, name)
    if previous is None:
        raise RuntimeError(f"{name} has no '{PREVIOUS}' version to roll back to")
    demoted = alias_version(client, CHAMPION, name)
    client.set_registered_model_alias(name, CHAMPION, previous.version)
    client.delete_registered_model_alias(name, PREVIOUS)
    if demoted is not None:
        client.set_model_version_tag(name, demoted.version, "rolled_back", "true")
    return Promotion(champion=str(previous.version), previous=None)


def version_with_recipe(
    client: MlflowClient,
    name: str,
    tags: Mapping[str, str],
    params: Mapping[str, Any],
    runtime: frozenset[str],
    required_tags: frozenset[str] = frozenset(),
) -> ModelVersion | None:
    """The newest complete version carrying `tags` whose run logged this recipe (no search), if any.

    Training is reproducible (same data, same recipe, same model; tested), so such a version is the
    model training again would give. `runtime` names parameters that do not change the model (e.g.
    the device); a version lacking any of `required_tags` (its lineage, written after registration)
    is incomplete and never returned.
    """
    wanted = {k: str(v) for k, v in params.items() if k not in runtime}
    versions = client.search_model_versions(f"name='{name}'")
    for version in sorted(versions, key=lambda v: int(v.version), reverse=True):
        if not version.run_id or any(version.tags.get(k) != v for k, v in tags.items()):
            continue
        if version.status != "READY" or not required_tags <= set(version.tags):
            continue
        logged = client.get_run(version.run_id).data.params
        if logged.get("search") != "True" and all(logged.get(k) == v for k, v in wanted.items()):
            return version
    return None
