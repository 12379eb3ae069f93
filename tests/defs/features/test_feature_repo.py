import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml
from feast import ValueType

from platform_assets.lib.resources import FeastResource, PlatformPathsResource
from platform_assets.paths import PlatformPaths
from platform_assets.settings import FEATURE_REPO_DIR
from tests.models.conftest import MODEL

from .helpers import materialize, metadata, sha256

VIEWS = ["carrier_daily", "origin_weather", "plane_facts", "route_daily"]


def test_feast_cli_applies_the_repo_and_dagster_then_sees_no_change(feast_home: Path, feast_resources: dict) -> None:
    # `feast apply` then `feast feature-views list`, through the entry point the `feast` script
    # calls, in one interpreter: importing feast costs seconds.
    script = (
        "from feast.cli.cli import cli\n"
        "cli(['apply'], standalone_mode=False)\n"
        "print('---')\n"
        "cli(['feature-views', 'list'], standalone_mode=False)\n"
    )
    env = {**os.environ, "PLATFORM_HOME": str(feast_home)}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=FEATURE_REPO_DIR, env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    applied, listed = done.stdout.split("---")
    assert "Created feature service delay_model_v1" in applied
    assert sorted(line.split()[0] for line in listed.strip().splitlines()[1:]) == VIEWS
    assert (PlatformPaths(feast_home).feast_dir / "registry.db").is_file()

    # The CLI and the asset load the same definitions for the same PLATFORM_HOME.
    assert metadata(materialize("feast_registry", feast_resources))["changed"] is False


def test_reapplying_unchanged_definitions_changes_nothing(feast_home: Path, feast_resources: dict) -> None:
    registry = PlatformPaths(feast_home).feast_dir / "registry.db"
    first = metadata(materialize("feast_registry", feast_resources))
    assert first["changed"] is True
    assert "create feature view origin_weather" in first["changes"]
    digest, mtime = sha256(registry), registry.stat().st_mtime_ns

    second = metadata(materialize("feast_registry", feast_resources))
    assert second["changed"] is False
    assert second["changes"] == ["no change: the registry already holds these definitions"]
    assert second["registry_last_updated"] == first["registry_last_updated"]
    assert (sha256(registry), registry.stat().st_mtime_ns) == (digest, mtime)


def test_reapplying_after_a_materialization_changes_nothing(feast_home: Path, feast_resources: dict) -> None:
    registry = PlatformPaths(feast_home).feast_dir / "registry.db"
    materialize("feast_registry", feast_resources)
    materialize("online_features", feast_resources, "2013-01")
    digest = sha256(registry)

    again = metadata(materialize("feast_registry", feast_resources))
    assert again["changed"] is False, again["changes"]
    assert sha256(registry) == digest
    # The materialization history survives, so the online store's month guard still works.
    view = feast_resources["feast"].store().get_feature_view("carrier_daily")
    assert view.most_recent_end_time == datetime(2013, 2, 1, tzinfo=UTC)


def test_an_edited_definition_is_applied(feast_home: Path, tmp_path: Path) -> None:
    repo = tmp_path / "feature_repo"
    shutil.copytree(FEATURE_REPO_DIR, repo, ignore=shutil.ignore_patterns("__pycache__"))
    resources = {"platform": PlatformPathsResource(home=str(feast_home)), "feast": FeastResource(repo_path=str(repo))}
    materialize("feast_registry", resources)
    views = repo / "feature_views.py"
    views.write_text(views.read_text().replace("ttl=timedelta(hours=3)", "ttl=timedelta(hours=4)"))

    changed = metadata(materialize("feast_registry", resources))
    assert changed["changed"] is True
    assert changed["changes"] == ["update feature view origin_weather"]
    store = resources["feast"].store()
    assert store.get_feature_view("origin_weather").ttl == timedelta(hours=4)


