"""A Dagster home and a workspace on the light sensor code location (sensor_defs.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from . import sensor_defs


@pytest.fixture
def sensor_workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path, Path]:
    """(DAGSTER_HOME, workspace.yaml, the folder the stand-in training_set writes its windows to)."""
    home, markers = tmp_path / "dagster_home", tmp_path / "markers"
    home.mkdir()
    markers.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text(
        "load_from:\n  - python_file:\n"
        f"      relative_path: {Path(sensor_defs.__file__)}\n"
        f"      working_directory: {Path(__file__).resolve().parents[3]}\n"
    )
    monkeypatch.setenv("RETRAIN_MARKER_DIR", str(markers))  # processes started from the test inherit it
    monkeypatch.setenv("PLATFORM_SENSOR_INTERVAL_SECONDS", "1")
    return home, workspace, markers
