"""The HistGradientBoosting baseline trains on one OpenMP thread: the same model as on two."""

from __future__ import annotations

import numpy as np
from sklearn.base import clone
from threadpoolctl import threadpool_limits

from platform_assets.ml.evaluation import _hgb_matrix, hgb_baseline
from platform_assets.ml.preprocessing import labelled, split_by_time
from tests.models.test_parallel_fit import COLUMNS, frame


def test_the_one_thread_baseline_is_the_two_thread_baseline() -> None:
    data = frame(7, rows=6000)
    baseline = hgb_baseline(data, COLUMNS, validation_days=10, seed=3)
    train, valid, _ = split_by_time(labelled(data, COLUMNS.label), 10)
    numeric, categorical = baseline.numeric, baseline.categorical
    matrix = {n: _hgb_matrix(f.to_pandas(), numeric, categorical, baseline.vocab) for n, f in (("t", train), ("v", valid))}
    two = clone(baseline.model)
    with threadpool_limits(limits=2, user_api="openmp"):
        two.fit(matrix["t"], train[COLUMNS.label].to_numpy(),
                X_val=matrix["v"], y_val=valid[COLUMNS.label].to_numpy())
    assert two.n_iter_ == baseline.model.n_iter_ > 1
    rows = data.to_pandas()
    expected = two.predict_proba(_hgb_matrix(rows, numeric, categorical, baseline.vocab))[:, 1]
    assert np.array_equal(baseline.predict_proba(rows), expected)
    assert expected.std() > 0.1  # a fitted model, not a constant
