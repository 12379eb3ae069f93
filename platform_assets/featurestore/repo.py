"""Loading feature_repo/ the way `feast apply` does, and applying it only when it changed."""

from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from feast import FeatureStore
    from feast.repo_contents import RepoContents


@dataclass(frozen=True)
class ApplyOutcome:
    changes: list[str]
    contents: RepoContents

    @property
    def changed(self) -> bool:
        return bool(self.changes)


def load_repo_contents(repo_path: Path, project: str) -> RepoContents:
    """Execute the definition files afresh, under the module names the feast CLI gives them.

    The files import each other by bare module name (`from entities import origin`) and read
    PLATFORM_HOME when executed, so no copy from an earlier load (of this or another feature
    repo) may be reused, nor left behind to shadow the next load.
    """
    from feast import Project
    from feast.repo_operations import get_repo_files, parse_repo

    repo_path = repo_path.resolve()
    names = [p.stem for p in get_repo_files(repo_path)]
    _forget_feature_repo_modules(names)
    sys.path.insert(0, str(repo_path))
    try:
        # parse_repo names modules by their path relative to the working directory.
        with contextlib.chdir(repo_path):
            contents = parse_repo(repo_path)
    finally:
        sys.path.remove(str(repo_path))
        _forget_feature_repo_modules(names)
    if not contents.projects:
        contents.projects.append(Project(name=project))
    return contents


def _forget_feature_repo_modules(names: list[str]) -> None:
    for name in names:
        module = sys.modules.get(name)
        folder = Path(getattr(module, "__file__", None) or "/nonexistent").parent
        if module is not None and any(folder.glob("feature_store*.yaml")):
            del sys.modules[name]


def apply_repo(store: FeatureStore, repo_path: Path) -> ApplyOutcome:
    """Apply feature_repo/ to the registry; when nothing differs, the registry is not written."""
    from feast.diff.property_diff import TransitionType
    from feast.repo_operations import apply_total_with_repo_instance

    contents = load_repo_contents(repo_path, store.project)
    store.refresh_registry()
    _keep_materialization_history(store, contents)
    registry_diff, infra_diff, _ = store.plan(contents)
    changes = [
        f"{d.transition_type.name.lower()} {d.feast_object_type.value} {d.name}"
        for d in registry_diff.feast_object_diffs
        if d.transition_type != TransitionType.UNCHANGED
    ]
    changes += [
        f"{d.transition_type.name.lower()} {d.infra_object_type} {d.name}"
        for d in infra_diff.infra_object_diffs
        if d.transition_type != TransitionType.UNCHANGED
    ]
    if changes:
        apply_total_with_repo_instance(
            store, store.project, store.registry, contents, skip_source_validation=False
        )
        store.refresh_registry()
    return ApplyOutcome(changes=changes, contents=contents)


def _keep_materialization_history(store: FeatureStore, contents: RepoContents) -> None:
    # Feast counts a view's materialization intervals as part of its definition, so without
    # this every apply after a materialization would rewrite every view it had materialized.
    current = {view.name: view for view in store.list_feature_views(allow_cache=True)}
    for view in contents.feature_views:
        if view.name in current:
            view.materialization_intervals = list(current[view.name].materialization_intervals)
