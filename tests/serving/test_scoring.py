"""The server's array transform is the stored preprocessing, bit for bit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl

from platform_assets.ml.preprocessing import Preprocessor, model_input
from platform_assets.serving.scoring import RecordTransform
from tests.serving.world import MODEL


def test_record_transform_equals_the_preprocessor_on_the_same_rows(world) -> None:
    frame = pl.read_parquet(world.training_set)
    numeric, categorical = MODEL.columns.features(frame)
    pre = Preprocessor.fit(frame.to_pandas(), numeric, categorical)
    probe = frame.tail(500).to_pandas()
    # unseen and missing categories, missing and out-of-range numerics
    probe.loc[probe.index[:5], "carrier"] = "ZZ"
    probe.loc[probe.index[5:10], "origin"] = None
    probe.loc[probe.index[10:15], "precip"] = np.nan
    probe.loc[probe.index[15:20], "distance"] = 1e9
    probe.loc[probe.index[20:25], "temp"] = -1e9
    expected = pre.transform(model_input(probe, pre))
    columns = {
        c: [None if pd.isna(v) else v for v in probe[c].astype(object)]
        for c in pre.input_columns()
    }
    got = RecordTransform(pre).transform(columns, len(probe))
    assert np.array_equal(got[0], expected[0]) and got[0].dtype == expected[0].dtype
    assert np.array_equal(got[1], expected[1]) and got[1].dtype == expected[1].dtype
