"""Strict checks of manifests against the Kubernetes API models of the `kubernetes` client."""

from __future__ import annotations

from typing import Any

from kubernetes.client import ApiClient

_API = ApiClient()


def _normalise(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _normalise(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_normalise(v) for v in value]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)  # quantities may be written as numbers
    return value


def as_model(data: Any, model: str) -> Any:
    """Deserialize into `model` (e.g. 'V1Job', 'list[V1Toleration]') and require a lossless round trip.

    The client's models ignore unknown keys, so a misspelt field would pass silently; comparing the
    round trip catches it, and required fields are enforced by client-side validation.
    """
    obj = _API._ApiClient__deserialize(data, model)  # the client's own JSON -> model path
    back = _API.sanitize_for_serialization(obj)
    assert _normalise(back) == _normalise(data), f"{model}: fields lost in round trip"
    return obj


def to_dict(obj: Any) -> dict[str, Any]:
    return _API.sanitize_for_serialization(obj)