def test_feature_service_is_versioned_and_documented(feast_resources: dict) -> None:
    materialize("feast_registry", feast_resources)
    store = feast_resources["feast"].store()
    service = store.get_feature_service(MODEL.feature_service)
    assert service.name == "delay_model_v1"
    assert service.owner and service.description and service.tags["version"] == "1"
    assert sorted(p.name for p in service.feature_view_projections) == VIEWS
    weather = next(p for p in service.feature_view_projections if p.name == "origin_weather")
    assert "wind_gust" not in [f.name for f in weather.features]
    entities = {e.name: e for e in store.list_entities()}
    assert {name: entities[name].value_type for name in ("origin", "carrier", "route", "plane")} == {
        name: ValueType.STRING for name in ("origin", "carrier", "route", "plane")
    }
    ttl = {view.name: view.ttl for view in store.list_feature_views()}
    assert ttl["origin_weather"] <= timedelta(hours=6)
    assert ttl["carrier_daily"] == ttl["route_daily"] == timedelta(days=2)
    assert ttl["plane_facts"] >= timedelta(days=365)


def test_redis_configuration_differs_only_in_the_online_store(monkeypatch) -> None:
    monkeypatch.setenv("PLATFORM_HOME", "/srv/platform")
    monkeypatch.setenv("FEAST_REDIS_CONNECTION_STRING", "redis-master:6379")

    def load(name: str) -> dict:
        return yaml.safe_load(os.path.expandvars((FEATURE_REPO_DIR / name).read_text()))

    sqlite, redis = load("feature_store.yaml"), load("feature_store.redis.yaml")
    assert sqlite["online_store"] == {"type": "sqlite", "path": "/srv/platform/feast/online_store.db"}
    assert redis["online_store"] == {"type": "redis", "connection_string": "redis-master:6379"}
    assert {k: v for k, v in sqlite.items() if k != "online_store"} == {
        k: v for k, v in redis.items() if k != "online_store"
    }
    assert sqlite["registry"]["path"] == "/srv/platform/feast/registry.db"
    assert sqlite["offline_store"] == {"type": "duckdb"}


def test_a_reader_never_sees_a_half_written_registry(feast_home: Path, feast_resources: dict) -> None:
    """Runs read the registry while another run's materialization rewrites it: the platform's store
    renames a whole new file over the old one (Feast's file store truncates and writes in place)."""
    import threading

    from feast.protos.feast.core.Registry_pb2 import Registry as RegistryProto

    from platform_assets.featurestore.registry_store import AtomicFileRegistryStore

    materialize("feast_registry", feast_resources)
    store = FeastResource().store()
    registry_store = store.registry._registry_store
    assert type(registry_store) is AtomicFileRegistryStore
    path = PlatformPaths(feast_home).feast_dir / "registry.db"
    # A registry of a few MB, so that one write takes long enough for a reader to land inside it.
    big = registry_store.get_registry_proto()
    views = list(big.feature_views)
    for _ in range(300):
        big.feature_views.extend(views)
    expected = len(big.feature_views)
    # Held open, so its inode cannot be reused by one of the new files (a test seen to fail so).
    original = path.open("rb")

    stop, writes = threading.Event(), []

    def write() -> None:
        while not stop.is_set() and len(writes) < 60:
            registry_store.update_registry_proto(big)
            writes.append(1)

    writer = threading.Thread(target=write)
    writer.start()
    reads = []
    try:
        while writer.is_alive():
            proto = RegistryProto()
            proto.ParseFromString(path.read_bytes())
            reads.append(len(proto.feature_views))
    finally:
        stop.set()
        writer.join()
    assert len(writes) == 60 and reads
    assert set(reads) <= {len(views), expected}, "a reader saw a partial registry"
    # Replaced, not rewritten in place: the file held open was unlinked, its bytes untouched.
    with original:
        assert os.fstat(original.fileno()).st_nlink == 0
        assert path.stat().st_ino != os.fstat(original.fileno()).st_ino
        held = RegistryProto()
        held.ParseFromString(original.read())
        assert len(held.feature_views) == len(views)
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []
