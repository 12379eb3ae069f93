"""Start one run per month argument at once, each in its own process, in the platform's local
Dagster instance: `python -m tests.reliability.concurrent_child HOME RAW_DIR MONTH [MONTH ...]`.

The processes are forked from this one after the imports, so twenty runs do not each spend a
second importing dagster; nothing has touched polars' thread pool or the instance before the fork.
"""

from __future__ import annotations

import multiprocessing
import sys
from pathlib import Path

import dagster as dg

from platform_assets.lib.instance import ensure_dagster_home
from platform_assets.paths import PlatformPaths
from tests.defs.assets.helpers import materialize

ASSETS = ["raw_flights", "flights", "raw_weather", "weather", "raw_planes", "planes", "raw_airports", "airports"]


def run(home: Path, raw_dir: Path, partition: str) -> None:
    ensure_dagster_home(PlatformPaths(home))
    with dg.DagsterInstance.get() as instance:
        result = materialize(
            ASSETS, home, raw_dir, partition, instance=instance, raise_on_error=False,
            tags={"reliability/month": partition},
        )
    print(partition, result.run_id, result.success, flush=True)
    sys.exit(0 if result.success else 1)


def main() -> None:
    home, raw_dir, months = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:]
    fork = multiprocessing.get_context("fork")
    processes = [fork.Process(target=run, args=(home, raw_dir, month)) for month in months]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=600)
    codes = [p.exitcode for p in processes]
    print("exit codes", codes, flush=True)
    sys.exit(0 if codes == [0] * len(codes) else 1)


if __name__ == "__main__":
    main()
