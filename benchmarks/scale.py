"""The pipeline for one training window at 1x, 3x and 10x the data: wall time and peak RSS per step.

    .venv/bin/python benchmarks/scale.py [--factors 1 3 10] [--root /tmp/platform-scale] [--keep]

For each factor: `scale_data.py` writes an N-times copy of the raw files (more airlines at the same
three airports, see its docstring), then a fresh PLATFORM_HOME runs the January-April 2013 window
step by step, each step in its own child process: landing (ingestion), validation, dbt build, Feast
apply, Feast materialize (online store), the point-in-time training set, and training on a small
budget (one network instead of the ensemble of five, exactly 3 epochs, so every factor trains the
same number of passes over its rows).

Per step it reports the Dagster step time (what the assets spend, without the child's imports), the
CPU time of its Dagster runs (the child and the processes it reaped, e.g. dbt: unlike wall time it
does not grow when other work shares the cores, so growth is judged on it) and the peak RSS: the
larger of the biggest single process (`wait4` rusage: the child or a process it reaped) and the
sampled sum over the child's process tree (dbt runs beside the Dagster process). Child output goes
to <root>/<N>x/logs/<step>.log; the figures to <root>/scale.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WINDOW = ("2013-01", "2013-04")
TRAINING = {"ensemble_size": 1, "max_epochs": 3, "min_epochs": 3, "patience": 1}
STEPS = (
    "generate data",
    "ingestion",
    "validation",
    "dbt build",
    "Feast apply",
    "Feast materialize",
    "training set",
    "training",
)
PIPELINE = STEPS[1:]
GIB = 1024**3
MEMORY_BUDGET_GIB = 4


def cpu_seconds() -> float:
    """CPU time of this process and the children it reaped (dbt): unlike wall time, it does not
    grow when other work shares the cores."""
    import resource

    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def run_step(step: str, home: Path, raw: Path, factor: int) -> tuple[float, float]:
    """Runs one step in this process (the child): the seconds Dagster spent in its steps, and the
    CPU seconds of its runs (imports excluded)."""
    os.environ.update(PLATFORM_HOME=str(home), DAGSTER_HOME=str(home / "dagster"), RAW_DATA_DIR=str(raw))
    if step == "generate data":
        from benchmarks.scale_data import scale_raw

        started, cpu = time.perf_counter(), cpu_seconds()
        scale_raw(factor, raw)
        return time.perf_counter() - started, cpu_seconds() - cpu

    import dagster as dg

    from platform_assets.defs.features.assets import feast_registry, online_features
    from platform_assets.defs.ingestion.assets import raw_assets
    from platform_assets.defs.validation.assets import validated_assets
    from platform_assets.defs.warehouse.assets import warehouse_models
    from platform_assets.lib.dbt import dbt_resource
    from platform_assets.lib.models import ModelLifecycle
    from platform_assets.lib.models.keys import ModelKeys
    from platform_assets.lib.resources import RawSourceResource, shared_resources
    from platform_assets.ml.declaration import declared

    # The delay model's assets, as its defs.yaml declares them (delay/training_set, delay/model, ...).
    delay_keys = ModelKeys("delay")
    delay = {a.key: a for a in ModelLifecycle(**declared("delay").model_dump()).build_assets()}

    resources = {
        **shared_resources(),
        "raw_source": RawSourceResource(data_dir=str(raw)),
        "dbt": dbt_resource(),
    }
    window = {"dagster/asset_partition_range_start": WINDOW[0], "dagster/asset_partition_range_end": WINDOW[1]}
    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    reference = ["planes", "airports", "airlines"]
    monthly = ["flights", "weather"]

    cpu = [0.0]

    def materialize(assets: list, selection: list[str] | None = None, tags: dict | None = None, ops: dict | None = None) -> float:
        before = cpu_seconds()
        result = dg.materialize(
            assets, selection=selection, resources=resources, tags=tags, run_config={**quiet, **({"ops": ops} if ops else {})}
        )
        cpu[0] += cpu_seconds() - before
        return sum(
            e.event_specific_data.duration_ms / 1000 for e in result.all_events if e.event_type_value == "STEP_SUCCESS"
        )

    steps: dict[str, Callable[[], float]] = {
        "ingestion": lambda: materialize(raw_assets, [f"raw_{t}" for t in reference])
        + materialize(raw_assets, [f"raw_{t}" for t in monthly], window),
        "validation": lambda: materialize(validated_assets, reference)
        + materialize(validated_assets, monthly, window),
        "dbt build": lambda: materialize([warehouse_models], tags=window),
        "Feast apply": lambda: materialize([feast_registry]),
        "Feast materialize": lambda: materialize([online_features], tags=window),
        "training set": lambda: materialize([delay[delay_keys.training_set]]),
        "training": lambda: materialize(
            [delay[delay_keys.model]], ops={delay_keys.op("model"): {"config": TRAINING}}
        ),
    }
    seconds = steps[step]()
    return seconds, cpu[0]


class TreeSampler(threading.Thread):
    """Peak of the summed RSS of a process and its descendants, sampled every `interval` seconds."""

    def __init__(self, pid: int, interval: float = 0.1):
        super().__init__(daemon=True)
        self.pid, self.interval, self.peak, self.done = pid, interval, 0, threading.Event()

    def run(self) -> None:
        import psutil

        try:
            root = psutil.Process(self.pid)
        except psutil.NoSuchProcess:
            return
        while not self.done.is_set():
            total = 0
            try:
                for process in [root, *root.children(recursive=True)]:
                    try:
                        total += process.memory_info().rss
                    except psutil.NoSuchProcess:
                        pass
            except psutil.NoSuchProcess:
                return
            self.peak = max(self.peak, total)
            self.done.wait(self.interval)


def measure(step: str, home: Path, raw: Path, factor: int, log: Path) -> dict[str, float]:
    """Runs the step in a child process: its wall time, Dagster step time and peak RSS (bytes)."""
    result_file = log.with_suffix(".json")
    command = [
        sys.executable, __file__, "--child", step, "--home", str(home), "--raw", str(raw),
        "--factor", str(factor), "--result", str(result_file),
    ]
    started = time.perf_counter()
    with log.open("w") as out:
        child = subprocess.Popen(command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONPATH": str(REPO)})
        sampler = TreeSampler(child.pid)
        sampler.start()
        # wait4, not child.wait(): its rusage is the child's own, maxrss over the child and the
        # processes it reaped (dbt), not that of every earlier child of this process
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    sampler.done.set()
    sampler.join()
    if child.returncode:
        raise SystemExit(f"{step} at {factor}x failed (exit {child.returncode}); see {log}")
    child_figures = json.loads(result_file.read_text())
    return {
        "wall_s": wall,
        "step_s": child_figures["step_s"],
        "cpu_s": child_figures["cpu_s"],
        "maxrss": usage.ru_maxrss * 1024,
        "tree_rss": sampler.peak,
        "peak_rss": max(usage.ru_maxrss * 1024, sampler.peak),
    }


def flight_rows(raw: Path) -> int:
    import zipfile

    source = raw / "flights.csv.zip"
    with zipfile.ZipFile(source) as archive, archive.open("flights.csv") as text:
        return sum(1 for _ in text) - 1


def run_factor(factor: int, root: Path) -> dict[str, dict[str, float]]:
    base = root / f"{factor}x"
    shutil.rmtree(base, ignore_errors=True)
    home, raw, logs = base / "platform", base / "raw", base / "logs"
    logs.mkdir(parents=True)
    results = {}
    for step in STEPS:
        results[step] = figures = measure(step, home, raw, factor, logs / f"{step.replace(' ', '_')}.log")
        print(
            f"  {factor:>2}x {step:<18} step {figures['step_s']:7.1f}s  cpu {figures['cpu_s']:7.1f}s  "
            f"process {figures['wall_s']:7.1f}s  "
            f"peak RSS {figures['peak_rss'] / 2**20:7.0f} MiB (largest process {figures['maxrss'] / 2**20:.0f})",
            flush=True,
        )
    results["rows"] = {"flights": flight_rows(raw)}
    return results


def table(results: dict[int, dict[str, dict[str, float]]]) -> str:
    factors = sorted(results)
    first, last = factors[0], factors[-1]
    each = "/".join(f"{f}×" for f in factors)
    header = [
        "step", *(f"{f}× s" for f in factors), f"growth {last}×/{first}×",
        f"CPU s {each}", "CPU growth", f"peak RSS {each} MiB",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for step in (*PIPELINE, "total"):
        steps = PIPELINE if step == "total" else (step,)
        seconds = {f: sum(results[f][s]["step_s"] for s in steps) for f in factors}
        cpu = {f: sum(results[f][s]["cpu_s"] for s in steps) for f in factors}
        peaks = {f: max(results[f][s]["peak_rss"] for s in steps) for f in factors}
        cells = [
            step,
            *(f"{seconds[f]:.1f}" for f in factors),
            f"{seconds[last] / seconds[first]:.1f}",
            " / ".join(f"{cpu[f]:.0f}" for f in factors),
            f"{cpu[last] / cpu[first]:.1f}",
            " / ".join(f"{peaks[f] / 2**20:.0f}" for f in factors),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    rows = " / ".join(f"{results[f]['rows']['flights']:,}" for f in factors)
    lines.append(f"\nflights in the raw files ({each}): {rows}")
    return "\n".join(lines)


def findings(results: dict[int, dict[str, dict[str, float]]]) -> list[str]:
    """Steps whose CPU time grew faster than the data, and steps over the memory budget."""
    factors = sorted(results)
    first, last = factors[0], factors[-1]
    ratio = last / first
    notes = []
    for step in PIPELINE:
        a, b = results[first][step], results[last][step]
        if a["cpu_s"] > 1 and b["cpu_s"] / a["cpu_s"] > ratio * 1.1:
            notes.append(f"{step}: superlinear, {b['cpu_s'] / a['cpu_s']:.1f}x the CPU time for {ratio:.0f}x the data")
        if b["peak_rss"] > MEMORY_BUDGET_GIB * GIB:
            notes.append(f"{step}: peak RSS {b['peak_rss'] / GIB:.2f} GiB at {last}x, over {MEMORY_BUDGET_GIB} GiB")
    return notes


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--factors", type=int, nargs="+", default=[1, 3, 10])
    parser.add_argument("--root", type=Path, default=Path("/tmp/platform-scale"))
    parser.add_argument("--keep", action="store_true", help="keep each factor's raw files and PLATFORM_HOME")
    parser.add_argument("--child", choices=STEPS, help=argparse.SUPPRESS)
    parser.add_argument("--home", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--raw", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--factor", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        seconds, cpu = run_step(args.child, args.home, args.raw, args.factor)
        args.result.write_text(json.dumps({"step_s": seconds, "cpu_s": cpu}))
        return

    print(f"window {WINDOW[0]}..{WINDOW[1]}, training {TRAINING}; logs under {args.root}", flush=True)
    results = {}
    for factor in args.factors:
        results[factor] = run_factor(factor, args.root)
        if not args.keep:
            shutil.rmtree(args.root / f"{factor}x" / "platform", ignore_errors=True)
            shutil.rmtree(args.root / f"{factor}x" / "raw", ignore_errors=True)
    (args.root / "scale.json").write_text(json.dumps({str(f): r for f, r in results.items()}, indent=1))
    print()
    print(table(results))
    for note in findings(results) or ["no step grew faster than the data or passed the memory budget"]:
        print(f"- {note}")


if __name__ == "__main__":
    main()
