"""What the model server exports on `/metrics` (Prometheus text, beside KServe's own histograms).

Per model, protocol and variant: requests by HTTP status (errors included: a 400 has the variant
`none`, as no variant answered it), and the latency from the request's arrival to its answer's
headers. Per model, variant and registered version: instances scored. Per model: the request log's
rows written, rows dropped when its buffer was full, failed writes and rows waiting in memory.

The latency is taken by an ASGI middleware around KServe's routes, so it includes KServe's parsing
and encoding; the model tells it which variants answered through a per-request `Outcome`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable, Collection, MutableMapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

# Milliseconds matter here: the goal is a 1-row p99 of 4 ms.
LATENCY_BUCKETS = (0.001, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

REQUESTS = Counter(
    "model_requests", "Inference requests answered, by model, protocol, variant and HTTP status.",
    ["model", "protocol", "variant", "status"],
)
LATENCY = Histogram(
    "model_request_duration_seconds", "Time from a request's arrival to its answer, by model, "
    "protocol and variant.", ["model", "protocol", "variant"], buckets=LATENCY_BUCKETS,
)
INSTANCES = Counter(
    "model_instances", "Flights scored, by model, variant and registered version (shadow scores "
    "included).", ["model", "variant", "model_version"],
)
LOG_ROWS_WRITTEN = Counter("request_log_rows_written", "Request log rows written to parquet.", ["model"])
LOG_ROWS_DROPPED = Counter(
    "request_log_rows_dropped", "Answered rows the request log could not keep: its buffer was full.", ["model"]
)
LOG_WRITE_FAILURES = Counter(
    "request_log_write_failures", "Failed request log writes (their rows stay buffered and are retried).",
    ["model"],
)
LOG_ROWS_BUFFERED = Gauge("request_log_rows_buffered", "Request log rows in memory, not yet written.", ["model"])


@dataclass
class Outcome:
    """Filled in by the model while it answers: which variants answered the request's flights."""

    variants: set[str] = field(default_factory=set)

    @property
    def variant(self) -> str:
        return "+".join(sorted(self.variants)) or "none"


CURRENT: ContextVar[Outcome | None] = ContextVar("serving_outcome", default=None)
_ROUTE = re.compile(r"^/(v1)/models/([^/:]+):predict$|^/(v2)/models/([^/]+)(?:/versions/[^/]+)?/infer$")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def record_answer(variants: Collection[str]) -> None:
    outcome = CURRENT.get()
    if outcome is not None:
        outcome.variants.update(variants)


class RequestMetrics:
    """Pure ASGI middleware (no per-request task or body copy) counting the inference routes."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]], models: Collection[str]) -> None:
        self.app = app
        self.models = frozenset(models)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = _ROUTE.match(scope.get("path", "")) if scope["type"] == "http" else None
        if route is None:
            await self.app(scope, receive, send)
            return
        protocol = route[1] or route[3]
        name = route[2] or route[4]
        model = name if name in self.models else "unknown"
        started = time.perf_counter()
        status = 500  # unless a response starts: an exception no handler turned into one

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        outcome = Outcome()
        token = CURRENT.set(outcome)
        try:
            await self.app(scope, receive, send_status)
        finally:
            CURRENT.reset(token)
            variant = outcome.variant
            LATENCY.labels(model, protocol, variant).observe(time.perf_counter() - started)
            REQUESTS.labels(model, protocol, variant, str(status)).inc()
