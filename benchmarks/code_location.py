"""Load time of the code location against `import dagster, dagster_dbt`, measured in one run.

Every run process, the daemon and the UI import the code location, so its load time is paid per run.
The goal is at most 1.5x the bare import of dagster and dagster-dbt. Also lists which heavy
libraries (torch, MLflow, Feast, Evidently, scikit-learn, pandera, pandas) the load imports: none
should be, they are imported by the steps that use them.

    .venv/bin/python benchmarks/code_location.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

HEAVY = ("torch", "mlflow", "feast", "evidently", "sklearn", "pandera", "pandas", "scipy")
LOAD = "import platform_assets.definitions"
BARE = "import dagster, dagster_dbt"
PROBE = (
    "import sys, platform_assets.definitions as d; "
    "d.defs.resolve_asset_graph(); "
    f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
)


def timed(code: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    os.environ.setdefault("PLATFORM_HOME", "/tmp/platform-load-benchmark")
    timed(LOAD), timed(BARE)  # warm the file cache and bytecode
    load, bare = [], []
    for _ in range(args.repeat):  # interleaved, so both see the same machine load
        load.append(timed(LOAD))
        bare.append(timed(BARE))
    heavy = subprocess.run(
        [sys.executable, "-c", PROBE], check=True, capture_output=True, text=True
    ).stdout.strip()
    m_load, m_bare = statistics.median(load), statistics.median(bare)
    print(f"{'command':<40} {'median s':>9} {'min s':>7}")
    print(f"{'python -c ' + repr(BARE):<40} {m_bare:9.2f} {min(bare):7.2f}")
    print(f"{'python -c ' + repr(LOAD):<40} {m_load:9.2f} {min(load):7.2f}")
    print(f"ratio (median): {m_load / m_bare:.2f}x  (goal <= 1.5x)")
    print(f"heavy libraries imported by loading the definitions: {heavy or 'none'}")


if __name__ == "__main__":
    main()
