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
done twice, and a change to any of those inputs misses the cache. A process training a key holds
an exclusive lock on its claim file (`<key>.claim`) until the result is stored: another process
that wants the same fit waits for that result instead of training it again, and trains it itself
only if the claimant ended without one.

    python -m platform_assets.ml.parallel FOLDER   # a worker; the parent starts them
"""

from __future__ import annotations

import contextlib
import fcntl
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

    from platform_assets.ml.params import TrainParams
    from platform_assets.ml.preprocessing import Columns
    from platform_assets.ml.training import FitResult


def workers_for(fits: int) -> int:
    from platform_assets.ml.training import training_threads

    return max(1, min(fits, (os.cpu_count() or 1) // training_threads()))


def fit_key(frame: pl.DataFrame, params: TrainParams, columns: Columns) -> str:
    """The fit cache's key: what decides a fit's result (same key, same weights)."""
    import dataclasses
    import importlib

    import torch

    from platform_assets.ml import training

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
    for name in training.TRAINING_MODULES:  # the training code itself
        digest.update(Path(importlib.import_module(name).__file__).read_bytes())  # type: ignore[arg-type]
    return digest.hexdigest()


def _load(path: Path) -> FitResult:
    with path.open("rb") as f:
        return pickle.load(f)


def _store(result: FitResult, path: Path) -> None:
    from platform_assets.paths import write_atomic

    def dump(tmp: Path) -> None:
        with tmp.open("wb") as f:
            pickle.dump(result, f, protocol=pickle.HIGHEST_PROTOCOL)

    write_atomic(path, dump)


class _Claim:
    """The lock on a cache entry's claim file, held by the process training that entry."""

    def __init__(self, result: Path) -> None:
        self.result, self.path, self._fd = result, result.with_suffix(".claim"), None

    def acquire(self, block: bool = False) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if block else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        """After storing the result (or failing to): unlink first, so the next claimant of this path
        locks a new file and finds the result."""
        if self._fd is not None:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
            os.close(self._fd)
            self._fd = None


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
        self._all, self._params, self._columns = frames, params, columns
        self._tmp: tempfile.TemporaryDirectory | None = None
        self._cached: dict[str, Path] = {}  # name -> its file in the cache, hit or to be stored
        self._claims: dict[str, _Claim] = {}  # the fits this process trains, claimed
        self._hits: dict[str, FitResult] | None = None
        #: the fits found in the cache (loaded, not trained) and those another process is training
        self.cache_hits: list[str] = []
        self.elsewhere: list[str] = []
        #: of those, the ones `wait` loaded from the cache once their claimant stored them
        self.from_others: list[str] = []
        if cache is not None:
            self._cached = {name: cache / f"{fit_key(frames[name], params, columns)}.pkl" for name in frames}
        for name, result in self._cached.items():
            claim = _Claim(result)
            if result.exists():
                self.cache_hits.append(name)
            elif not claim.acquire():
                self.elsewhere.append(name)
            elif result.exists():  # stored between the look and the lock
                claim.release()
                self.cache_hits.append(name)
            else:
                self._claims[name] = claim
        self._frames = {
            name: frame for name, frame in frames.items() if name not in self.cache_hits and name not in self.elsewhere
        }
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

    def hits(self) -> dict[str, FitResult]:
        """The fits found in the cache, loaded (once): usable before the others finish."""
        if self._hits is None:
            self._hits = {name: _load(self._cached[name]) for name in self.cache_hits}
        return dict(self._hits)

    def wait(self, others: bool = True) -> dict[str, FitResult]:
        """Every fit's result, by name (the cache's hits too); a failed fit raises with its worker's
        output. The fits another process claimed are waited for, or left out when `others` is False."""
        results = self.hits()
        try:
            for name, result in self._fitted().items():
                if name in self._cached:
                    _store(result, self._cached[name])
                results[name] = result
        finally:
            for claim in self._claims.values():
                claim.release()
        for name in self.elsewhere if others else ():
            results[name] = self._after_claimant(name)
        return {name: results[name] for name in self._order if name in results}

    def _after_claimant(self, name: str) -> FitResult:
        """The result the claimant stored, once its lock is free; trained here if it stored none."""
        from platform_assets.ml.training import fit

        claim = _Claim(self._cached[name])
        claim.acquire(block=True)
        try:
            if claim.result.exists():
                self.from_others.append(name)
                return _load(claim.result)
            self.names.append(name)
            result = fit(self._all[name], self._params, self._columns)
            _store(result, claim.result)
            return result
        finally:
            claim.release()

    def _fitted(self) -> dict[str, FitResult]:
        from platform_assets.ml.training import fit

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
                results[name] = _load(result)
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
    from platform_assets.ml.training import fit

    for task in sorted(folder.glob("task-*.pkl"), key=lambda p: int(p.stem.split("-")[1])):
        try:
            os.close(os.open(task.with_suffix(".claim"), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            continue
        with task.open("rb") as f:
            frame, params, columns = pickle.load(f)
        _store(fit(frame, params, columns), folder / f"result-{task.stem.split('-')[1]}.pkl")


if __name__ == "__main__":
    work(Path(sys.argv[1]))
