"""Several independent models trained at once, each fit in a worker process of its own.

Training uses `configure_threads()` threads (half the cores, at most 4): a model this small gains
nothing from more. A step that trains several models (the replay summary's monthly-policy models)
leaves the other cores idle when it trains them one after another; here `cpu_count // threads`
worker processes pull the fits from a shared list until none is left.

Each worker runs exactly `training.fit` with the same thread count and seeds, so a model fitted
here is the model a fit in the calling process gives (tested: identical weights). Workers are
plain `python -m` subprocesses, not multiprocessing's spawn, which would first import the parent's
`__main__` (the CLI, a Dagster code server, pytest).

A fit cache (a folder) keeps results by content: the frame's bytes, the recipe, the columns, the
training code and the thread count. A fit whose key is there is loaded instead of trained, so work
that ran earlier (the replay pre-trains the monthly-policy models while the months replay) is not
done twice, and a change to any of those inputs misses the cache.

    python -m platform_assets.core.tabular.parallel FOLDER   # a worker; the parent starts them
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import polars as pl

    from platform_assets.core.tabular.params import TrainParams
    from platform_assets.core.tabular.preprocessing import Columns
    from platform_assets.core.tabular.training import FitResult


def workers_for(fits: int) -> int:
    from platform_assets.core.tabular.training import training_threads

    return max(1, min(fits, (os.cpu_count() or 1) // training_threads()))


def fit_key(frame: pl.DataFrame, params: TrainParams, columns: Columns) -> str:
    """The fit cache's key: what decides a fit's result (same key, same weights)."""
    import dataclasses

    import torch

    from platform_assets.core.tabular import params as params_module
    from platform_assets.core.tabular import preprocessing, training

    digest = hashlib.sha256()
    buffer = io.BytesIO()
    frame.rechunk().write_ipc(buffer, compression="uncompressed")
    digest.update(buffer.getvalue())
    recipe = {
        "params": dataclasses.asdict(params),
        "columns": {"label": columns.label, "categorical": list(columns.categorical), "exclude": sorted(columns.exclude)},
        "torch": torch.__version__,
        "threads": training.training_threads(),
    }
    digest.update(json.dumps(recipe, sort_keys=True, default=str).encode())
    for module in (training, preprocessing, params_module):  # the training code itself
        digest.update(Path(module.__file__).read_bytes())  # type: ignore[arg-type]
    return digest.hexdigest()


def _load(path: Path) -> FitResult:
    with path.open("rb") as f:
        return pickle.load(f)


def _store(result: FitResult, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    staged = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with staged.open("wb") as f:
        pickle.dump(result, f, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(staged, path)


class Fits:
    """Fits running in worker processes: started by `start_fits`, collected by `wait`, so the caller
    can do other work (scoring models it already has) while they train."""

    def __init__(
        self,
        frames: Mapping[str, pl.DataFrame],
        params: TrainParams,
        columns: Columns,
        workers: int,
        cache: Path | None = None,
        overlap: bool = False,
    ) -> None:
        self._order, self._procs, self._logs = list(frames), [], []
        self._params, self._columns = params, columns
        self._tmp: tempfile.TemporaryDirectory | None = None
        self._cached: dict[str, Path] = {}  # name -> its file in the cache, hit or to be stored
        if cache is not None:
            self._cached = {name: cache / f"{fit_key(frames[name], params, columns)}.pkl" for name in frames}
        #: the fits found in the cache: loaded, not trained
        self.cache_hits = [name for name in frames if name in self._cached and self._cached[name].exists()]
        self._frames = {name: frame for name, frame in frames.items() if name not in self.cache_hits}
        self.names = list(self._frames)
        workers = max(1, min(workers, len(self.names)))
        if not self.names or (workers == 1 and not overlap):  # no process to start: `wait` fits here
            return
        self._tmp = tempfile.TemporaryDirectory(prefix="fit-many-")
        folder = Path(self._tmp.name)
        for i, name in enumerate(self.names):
            with (folder / f"task-{i}.pkl").open("wb") as f:
                pickle.dump((frames[name], params, columns), f, protocol=pickle.HIGHEST_PROTOCOL)
        for w in range(workers):
            log = folder / f"worker-{w}.log"
            with log.open("wb") as sink:
                self._procs.append(subprocess.Popen(
                    [sys.executable, "-m", __name__, str(folder)], stdout=sink, stderr=subprocess.STDOUT
                ))
            self._logs.append(log)

    def wait(self) -> dict[str, FitResult]:
        """Every fit's result, by name (the cache's hits too); a failed fit raises with its worker's output."""
        results = {name: _load(self._cached[name]) for name in self.cache_hits}
        for name, result in self._fitted().items():
            if name in self._cached:
                _store(result, self._cached[name])
            results[name] = result
        return {name: results[name] for name in self._order}

    def _fitted(self) -> dict[str, FitResult]:
        from platform_assets.core.tabular.training import fit

        if self._tmp is None:
            return {name: fit(self._frames[name], self._params, self._columns) for name in self.names}
        try:
            exits = [(p.wait(), log) for p, log in zip(self._procs, self._logs)]
            folder, results = Path(self._tmp.name), {}
            for i, name in enumerate(self.names):
                result = folder / f"result-{i}.pkl"
                if not result.exists():
                    tails = "\n".join(
                        f"worker exit {code}: {log.read_text(errors='replace')[-2000:]}" for code, log in exits if code
                    )
                    raise RuntimeError(f"fitting {name!r} in a worker process failed\n{tails}")
                with result.open("rb") as f:
                    results[name] = pickle.load(f)
            return results
        finally:
            for p in self._procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
            self._tmp.cleanup()


def start_fits(
    frames: Mapping[str, pl.DataFrame],
    params: TrainParams,
    columns: Columns,
    workers: int | None = None,
    cache: Path | None = None,
    overlap: bool = False,
) -> Fits:
    """Start `training.fit(frame, params, columns)` for every named frame, `workers` processes at a
    time (default: as many as the cores hold at the training thread count). A single worker's fits
    run in this process when their results are asked for, unless `overlap` says the caller works
    meanwhile. With `cache`, fits found there are loaded and new ones stored."""
    workers = workers_for(len(frames)) if workers is None else workers
    return Fits(frames, params, columns, workers, cache, overlap)


def fit_many(
    frames: Mapping[str, pl.DataFrame],
    params: TrainParams,
    columns: Columns,
    workers: int | None = None,
    cache: Path | None = None,
) -> dict[str, FitResult]:
    """`start_fits(...).wait()`: every fit's result, by name."""
    return start_fits(frames, params, columns, workers, cache).wait()


def work(folder: Path) -> None:
    """Claim tasks (an exclusive create of task-N.claim) until none is left; fit each."""
    from platform_assets.core.tabular.training import fit

    for task in sorted(folder.glob("task-*.pkl"), key=lambda p: int(p.stem.split("-")[1])):
        try:
            os.close(os.open(task.with_suffix(".claim"), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            continue
        with task.open("rb") as f:
            frame, params, columns = pickle.load(f)
        result = fit(frame, params, columns)
        staged = folder / f".{task.stem}.result.tmp"
        with staged.open("wb") as f:
            pickle.dump(result, f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(staged, folder / f"result-{task.stem.split('-')[1]}.pkl")


if __name__ == "__main__":
    work(Path(sys.argv[1]))
