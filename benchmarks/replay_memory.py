"""Wall time and peak memory of a whole replay: `python -m platform_assets run` in a fresh
PLATFORM_HOME, its process tree (the replay, dagster dev's webserver, daemon and code server, every
run's process, the prefit) sampled every half second; the peak is the largest sum of resident sets.

    .venv/bin/python benchmarks/replay_memory.py --home /tmp/replay [-- --models delay cancellation]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]


def tree_rss(root: psutil.Process) -> tuple[int, int]:
    """(bytes resident in the tree, processes in it)."""
    total, count = 0, 0
    for process in [root, *root.children(recursive=True)]:
        try:
            total += process.memory_info().rss
            count += 1
        except psutil.NoSuchProcess:
            continue
    return total, count


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--home", type=Path, required=True, help="an empty folder for the replay")
    parser.add_argument("extra", nargs="*", help="arguments for `platform_assets run`")
    args = parser.parse_args()
    if (args.home / "dagster").exists():
        raise SystemExit(f"{args.home} already holds a replay; pass an empty --home")
    started = time.perf_counter()
    replay = subprocess.Popen(
        [sys.executable, "-m", "platform_assets", "run", *args.extra], cwd=REPO,
        env={**os.environ, "PLATFORM_HOME": str(args.home.resolve())},
    )
    root = psutil.Process(replay.pid)
    peak, peak_processes = 0, 0
    while replay.poll() is None:
        try:
            rss, processes = tree_rss(root)
        except psutil.NoSuchProcess:
            break
        if rss > peak:
            peak, peak_processes = rss, processes
        time.sleep(0.5)
    wall = time.perf_counter() - started
    print(f"\nreplay exit {replay.returncode}: {wall:.1f} s wall, peak {peak / 2**30:.2f} GiB resident "
          f"in {peak_processes} processes")


if __name__ == "__main__":
    main()
