"""Every declared model (defs/models/<model>/defs.yaml with `serving.enabled`) on one KServe model
server: `make serve` (127.0.0.1:8080), a route per model on both KServe protocols (`served_model`):

    POST /v1/models/<name>:predict   {"instances": [...]}           (KServe v1)
    POST /v2/models/<name>/infer     {"inputs": [...]}              (Open Inference Protocol, v2)
    GET  /v2/models/<name>           inputs and outputs a v2 client builds its request from

Health and readiness at KServe's paths (`GET /`, `GET /v1/models/<model>`, `/v2/health/ready`);
`GET /v1/models` lists the models; `GET /metrics` is Prometheus text (`server_metrics`).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import kserve

from platform_assets.ml.declaration import MODELS_DIR, ModelDeclaration, load_declarations
from platform_assets.ml.registry import CHAMPION, alias_version
from platform_assets.paths import PlatformPaths
from platform_assets.serving import open_inference
from platform_assets.serving.features import OnlineFeatures, feature_store
from platform_assets.serving.request_log import MAX_BUFFERED_ROWS, RequestLogWriter
from platform_assets.serving.request_log_files import request_log_dir
from platform_assets.serving.rollout import MODES, AliasWatcher, Rollout
from platform_assets.serving.served_model import ServedModel
from platform_assets.serving.server_metrics import RequestMetrics

if TYPE_CHECKING:
    from mlflow import MlflowClient

# Named, not __name__: run with `python -m`, this module is __main__.
log = logging.getLogger("platform_assets.serving.server")


class LocalModelServer(kserve.ModelServer):
    """KServe's ModelServer bound to one host (its REST server listens on 0.0.0.0), REST only, with
    the platform's /metrics counters, v2 body errors that name the field, and the request logs
    flushed after the last answer."""

    def __init__(self, host: str, http_port: int) -> None:
        # Latency logging off: three log lines per request cost more than scoring a flight.
        super().__init__(
            http_port=http_port, enable_grpc=False, workers=1, enable_latency_logging=False
        )
        self.host = host
        self._models: list[ServedModel] = []
        self.dataplane = _checked_dataplane(self.registered_models)

    def start(self, models: list[ServedModel]) -> None:  # type: ignore[override]
        from fastapi.exceptions import RequestValidationError
        from kserve.constants.constants import FASTAPI_APP_IMPORT_STRING
        from kserve.model_server import app

        self._models = models
        app.add_middleware(RequestMetrics, models=[m.name for m in models])
        app.add_exception_handler(RequestValidationError, _invalid_v2_body)
        self._register_and_check_atleast_one_model_is_ready(models)
        self._rest_server = _rest_server_class()(
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
        try:
            # uvicorn handles SIGTERM and SIGINT while it serves: it stops accepting, lets the
            # requests in flight finish, then hands the signal back to `stop`.
            asyncio.run(self._serve())
        finally:
            # Every answer is given now: write what the request logs still hold.
            for model in self._models:
                model.stop()

    def stop(self, sig: int) -> None:
        log.info("signal %s: stopping after the requests in flight", sig)
        if self._rest_server is not None:
            self._rest_server._server.should_exit = True


def _rest_server_class() -> type:
    from kserve.protocol.rest.server import RESTServer

    class QuietRESTServer(RESTServer):
        """KServe's REST server without its timing middleware: it only feeds the trace log (silenced
        here: latency logging is off) and costs a route lookup and two getrusage calls per request;
        /metrics has the latency per model and variant (`server_metrics`)."""

        def create_application(self) -> None:
            from kserve.model_server import app

            super().create_application()
            # By name: timing_asgi is KServe's dependency, not ours.
            app.user_middleware = [m for m in app.user_middleware if m.cls.__name__ != "TimingMiddleware"]

    return QuietRESTServer


def _checked_dataplane(registry: Any) -> Any:
    from kserve.errors import InvalidInput
    from kserve.protocol.dataplane import DataPlane

    class CheckedDataPlane(DataPlane):
        """KServe's data plane, with a malformed binary v2 body (the protocol's binary extension,
        decoded by KServe before any model sees it) a 400 naming the body and the rule instead of
        a 500 ("KeyError : 'inputs'")."""

        def decode_inference_request(self, body: Any, headers: Any, model_name: str) -> Any:
            try:
                return super().decode_inference_request(body, headers, model_name)
            except InvalidInput:
                raise
            except (KeyError, IndexError, TypeError, ValueError) as exc:
                rule = "Open Inference binary request (a JSON header with inputs, then their tensors)"
                raise InvalidInput(f"body: rule '{rule}' broken: {type(exc).__name__} {exc}") from None

    return CheckedDataPlane(model_registry=registry)


async def _invalid_v2_body(request: Any, exc: Any) -> Any:
    """A body FastAPI could not read as an Open Inference request: 400 naming each field and rule."""
    from fastapi.responses import JSONResponse

    error = open_inference.validation_error(exc.errors(), getattr(exc, "body", None))
    return JSONResponse(status_code=400, content={"error": str(error)})


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
    parser.add_argument("--serve-model", action="append", default=None, metavar="NAME",
                        help="serve only this declared model (registered name; repeatable); default: every "
                        "model declared with serving.enabled")
    parser.add_argument("--alias-poll-seconds", type=float, default=5.0,
                        help="how often the registry's aliases are read (a moved alias is served after this)")
    parser.add_argument("--log-flush-seconds", type=float, default=1.0,
                        help="how often the request log is written; SIGKILL loses the rows answered since the last "
                        "write began: about this much traffic")
    parser.add_argument("--log-max-rows", type=int, default=MAX_BUFFERED_ROWS,
                        help="request log rows kept in memory at most; answered rows beyond are counted as dropped")
    parser.add_argument("--platform-home", default=str(current.home))
    parser.add_argument("--tracking-uri", default=current.mlflow_tracking_uri)
    parser.add_argument("--feature-repo", default=str(FEATURE_REPO_DIR))
    parser.add_argument("--feature-store-yaml", default=current.feature_store_yaml)
    return parser.parse_args(argv)


def served_models(models_dir: Path, only: Sequence[str] | None = None) -> list[ModelDeclaration]:
    """The declarations with serving enabled (those named in `only`, when given), by registered name."""
    served = [d for d in load_declarations(models_dir).values() if d.serving.enabled]
    if not served:
        raise SystemExit(f"no model under {models_dir} declares serving.enabled: true")
    if only:
        unknown = sorted(set(only) - {d.name for d in served})
        if unknown:
            raise SystemExit(f"--serve-model {', '.join(unknown)}: not declared with serving.enabled under {models_dir}")
        served = [d for d in served if d.name in only]
    return served


def build_models(args: argparse.Namespace) -> list[ServedModel]:
    """One KServe model per served declaration, each with its rollout, alias watcher and request log."""
    paths = PlatformPaths(Path(args.platform_home).resolve())
    tracking_uri = args.tracking_uri or f"sqlite:///{paths.mlflow_dir / 'mlflow.db'}"
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    store = feature_store(Path(args.feature_repo), args.feature_store_yaml, paths)
    models = []
    client = mlflow_client_factory(tracking_uri)()
    for declared in served_models(Path(args.models_dir), args.serve_model):
        if alias_version(client, CHAMPION, declared.name) is None:
            # Never trained and promoted yet (`make run` replays the delay model only): left out.
            log.warning("%s is not served: it has no '%s' version yet", declared.name, CHAMPION)
            continue
        mode = args.rollout or declared.serving.rollout
        share = declared.serving.canary_percent if args.canary_percent is None else args.canary_percent
        writer = RequestLogWriter(
            request_log_dir(paths, declared.name), declared.name, args.log_flush_seconds, args.log_max_rows
        )
        models.append(
            ServedModel(
                declared.name,
                prediction=declared.spec.prediction,
                watcher=AliasWatcher(mlflow_client_factory(tracking_uri), declared.name, args.alias_poll_seconds),
                features=OnlineFeatures(store, declared.feature_service),
                rollout=Rollout(mode, share),
                request_log=writer,
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
    models = build_models(args)
    if not models:
        raise SystemExit("no declared model has a champion to serve: run `make run` (or train and promote one) first")
    for model in models:
        model.load()
        log.info("%s rollout %s", model.name, json.dumps({"mode": model.rollout.mode, "canary_percent": model.rollout.canary_percent}))
    server = LocalModelServer(args.host, args.port)
    # Every answer is in the request log (parquet); KServe's per-request timing lines and uvicorn's
    # access line would add three stdout writes to each request's latency. Errors still print. Set
    # after the ModelServer is built: it configures KServe's logging, levels included.
    for name in ("kserve.trace", "uvicorn.access"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # What is loaded now (torch, Feast, MLflow, the models: ~600,000 objects) lives as long as the
    # server: frozen out of the collector, a full collection takes ~4 ms instead of ~340 ms, a pause
    # every answer waiting behind it would carry.
    gc.collect()
    gc.freeze()
    # The request log's and the alias watcher's threads run Python now and then; the event loop
    # asking for the GIL gets it within 1 ms instead of 5 (measured stall of the loop while a
    # 500-row flush runs, 99.99th percentile: 1.2 ms instead of 5.2 ms).
    sys.setswitchinterval(0.001)
    server.start(models)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
