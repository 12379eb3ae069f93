"""SIGKILL the month's Feast materialization into the SQLite online store, then rerun.

Killed mid-batch, SQLite rolls the uncommitted upserts back; killed after a view's rows are
committed but before Feast records the interval, the rerun sees the view as due and upserts the
same rows again. Either way the online store afterwards holds exactly what an uninterrupted run
writes: every (entity, feature) once, with the same value and event time.
"""

from __future__ import annotations

import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from platform_assets.lib.resources import FeastResource, PlatformPathsResource
from platform_assets.paths import PlatformPaths
from tests.defs.features.conftest import feature_tables  # noqa: F401 - the shared small warehouse
from tests.defs.features.helpers import materialize

ROOT = Path(__file__).resolve().parents[2]
MONTH = "2013-01"
KILL_POINTS = [("mid", 1), ("registry", 1)]


def resources(home: Path) -> dict:
    return {"platform": PlatformPathsResource(home=str(home)), "feast": FeastResource(platform_home=str(home))}


def prepared_home(home: Path, tables: Path) -> Path:
    shutil.copytree(tables, PlatformPaths(home).feature_tables)
    with pytest.MonkeyPatch.context() as env:  # the resource exports PLATFORM_HOME; keep it local
        env.setenv("PLATFORM_HOME", str(home))
        assert materialize("feast_registry", resources(home)).success
    return home


def online_rows(home: Path) -> dict[str, list[tuple]]:
    with sqlite3.connect(PlatformPaths(home).feast_dir / "online_store.db") as con:
        assert con.execute("pragma integrity_check").fetchone() == ("ok",)
        tables = [t for (t,) in con.execute("select name from sqlite_master where type = 'table'")]
        return {
            t: con.execute(f"select entity_key, feature_name, value, event_ts from {t} order by 1, 2").fetchall()
            for t in tables
        }


def materialize_online(home: Path) -> None:
    with pytest.MonkeyPatch.context() as env:
        env.setenv("PLATFORM_HOME", str(home))
        assert materialize("online_features", resources(home), MONTH).success


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory, feature_tables: Path) -> dict[str, list[tuple]]:  # noqa: F811
    home = prepared_home(tmp_path_factory.mktemp("reference") / "platform", feature_tables)
    materialize_online(home)
    rows = online_rows(home)
    assert sum(len(r) for r in rows.values()) > 10_000
    return rows


@pytest.mark.e2e
@pytest.mark.parametrize("mode, n", KILL_POINTS, ids=[f"{m}-{n}" for m, n in KILL_POINTS])
def test_sigkill_during_materialize_then_rerun_matches_an_uninterrupted_run(
    mode: str, n: int, tmp_path: Path, feature_tables: Path, uninterrupted: dict  # noqa: F811
) -> None:
    home = prepared_home(tmp_path / "platform", feature_tables)
    child = subprocess.run(
        [sys.executable, "-m", "tests.reliability.feast_child", str(home), MONTH, mode, str(n)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )
    assert child.returncode == -signal.SIGKILL, child.stdout[-2000:] + child.stderr[-2000:]
    killed = online_rows(home)  # opens and passes SQLite's integrity check
    if mode == "mid":  # the interrupted batch was rolled back as a whole
        assert all(rows == [] for rows in killed.values())
    else:
        assert any(killed.values()) and killed != uninterrupted

    materialize_online(home)
    assert online_rows(home) == uninterrupted
