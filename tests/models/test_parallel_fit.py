"""Fits in worker processes (core.tabular.parallel) are the fits the calling process makes."""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest
import torch

from platform_assets.ml.parallel import fit_key, fit_many, start_fits
from platform_assets.ml.params import TrainParams
from platform_assets.ml.preprocessing import Columns
from platform_assets.ml.training import fit

COLUMNS = Columns(label="y", categorical=("carrier",), exclude=frozenset({"flight_id"}))
PARAMS = TrainParams(hidden_sizes=(8,), max_epochs=4, min_epochs=2, ensemble_size=2, validation_days=3, device="cpu")


def frame(seed: int, rows: int = 3000) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=rows)
    carrier = rng.choice(["AA", "B6", "DL"], rows)
    logit = 1.5 * x + (carrier == "B6") - 0.5
    start = datetime(2013, 1, 1, tzinfo=UTC)
    return pl.DataFrame({
        "flight_id": np.arange(rows),
        "event_timestamp": [start + timedelta(minutes=20 * i) for i in range(rows)],
        "x": x,
        "carrier": carrier,
        "y": (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(np.int8),
    })


def test_fits_in_worker_processes_equal_fits_in_process() -> None:
    frames = {"a": frame(1), "b": frame(2), "c": frame(3)}
    parallel = fit_many(frames, PARAMS, COLUMNS, workers=2)
    assert list(parallel) == ["a", "b", "c"]
    for name, data in frames.items():
        alone = fit(data, PARAMS, COLUMNS)
        got = parallel[name]
        assert got.preprocessor == alone.preprocessor
        assert got.best_epochs == alone.best_epochs
        expected = alone.model.state_dict()
        for key, value in got.model.state_dict().items():
            assert torch.equal(value, expected[key]), (name, key)
    # Different data, different models: the results are not one fit copied three times.
    assert not torch.equal(parallel["a"].model.state_dict()["members.0.mlp.0.weight"],
                           parallel["b"].model.state_dict()["members.0.mlp.0.weight"])


def test_a_failing_fit_names_its_model_and_the_worker_error() -> None:
    empty = frame(1).clear()
    with pytest.raises(RuntimeError, match=r"(?s)fitting 'broken'.*training set is empty"):
        fit_many({"ok": frame(1), "broken": empty}, PARAMS, COLUMNS, workers=2)


def test_the_fit_cache_returns_the_fit_it_stored_and_misses_on_other_inputs(tmp_path) -> None:
    cache = tmp_path / "fits"
    frames = {"a": frame(1), "b": frame(2)}
    first = start_fits(frames, PARAMS, COLUMNS, workers=2, cache=cache)
    assert first.cache_hits == [] and first.names == ["a", "b"]
    trained = first.wait()
    assert len(list(cache.glob("*.pkl"))) == 2

    again = start_fits(frames, PARAMS, COLUMNS, workers=2, cache=cache)
    assert again.cache_hits == ["a", "b"] and again.names == []  # nothing left to train
    loaded = again.wait()
    for name in frames:
        expected = trained[name].model.state_dict()
        for key, value in loaded[name].model.state_dict().items():
            assert torch.equal(value, expected[key]), (name, key)

    # One changed row, one changed hyperparameter, another label: each is a different fit.
    changed = frame(1).with_columns(pl.when(pl.col("flight_id") == 0).then(9.0).otherwise(pl.col("x")).alias("x"))
    keys = {
        fit_key(frame(1), PARAMS, COLUMNS),
        fit_key(changed, PARAMS, COLUMNS),
        fit_key(frame(1), replace(PARAMS, learning_rate=PARAMS.learning_rate / 2), COLUMNS),
        fit_key(frame(1), PARAMS, replace(COLUMNS, exclude=frozenset({"flight_id", "x"}))),
    }
    assert len(keys) == 4
    # The key is the content's: the same rows in other chunks give the same key.
    split = pl.concat([frame(1).head(1000), frame(1).tail(2000)], rechunk=False)
    assert fit_key(split, PARAMS, COLUMNS) == fit_key(frame(1), PARAMS, COLUMNS)


def test_one_overlapping_fit_trains_in_a_worker_process_while_the_caller_works(tmp_path) -> None:
    started = start_fits({"a": frame(1)}, PARAMS, COLUMNS, overlap=True)
    try:
        [worker] = started._procs  # a process of its own, not a fit deferred to `wait`
        assert worker.pid != os.getpid()
    finally:
        result = started.wait()
    alone = fit(frame(1), PARAMS, COLUMNS)
    for key, value in result["a"].model.state_dict().items():
        assert torch.equal(value, alone.model.state_dict()[key]), key


def test_a_fit_another_claimant_is_training_is_waited_for_not_trained_twice(tmp_path) -> None:
    import threading

    cache = tmp_path / "fits"
    claimant = start_fits({"a": frame(1)}, PARAMS, COLUMNS, workers=1, cache=cache)  # claims "a", trains in wait()
    waiter = start_fits({"a": frame(1), "b": frame(2)}, PARAMS, COLUMNS, workers=1, cache=cache)
    assert claimant.names == ["a"]
    assert waiter.elsewhere == ["a"] and waiter.names == ["b"]
    assert start_fits({"a": frame(1)}, PARAMS, COLUMNS, cache=cache).wait(others=False) == {}

    got: dict = {}
    waiting = threading.Thread(target=lambda: got.update(waiter.wait()))
    waiting.start()
    waiting.join(timeout=1.0)
    assert waiting.is_alive()  # blocked on the claim while the claimant has not trained "a"
    trained = claimant.wait()
    waiting.join(timeout=60)
    assert not waiting.is_alive() and list(got) == ["a", "b"]
    assert waiter.from_others == ["a"] and waiter.names == ["b"]
    for key, value in got["a"].model.state_dict().items():
        assert torch.equal(value, trained["a"].model.state_dict()[key]), key
    assert list(cache.glob("*.claim")) == []  # released: unlinked with the lock


def test_a_claimant_that_stored_nothing_leaves_the_fit_to_the_waiter(tmp_path) -> None:
    cache = tmp_path / "fits"
    claimant = start_fits({"a": frame(1)}, PARAMS, COLUMNS, workers=1, cache=cache)
    waiter = start_fits({"a": frame(1)}, PARAMS, COLUMNS, workers=1, cache=cache)
    assert waiter.elsewhere == ["a"]
    claimant._claims["a"].release()  # as a killed claimant's lock is released, with no result
    result = waiter.wait()["a"]
    assert waiter.names == ["a"] and waiter.from_others == []  # trained here after all
    alone = fit(frame(1), PARAMS, COLUMNS)
    for key, value in result.model.state_dict().items():
        assert torch.equal(value, alone.model.state_dict()[key]), key
    assert start_fits({"a": frame(1)}, PARAMS, COLUMNS, cache=cache).cache_hits == ["a"]


def test_cache_hits_are_there_before_the_other_fits_finish(tmp_path) -> None:
    cache = tmp_path / "fits"
    stored = fit_many({"a": frame(1)}, PARAMS, COLUMNS, workers=1, cache=cache)["a"]
    both = start_fits({"a": frame(1), "b": frame(2)}, PARAMS, COLUMNS, cache=cache, overlap=True)
    try:
        hits = both.hits()  # "b" trains in a worker process meanwhile
        assert list(hits) == ["a"] and both.names == ["b"]
        assert all(p.poll() is None for p in both._procs)  # still training "b"
    finally:
        done = both.wait()
    assert list(done) == ["a", "b"] and done["a"] is hits["a"]  # loaded once
    for key, value in hits["a"].model.state_dict().items():
        assert torch.equal(value, stored.model.state_dict()[key]), key
