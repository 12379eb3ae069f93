from pathlib import Path

import pytest

from platform_assets.lib.resources import FeastResource
from platform_assets.settings import reload


def test_one_feature_store_per_process_and_platform_home(
    feast_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FeastResource().store()
    assert FeastResource().store() is store
    assert FeastResource(repo_path=str(Path(FeastResource().repo_path) / ".")).store() is store

    monkeypatch.setenv("PLATFORM_HOME", str(tmp_path / "other_home"))
    reload()  # settings are read once per process
    other = FeastResource().store()
    assert other is not store
    assert other.config.online_store.path == str(tmp_path / "other_home" / "feast" / "online_store.db")
    assert store.config.online_store.path == str(feast_home / "feast" / "online_store.db")
