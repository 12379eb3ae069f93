"""`python -m platform_assets ui` (`make ui`): the Dagster UI, with the links in its metadata live.

Asset pages link to the MLflow UI (runs, model versions) and to the HTML files under
PLATFORM_HOME/reports (Evidently reports, the replay chart). Browsers block `file://` links from a
web page, so this serves both over HTTP beside `dagster dev`, at the URLs the settings give the
resources (PLATFORM_MLFLOW_UI_URL, PLATFORM_REPORTS_URL), and stops them when `dagster dev` exits.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

from platform_assets.lib.instance import ensure_dagster_home
from platform_assets.lib.resources import shared_resources
from platform_assets.paths import PlatformPaths
from platform_assets.settings import REPO_ROOT, Settings, settings

BIN = Path(sys.executable).parent


def host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname or not parts.port:
        raise ValueError(f"expected http://host:port, got {url!r}")
    return parts.hostname, parts.port


def reports_server(paths: PlatformPaths, url: str) -> list[str]:
    """A static file server over PLATFORM_HOME/reports (Python's own http.server)."""
    host, port = host_port(url)
    return [sys.executable, "-m", "http.server", str(port), "--bind", host, "--directory", str(paths.reports)]


def mlflow_ui(current: Settings) -> list[str] | None:
    """The MLflow UI on the embedded store; None when the tracking URI is a server already."""
    store = shared_resources()["mlflow_store"]
    if not store.is_embedded:
        return None
    host, port = host_port(current.mlflow_ui_url)
    store.activate()  # creates the database on a fresh home, so the UI starts on a valid store
    return [
        str(BIN / "mlflow"), "server", "--host", host, "--port", str(port), "--workers", "1",
        "--backend-store-uri", store.resolved_tracking_uri(),
    ]


def helpers(current: Settings) -> list[list[str]]:
    paths = PlatformPaths.from_settings(current)
    paths.reports.mkdir(parents=True, exist_ok=True)
    commands = [reports_server(paths, current.reports_url)]
    mlflow = mlflow_ui(current)
    if mlflow is not None:
        commands.append(mlflow)
    return commands


def main(extra: Sequence[str] = ()) -> int:
    current = settings()
    ensure_dagster_home(PlatformPaths.from_settings(current))
    # A terminated `make ui` (SIGTERM) stops the servers it started, as Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    started: list[subprocess.Popen] = []
    try:
        started += [subprocess.Popen(command, cwd=REPO_ROOT) for command in helpers(current)]
        print(f"reports: {current.reports_url}   MLflow UI: {current.mlflow_ui_url}", flush=True)
        dagster = subprocess.Popen(
            [str(BIN / "dagster"), "dev", "-w", str(REPO_ROOT / "workspace.yaml"), *extra], cwd=REPO_ROOT
        )
        started.append(dagster)
        return dagster.wait()
    except KeyboardInterrupt:
        return 130
    finally:
        stop(started)


def stop(processes: Sequence[subprocess.Popen], timeout: float = 30) -> None:
    """SIGTERM every process, then wait; one still up after `timeout` seconds is killed."""
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=timeout)
