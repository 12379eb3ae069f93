"""One source per setting: the environment is read in core/settings.py and paths derive from it."""

import importlib
import os
import sys
from pathlib import Path

import pytest

from platform_assets.paths import PlatformPaths
from platform_assets.settings import FEATURE_REPO_DIR, Settings, reload, settings


def test_settings_are_read_once_per_process(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PLATFORM_HOME", str(tmp_path / "a"))
    first = reload()
    monkeypatch.setenv("PLATFORM_HOME", str(tmp_path / "b"))
    assert settings() is first and settings().home == tmp_path / "a"
    assert reload().home == tmp_path / "b"


def test_defaults_and_types(tmp_path: Path) -> None:
    s = Settings.from_env({"PLATFORM_HOME": str(tmp_path), "MLFLOW_TRACKING_URI": "http://mlflow:5000"})
    assert (s.env, s.home, s.raw_data_dir, s.features_root) == ("local", tmp_path, None, None)
    assert s.mlflow_tracking_uri == "http://mlflow:5000" and s.feature_store_yaml == "feature_store.yaml"
    k8s = Settings.from_env({"PLATFORM_ENV": "K8S", "PLATFORM_GPU_COUNT": "2"})
    assert (k8s.env, k8s.dbt_target, k8s.gpu.gpu_count) == ("k8s", "k8s", 2)
    assert k8s.feature_store_yaml == "feature_store.redis.yaml"


def test_features_root_moves_the_feature_tables_for_dbt_and_feast(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    shared = tmp_path / "shared-volume" / "features"
    monkeypatch.setenv("PLATFORM_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("FEATURES_ROOT", str(shared))
    monkeypatch.setenv("PLATFORM_HOME", str(tmp_path / "home"))
    paths = PlatformPaths.from_settings(reload())
    assert paths.feature_table("feat_plane") == shared / "feat_plane.parquet"
    paths.export_env()
    assert os.environ["FEATURES_ROOT"] == str(shared)
    # The Feast repository's sources read the same layout (they used to ignore FEATURES_ROOT).
    monkeypatch.syspath_prepend(str(FEATURE_REPO_DIR))
    sys.modules.pop("data_sources", None)
    try:
        data_sources = importlib.import_module("data_sources")
        assert data_sources.plane_source.path == str(shared / "feat_plane.parquet")
    finally:
        sys.modules.pop("data_sources", None)
    monkeypatch.delenv("FEATURES_ROOT")
    default = PlatformPaths.from_settings(reload())
    default.export_env()
    assert "FEATURES_ROOT" not in os.environ
    assert default.feature_table("feat_plane") == tmp_path / "home" / "warehouse" / "features" / "feat_plane.parquet"
