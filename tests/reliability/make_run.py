"""`python -m platform_assets run` (what `make run` calls) as a subprocess on a small world: its
environment, the processes it leaves behind, the runs it made."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import polars as pl
import psutil

from tests.conftest import write_csv

REPO_ROOT = Path(__file__).resolve().parents[2]
SETTINGS = ("PLATFORM_", "MLFLOW_", "FEATURES_ROOT", "RAW_DATA_DIR", "DAGSTER_HOME", "DBT_")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def small_world(root: Path, real_data_dir: Path, flights: pl.DataFrame) -> Path:
    """A raw folder with every eighth flight of 2013 (or the frame given) and the real other files."""
    raw = root / "raw"
    raw.mkdir(parents=True)
    for name in ("weather.csv", "planes.csv", "airports.csv", "airlines.csv"):
        shutil.copy(real_data_dir / name, raw / name)
    write_csv(flights, raw / "flights.csv")
    return raw


def replay_env(home: Path, raw: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(SETTINGS)}
    env.update(PLATFORM_HOME=str(home), RAW_DATA_DIR=str(raw), PLATFORM_REPLAY_PORT=str(free_port()))
    return env


def start_replay(env: dict[str, str], months: list[str], *extra: str) -> subprocess.Popen:
    """The replay in a process group of its own, as a shell runs `make run`."""
    return subprocess.Popen(
        [sys.executable, "-m", "platform_assets", "run", "--months", *months, *extra],
        env=env, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )


def left_behind(home: Path) -> list[str]:
    """Processes still running with this PLATFORM_HOME in their environment (the replay, dagster dev,
    its daemon, code server and run workers all inherit it)."""
    found = []
    for process in psutil.process_iter(["pid", "cmdline"]):
        try:
            if process.environ().get("PLATFORM_HOME") == str(home) and process.status() != psutil.STATUS_ZOMBIE:
                found.append(f"{process.pid}: {' '.join(process.info['cmdline'] or [])[:120]}")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found
