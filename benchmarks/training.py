"""Training throughput: the asset's ensemble training next to a bare torch loop over the same tensors.

    .venv/bin/python benchmarks/training.py [--device cpu|cuda|auto] [--training-set PATH] [--rows N]

Both sides train the same network (`TabularNet`) from the same seed on the same device-resident
tensors with the same batch size (and bf16 autocast on CUDA). The platform side is
`platform_assets.ml.loop.train_tensors` as the training asset runs it: all
`--ensemble-size` members stacked into one network, validation pass, early-stopping bookkeeping and
per-epoch MLflow logging included. The bare side trains one network: shuffle, forward, backward,
step, nothing else; the ensemble's floor is that loop run once per member. The MLflow share is the
time spent in the per-epoch logging callback over the epoch time. Without --training-set a
synthetic frame with the training set's columns is generated in memory (a real one:
$PLATFORM_HOME/features/training_sets/delay_training_set_2013-01_2013-04.parquet).

On a GPU machine without polars or MLflow, prepare the tensors here and carry them over:
`--training-set X.parquet --export-tensors t.npz` here, `--tensors t.npz --device cuda` there.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from platform_assets.ml.loop import (
    Tensors,
    _autocast,
    configure_threads,
    make_optimiser,
    predict_logits,
    resolve_device,
    seed_everything,
    train_tensors,
)
from platform_assets.ml.metrics import rank_auc
from platform_assets.ml.network import TabularNet
from platform_assets.ml.params import TrainParams

NUMERIC = (
    "distance",
    "temp",
    "dewp",
    "humid",
    "wind_dir",
    "wind_speed",
    "wind_gust",
    "precip",
    "pressure",
    "visib",
    "carrier_flights_7d",
    "carrier_delay_rate_7d",
    "carrier_mean_arr_delay_7d",
    "carrier_flights_28d",
    "carrier_delay_rate_28d",
    "route_flights_28d",
    "route_delay_rate_28d",
    "route_mean_arr_delay_28d",
    "plane_age_years",
    "plane_seats",
    "plane_engines",
)


def synthetic_frame(rows: int, seed: int = 0):
    import polars as pl

    rng = np.random.default_rng(seed)
    start = np.datetime64("2013-01-01T00:00:00", "us")
    seconds = np.sort(rng.integers(0, 150 * 86400, rows))
    frame = {name: rng.normal(size=rows) for name in NUMERIC}
    frame["wind_gust"] = np.where(rng.random(rows) < 0.7, np.nan, frame["wind_gust"])
    logit = -1.3 + 0.8 * frame["precip"] + 0.5 * frame["carrier_delay_rate_7d"]
    return pl.DataFrame(
        {
            "flight_id": np.arange(rows).astype(str),
            "event_timestamp": pl.Series(
                start + (seconds * 1_000_000).astype("timedelta64[us]")
            ).dt.replace_time_zone("UTC"),
            "origin": rng.choice(["EWR", "JFK", "LGA"], rows),
            "dest": rng.choice([f"D{i:02d}" for i in range(100)], rows),
            "carrier": rng.choice([f"C{i}" for i in range(16)], rows),
            "sched_dep_hour": rng.integers(5, 24, rows),
            "sched_dep_dow": rng.integers(1, 8, rows),
            **frame,
            "is_delayed": (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(np.int32),
        }
    ).with_columns(pl.col(c).fill_nan(None) for c in NUMERIC)


def bare_loop(
    train: Tensors, model: nn.Module, params: TrainParams, device: torch.device, epochs: int
) -> float:
    """The least a training loop can do: shuffle, forward, backward, step. Returns samples/s."""
    seed_everything(params.seed)
    amp = params.mixed_precision and device.type == "cuda"
    optimiser = make_optimiser(model, params, device)
    loss_fn = nn.BCEWithLogitsLoss()
    data = train.to(device)
    generator = torch.Generator().manual_seed(params.seed)
    n = len(data)
    model.train()
    _sync(device)
    started = time.perf_counter()
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator).to(device)
        for start in range(0, n, params.batch_size):
            idx = order[start : start + params.batch_size]
            with _autocast(device, amp):
                logits = model(data.numeric[idx], data.categorical[idx])
            loss = loss_fn(logits.float(), data.label[idx])
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
    _sync(device)
    return n * epochs / (time.perf_counter() - started)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def mlflow_callback(tmp: Path):
    try:
        import mlflow
    except ImportError:
        print("mlflow is not installed here: the platform side runs without per-epoch logging")
        return None, None
    mlflow.set_tracking_uri(f"sqlite:///{tmp / 'mlflow.db'}")
    experiment = mlflow.create_experiment("bench", artifact_location=(tmp / "artifacts").as_uri())
    run = mlflow.start_run(experiment_id=experiment)

    def log(member: int, epoch: int, metrics: dict[str, float]) -> None:
        mlflow.log_metrics({f"member_{member}/{k}": v for k, v in metrics.items()}, step=epoch)

    return log, run


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto")
    parser.add_argument(
        "--training-set", type=Path, help="a training-set parquet (default: synthetic)"
    )
    parser.add_argument("--rows", type=int, default=120_000, help="synthetic rows")
    parser.add_argument(
        "--tensors", type=Path, help="prepared tensors (.npz from --export-tensors)"
    )
    parser.add_argument(
        "--export-tensors", type=Path, help="write the prepared tensors here and stop"
    )
    parser.add_argument("--epochs", type=int, default=3, help="epochs per ensemble member")
    parser.add_argument(
        "--ensemble-size",
        type=int,
        default=TrainParams().ensemble_size,
        help="networks the platform side trains at once (the bare side trains one)",
    )
    parser.add_argument("--batch-size", type=int, default=TrainParams().batch_size)
    args = parser.parse_args()

    device = resolve_device(args.device)
    threads = configure_threads()
    # patience > epochs: both sides run exactly `epochs` epochs.
    params = replace(
        TrainParams(),
        device=str(device),
        max_epochs=args.epochs,
        patience=args.epochs + 1,
        batch_size=args.batch_size,
        ensemble_size=args.ensemble_size,
    )
    if args.tensors:
        train, valid, n_numeric, cardinalities = load_tensors(args.tensors)
    else:
        import polars as pl

        from platform_assets.ml.declaration import declared
        from platform_assets.ml.training import prepare

        MODEL = declared("delay").spec

        frame = (
            pl.read_parquet(args.training_set) if args.training_set else synthetic_frame(args.rows)
        )
        preprocessor, train, valid, _ = prepare(frame, params, MODEL.columns)
        n_numeric, cardinalities = preprocessor.n_inputs, preprocessor.cardinalities
        if args.export_tensors:
            save_tensors(args.export_tensors, train, valid, n_numeric, cardinalities)
            print(f"wrote {args.export_tensors}: {len(train)} train / {len(valid)} validation rows")
            return
    print(
        f"device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else f'{threads} threads'}), "
        f"torch {torch.__version__}, {len(train)} train / {len(valid)} validation rows, batch {params.batch_size}, "
        f"{args.epochs} epochs x {params.ensemble_size} members, bf16 autocast {'on' if device.type == 'cuda' and params.mixed_precision else 'off'}"
    )

    def new_model() -> TabularNet:
        return TabularNet(n_numeric, cardinalities, params.hidden_sizes, params.dropout).to(device)

    # Warm-up (allocator, kernels) so neither side pays first-use costs.
    head = Tensors(train.numeric[:20_000], train.categorical[:20_000], train.label[:20_000])
    bare_loop(head, new_model(), params, device, 1)
    train_tensors(head, valid, n_numeric, cardinalities, replace(params, max_epochs=1))

    with tempfile.TemporaryDirectory() as tmp:
        callback, run = mlflow_callback(Path(tmp))
        result = train_tensors(
            train, valid, n_numeric, cardinalities, params, on_epoch_end=callback
        )
        if run is not None:
            import mlflow

            mlflow.end_run()
    seed_everything(params.seed)
    bare = bare_loop(train, new_model(), params, device, args.epochs)
    platform = result.samples_trained / result.loop_seconds
    floor = result.samples_trained / bare  # the bare loop once per member-epoch trained
    epoch_time = sum(result.epoch_seconds)
    val_auc = rank_auc(valid.label.numpy(), predict_logits(result.model, valid).numpy())
    print(
        f"platform ensemble   : {result.loop_seconds:8.2f} s  {platform:12,.0f} samples/s  "
        f"({params.ensemble_size} members at once, {len(result.history)} member-epochs; "
        f"validation pass + early stopping + MLflow logging included)"
    )
    print(
        f"bare torch floor    : {floor:8.2f} s  {bare:12,.0f} samples/s  "
        f"(one network at a time, nothing but shuffle/forward/backward/step)"
    )
    print(f"ratio               : {platform / bare:.2f}x the bare loop's samples/s")
    print(
        f"MLflow logging      : {result.callback_seconds * 1000:.1f} ms over {len(result.history)} "
        f"member-epochs = {result.callback_seconds / epoch_time:.2%} of epoch time  (goal <= 5%)"
    )
    print(f"ensemble val_auc    : {val_auc:.4f}")


def save_tensors(
    path: Path, train: Tensors, valid: Tensors, n_numeric: int, cardinalities: list[int]
) -> None:
    np.savez_compressed(
        path,
        **{
            f"{side}_{part}": getattr(data, part).numpy()
            for side, data in (("train", train), ("valid", valid))
            for part in ("numeric", "categorical", "label")
        },
        n_numeric=np.array(n_numeric),
        cardinalities=np.array(cardinalities),
    )


def load_tensors(path: Path) -> tuple[Tensors, Tensors, int, list[int]]:
    z = np.load(path)
    sides = [
        Tensors(
            *(torch.from_numpy(z[f"{side}_{part}"]) for part in ("numeric", "categorical", "label"))
        )
        for side in ("train", "valid")
    ]
    return sides[0], sides[1], int(z["n_numeric"]), [int(c) for c in z["cardinalities"]]


if __name__ == "__main__":
    main()
