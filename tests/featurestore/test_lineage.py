import json
from pathlib import Path

import polars as pl

from platform_assets.featurestore.lineage import raw_lineage
from platform_assets.paths import PlatformPaths, write_parquet_atomic


def _validated(paths: PlatformPaths, table: str, month: str | None, sha: str) -> None:
    frame = pl.DataFrame(
        {"_source_file": [f"/landing/{table}/{sha}.csv"] * 2, "_source_sha256": [sha] * 2, "_source_row": [1, 2]}
    )
    write_parquet_atomic(frame, paths.validated_file(table, month))


def test_lineage_names_every_raw_file_behind_the_window_and_nothing_else(tmp_path: Path) -> None:
    paths = PlatformPaths(tmp_path)
    for month in ("2013-01", "2013-02", "2013-03"):
        _validated(paths, "flights", month, f"flights-{month}")
        _validated(paths, "weather", month, f"weather-{month}")
    for table in ("planes", "airports", "airlines"):
        _validated(paths, table, None, f"{table}-all")

    lineage = json.loads(raw_lineage(paths, ["2013-01", "2013-02"]))
    assert {(r["table"], r["sha256"]) for r in lineage} == {
        ("flights", "flights-2013-01"), ("flights", "flights-2013-02"),
        ("weather", "weather-2013-01"), ("weather", "weather-2013-02"),
        ("planes", "planes-all"), ("airports", "airports-all"), ("airlines", "airlines-all"),
    }
    assert all(r["file"].endswith(".csv") for r in lineage)
