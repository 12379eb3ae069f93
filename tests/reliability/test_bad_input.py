"""Bad input in every raw file, through the real ingestion and validation assets.

Each fault either fails the asset with an error naming the file, the column and the rule (and
writes nothing), or quarantines exactly the broken rows (rows in = valid + quarantined) while the
landing copy keeps every row of the partition.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from platform_assets.data.rules import CAST_RULE, DUPLICATE_RULE, UNIQUE_RULE
from platform_assets.data.tables import TABLES
from platform_assets.paths import PlatformPaths
from tests.conftest import write_csv
from tests.defs.assets.helpers import materialize, metadata, sha256

K = 3  # rows broken per fault


@dataclass(frozen=True)
class Table:
    name: str
    partition: str | None
    required: str  # a non-nullable column to drop, rename or null
    numeric: str | None  # a typed column to fill with text
    out_of_range: tuple[str, str, str]  # column, value, rule
    varied: str  # a column whose value differs between two rows of one key

    @property
    def file(self) -> str:
        return f"{self.name}.csv"

    def targets(self, text: pl.DataFrame) -> pl.Expr:
        """The first K rows of the partition with a value in `varied`."""
        in_partition = pl.col("month") == self.partition[-2:].lstrip("0") if self.partition else pl.lit(True)
        eligible = in_partition & pl.col(self.varied).is_not_null()
        return eligible & (eligible.cast(pl.Int32).cum_sum() <= K)


TABLE_CASES = {
    "flights": Table("flights", "2013-01", "carrier", "dep_delay", ("distance", "-5", "distance_positive"), "dep_delay"),
    "weather": Table("weather", "2013-01", "origin", "wind_speed", ("wind_speed", "-3.5", "wind_speed_in_range"), "temp"),
    "planes": Table("planes", None, "engines", "seats", ("year", "2031", "year_in_range"), "seats"),
    "airports": Table("airports", None, "dst", "lat", ("lat", "95.2", "lat_in_range"), "alt"),
    "airlines": Table("airlines", None, "name", None, ("carrier", "TOOLONG", "carrier_format"), "name"),
}


@dataclass(frozen=True)
class Fails:
    column: str | None
    rule: str


@dataclass(frozen=True)
class Quarantines:
    rows: int
    rule: str | None  # every quarantined row broke this rule
    added_rows: int = 0  # rows the fault appended to the partition


def text_of(path: Path) -> pl.DataFrame:
    return pl.read_csv(path, infer_schema=False)


def set_targets(t: Table, column: str, value: str | None) -> Callable[[Path], None]:
    def apply(path: Path) -> None:
        text = text_of(path)
        write_csv(text.with_columns(pl.when(t.targets(text)).then(pl.lit(value)).otherwise(pl.col(column)).alias(column)), path)

    return apply


def append_copies(t: Table, change: bool) -> Callable[[Path], None]:
    def apply(path: Path) -> None:
        text = text_of(path)
        copies = text.filter(t.targets(text))
        if change:
            varied = pl.col(t.varied)
            numeric = t.varied in {"dep_delay", "temp", "seats", "alt"}
            copies = copies.with_columns(
                ((varied.cast(pl.Float64) + 1).cast(pl.Int64 if t.varied in {"seats", "alt"} else pl.Float64).cast(pl.String) if numeric else varied + " II").alias(t.varied)
            )
        write_csv(pl.concat([text, copies]), path)

    return apply


def drop_column(column: str) -> Callable[[Path], None]:
    return lambda path: write_csv(text_of(path).drop(column), path)


def rename_column(column: str) -> Callable[[Path], None]:
    return lambda path: write_csv(text_of(path).rename({column: f"{column}_renamed"}), path)


def numeric_column_as_text(column: str) -> Callable[[Path], None]:
    return lambda path: write_csv(text_of(path).with_columns(pl.lit("n/a-text").alias(column)), path)


def add_extra_column(path: Path) -> None:
    write_csv(text_of(path).with_columns(pl.lit("surprise").alias("loaded_by")), path)


def empty(path: Path) -> None:
    path.write_bytes(b"")


def header_only(path: Path) -> None:
    path.write_bytes(path.read_bytes().split(b"\n")[0] + b"\n")


def truncated(path: Path) -> None:
    blob = path.read_bytes().rstrip(b"\n")
    path.write_bytes(blob[: blob.rfind(b",")])  # a transfer cut inside the last row


def non_utf8(path: Path) -> None:
    lines = path.read_bytes().split(b"\n")
    lines[2] = lines[2][:1] + b"\xff" + lines[2][1:]
    path.write_bytes(b"\n".join(lines))


def extra_field_in_a_row(path: Path) -> None:
    lines = path.read_bytes().split(b"\n")
    lines[2] += b",oops"
    path.write_bytes(b"\n".join(lines))


def cases() -> list:
    found = []
    for t in TABLE_CASES.values():
        width = len(TABLES[t.name].columns)
        last = list(TABLES[t.name].columns)[-1]
        first = next(iter(TABLES[t.name].columns))
        column, value, rule = t.out_of_range
        table = [
            ("missing column", drop_column(t.required), Fails(t.required, "required column")),
            ("renamed column", rename_column(t.required), Fails(t.required, "required column")),
            ("null in required column", set_targets(t, t.required, None), Quarantines(K, f"{t.required}_not_null")),
            ("out-of-range value", set_targets(t, column, value), Quarantines(K, rule)),
            ("exact duplicate rows", append_copies(t, change=False), Quarantines(K, DUPLICATE_RULE, added_rows=K)),
            ("conflicting duplicate keys", append_copies(t, change=True), Quarantines(2 * K, UNIQUE_RULE, added_rows=K)),
            ("extra unexpected column", add_extra_column, Quarantines(0, None)),
            ("empty file", empty, Fails(None, "file not empty")),
            ("header only", header_only, Fails(None, "file has data rows")),
            ("truncated mid-row", truncated, Fails(last, f"every row has all {width} fields")),
            ("non-UTF-8 byte", non_utf8, Fails(first, "UTF-8 encoding")),
            ("row with an extra field", extra_field_in_a_row, Fails(None, "well-formed CSV")),
        ]
        if t.numeric:
            dtype = TABLES[t.name].columns[t.numeric]
            table += [
                ("wrong type: text in a numeric column", numeric_column_as_text(t.numeric), Fails(t.numeric, f"values parse as {dtype}")),
                ("wrong type: a few text cells", set_targets(t, t.numeric, "n/a-text"), Quarantines(K, CAST_RULE)),
            ]
        found += [pytest.param(t, fault, outcome, id=f"{t.name}-{name}") for name, fault, outcome in table]
    return found


def failure_message(result: dg.ExecuteInProcessResult) -> str:
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    error = failure.step_failure_data.error
    return error.cause.message if error.cause else error.message


def partition_rows(raw_dir: Path, t: Table) -> int:
    text = text_of(raw_dir / t.file)
    return text.filter(pl.col("month") == t.partition[-2:].lstrip("0")).height if t.partition else text.height


@pytest.mark.parametrize("t, fault, outcome", cases())
def test_bad_input(t: Table, fault: Callable[[Path], None], outcome: Fails | Quarantines, platform_home: Path, raw_dir: Path) -> None:
    path = raw_dir / t.file
    clean_rows = partition_rows(raw_dir, t)
    fault(path)
    # the blocking quarantine-share check has its own tests; 3 of airlines' 16 rows would trip it
    no_share_limit = {"ops": {t.name: {"config": {"max_quarantine_share": 1.0}}}}
    result = materialize(
        [f"raw_{t.name}", t.name], platform_home, raw_dir, t.partition, raise_on_error=False, run_config=no_share_limit
    )
    paths = PlatformPaths(platform_home)
    landing_dir = paths.landing_dir(t.name, t.partition)
    if isinstance(outcome, Fails):
        assert not result.success
        message = failure_message(result)
        assert str(path) in message and f"rule '{outcome.rule}'" in message, message
        if outcome.column:
            assert f"column '{outcome.column}'" in message, message
        assert not list(landing_dir.glob("*.parquet")) and not paths.validated_file(t.name, t.partition).exists()
        return
    assert result.success
    meta = metadata(result, t.name)
    rows_in = clean_rows + outcome.added_rows
    assert (meta["rows_in"], meta["rows_quarantined"]) == (rows_in, outcome.rows)
    assert meta["rows_valid"] + meta["rows_quarantined"] == meta["rows_in"]
    valid = pl.read_parquet(paths.validated_file(t.name, t.partition))
    quarantined = pl.read_parquet(paths.quarantine_file(t.name, t.partition))
    assert (valid.height, quarantined.height) == (rows_in - outcome.rows, outcome.rows)
    assert set(valid["_source_row"]).isdisjoint(quarantined["_source_row"])
    if outcome.rule:
        assert all(outcome.rule in reasons.split("; ") for reasons in quarantined["_rules_failed"])
    [landed] = landing_dir.glob("*.parquet")
    assert pl.read_parquet(landed).height == rows_in and not landed.stat().st_mode & 0o222
    if outcome.rule == UNIQUE_RULE:
        [conflicts] = meta["key_conflicts"].values()
        assert len(conflicts) == K and all(f"differ in ['{t.varied}']" in c for c in conflicts)
    if outcome.rule == DUPLICATE_RULE:  # the first copy of each re-sent row stays valid
        assert valid.height == clean_rows
    if fault is add_extra_column:
        assert metadata(result, f"raw_{t.name}")["extra_columns_ignored"] == ["loaded_by"]


@pytest.mark.parametrize("t", TABLE_CASES.values(), ids=TABLE_CASES)
def test_a_refused_file_leaves_the_previous_landing_and_validated_copies(
    t: Table, platform_home: Path, raw_dir: Path
) -> None:
    paths = PlatformPaths(platform_home)
    materialize([f"raw_{t.name}", t.name], platform_home, raw_dir, t.partition)
    validated = paths.validated_file(t.name, t.partition)
    before = (sha256(validated), sorted(paths.landing_dir(t.name, t.partition).iterdir()))
    truncated(raw_dir / t.file)
    result = materialize([f"raw_{t.name}", t.name], platform_home, raw_dir, t.partition, raise_on_error=False)
    assert not result.success
    assert (sha256(validated), sorted(paths.landing_dir(t.name, t.partition).iterdir())) == before


def test_a_year_in_the_future_lands_apart_and_every_row_is_counted(platform_home: Path, raw_dir: Path) -> None:
    t = TABLE_CASES["weather"]
    clean_rows = partition_rows(raw_dir, t)
    set_targets(t, "year", "2031")(raw_dir / t.file)
    result = materialize(["raw_weather", "weather"], platform_home, raw_dir, t.partition)
    assert metadata(result, "raw_weather")["rows_unroutable"] == K
    assert metadata(result, "weather")["rows_in"] + K == clean_rows
    [stray] = (PlatformPaths(platform_home).landing / "weather" / "_unroutable").glob("*.parquet")
    assert pl.read_parquet(stray)["year"].to_list() == [2031] * K


def test_a_changed_file_for_a_processed_month_is_reprocessed_from_the_new_copy_alone(
    platform_home: Path, raw_dir: Path
) -> None:
    t = TABLE_CASES["weather"]
    paths = PlatformPaths(platform_home)
    first = materialize(["raw_weather", "weather"], platform_home, raw_dir, t.partition)
    old_sha = metadata(first, "raw_weather")["source_sha256"]
    set_targets(t, "wind_speed", "-3.5")(raw_dir / t.file)
    second = materialize(["raw_weather", "weather"], platform_home, raw_dir, t.partition)
    raw_meta = metadata(second, "raw_weather")
    assert raw_meta["source_changed"] == {t.partition: old_sha}
    assert len(list(paths.landing_dir("weather", t.partition).glob("*.parquet"))) == 2
    valid = pl.read_parquet(paths.validated_file("weather", t.partition))
    quarantined = pl.read_parquet(paths.quarantine_file("weather", t.partition))
    # never mixed: every row of the partition comes from the new file
    assert set(valid["_source_sha256"]) | set(quarantined["_source_sha256"]) == {raw_meta["source_sha256"]}
    assert quarantined.height == K


def test_a_changed_file_is_refused_when_so_configured_and_nothing_is_written(platform_home: Path, raw_dir: Path) -> None:
    t = TABLE_CASES["planes"]
    paths = PlatformPaths(platform_home)
    first = materialize(["raw_planes", "planes"], platform_home, raw_dir)
    before = (sha256(paths.validated_file("planes")), sorted(paths.landing_dir("planes").iterdir()))
    set_targets(t, "seats", "9999")(raw_dir / t.file)
    refused = materialize(
        ["raw_planes", "planes"], platform_home, raw_dir, raise_on_error=False,
        run_config={"ops": {"raw_planes": {"config": {"on_changed_source": "refuse"}}}},
    )
    assert not refused.success
    message = failure_message(refused)
    assert "rule 'source unchanged for a landed partition'" in message
    assert metadata(first, "raw_planes")["source_sha256"] in message
    assert (sha256(paths.validated_file("planes")), sorted(paths.landing_dir("planes").iterdir())) == before


def test_landing_the_same_file_twice_is_a_no_op_with_a_clear_message(platform_home: Path, raw_dir: Path) -> None:
    paths = PlatformPaths(platform_home)
    materialize(["raw_airports"], platform_home, raw_dir)
    folder = paths.landing_dir("airports")
    before = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    with dg.DagsterInstance.ephemeral() as instance:
        again = materialize(["raw_airports"], platform_home, raw_dir, instance=instance)
        messages = [entry.user_message for entry in instance.all_logs(again.run_id)]
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == before
    assert metadata(again, "raw_airports")["already_landed"] is True
    assert any("is already landed at" in m and m.endswith("nothing written") for m in messages), messages
