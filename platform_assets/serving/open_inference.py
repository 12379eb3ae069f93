"""The Open Inference Protocol (KServe v2) of a served model: its metadata, requests, answers.

A v2 request carries one tensor per request field, one value per flight, named as in `flights.csv`:

    POST /v2/models/flight_delay_model/infer
    {"inputs": [{"name": "origin", "datatype": "BYTES", "shape": [2], "data": ["EWR", "JFK"]},
                {"name": "distance", "datatype": "FP64", "shape": [2], "data": [1400, 1089]}, ...]}

`GET /v2/models/<model>` lists every input (`INPUTS`: name, datatype, shape [-1]) and output, so a
client builds a request from the metadata alone. Tensors become the instances of a v1 body and go
through the same checks (`instances.parse_instances`); a broken rule names the input and the flight's
position in it (`sched_dep_time[3]`). Inputs a flight may lack (tailnum, hour, minute, time_hour)
may be left out; an empty tailnum is an unknown one.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

import numpy as np
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse

from platform_assets.serving.instances import (
    AFTER_DEPARTURE,
    MAX_INSTANCES,
    REQUIRED,
    Flight,
    RequestError,
    parse_instances,
)

# Every field of a request instance, in flights.csv's order, with the datatype the metadata states.
INPUTS: dict[str, str] = {
    "year": "INT64",
    "month": "INT64",
    "day": "INT64",
    "sched_dep_time": "INT64",
    "sched_arr_time": "INT64",
    "carrier": "BYTES",
    "flight": "INT64",
    "tailnum": "BYTES",
    "origin": "BYTES",
    "dest": "BYTES",
    "distance": "FP64",
    "hour": "INT64",
    "minute": "INT64",
    "time_hour": "BYTES",
}
_INTEGERS = frozenset({"INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"})
# What a tensor of each stated datatype may be sent as: any integer width for an integer, any
# number for a float, strings only as BYTES.
ACCEPTED: dict[str, frozenset[str]] = {
    "INT64": _INTEGERS,
    "FP64": _INTEGERS | {"FP32", "FP64"},
    "BYTES": frozenset({"BYTES"}),
}
OUTPUTS = ("variant", "model_version", "missing_features")
"""Besides the probability (named by the model's declaration, e.g. `delay_probability`): the variant
and registered version that answered each flight, and the features it lacked (comma-separated)."""


def input_types() -> list[dict[str, Any]]:
    return [{"name": name, "datatype": datatype, "shape": [-1]} for name, datatype in INPUTS.items()]


def output_types(prediction: str) -> list[dict[str, Any]]:
    return [
        {"name": prediction, "datatype": "FP64", "shape": [-1]},
        *({"name": name, "datatype": "BYTES", "shape": [-1]} for name in OUTPUTS),
    ]


def parse_request(
    request: InferRequest, origins: Collection[str], airports: Collection[str]
) -> list[Flight]:
    """Flights of a v2 request, or RequestError naming every broken rule (input and position)."""
    columns = _columns(request)
    rows = len(next(iter(columns.values())))
    instances = [{name: values[i] for name, values in columns.items()} for i in range(rows)]
    for instance in instances:
        if instance.get("tailnum") == "":
            instance["tailnum"] = None
    return parse_instances(instances, origins, airports, _v2_name)


def _v2_name(index: int, field: str) -> str:
    return f"{field}[{index}]" if field else f"inputs (flight {index})"


def _columns(request: InferRequest) -> dict[str, list[Any]]:
    """The request's tensors as equal-length columns, or RequestError for the tensors themselves:
    unknown or repeated names, datatypes, shapes, lengths, required inputs left out."""
    if not request.inputs:
        raise RequestError([("inputs", "non-empty list of input tensors", "got none")])
    problems: list[tuple[str, str, str]] = []
    columns: dict[str, list[Any]] = {}
    for tensor in request.inputs:
        name = tensor.name
        if name in columns:
            problems.append((name, "one tensor per input", "given more than once"))
        elif name not in INPUTS and name not in AFTER_DEPARTURE:
            problems.append((name, f"an input of this model ({', '.join(INPUTS)})", "unknown input"))
        elif name in INPUTS and tensor.datatype not in ACCEPTED[INPUTS[name]]:
            problems.append((name, f"datatype {INPUTS[name]}", f"got {tensor.datatype}"))
        else:
            values, broken = _values(name, tensor.shape, tensor.data)
            problems += broken
            columns[name] = values
    problems += [(f, "required input", "missing") for f in REQUIRED if f not in columns]
    if not problems:
        problems = _lengths(columns)
    if problems:
        raise RequestError(problems)
    return columns


def _values(name: str, shape: Sequence[int], data: Any) -> tuple[list[Any], list[tuple[str, str, str]]]:
    """The tensor's values, one per flight: shape [N] (or [N, 1]) and N scalars."""
    if isinstance(data, np.ndarray):  # binary tensor data, decoded by KServe
        data = data.tolist()
    if not isinstance(data, list):
        return [], [(name, "data: a list of values", f"got {type(data).__name__}")]
    if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)):
        return [], [(name, "shape [N] or [N, 1]: one value per flight", f"got {list(shape)}")]
    if len(shape) == 2:
        data = [v[0] if isinstance(v, list) and len(v) == 1 else v for v in data]
    if shape[0] != len(data) or any(isinstance(v, list | dict) for v in data):
        detail = f"shape {list(shape)}, {len(data)} values"
        return [], [(name, "data: one scalar per flight, as many as the shape says", detail)]
    return data, []


def _lengths(columns: dict[str, list[Any]]) -> list[tuple[str, str, str]]:
    """Every input as long as the first, at least one flight and at most MAX_INSTANCES."""
    first, values = next(iter(columns.items()))
    rows = len(values)
    if not 1 <= rows <= MAX_INSTANCES:
        return [("inputs", f"1 to {MAX_INSTANCES} flights per request", f"{first} has {rows} values")]
    return [
        (name, "as many values as the other inputs", f"{len(v)} values, {first} has {rows}")
        for name, v in columns.items()
        if len(v) != rows
    ]


def response(
    request: InferRequest,
    model_name: str,
    prediction: str,
    scores: Sequence[float],
    details: Sequence[tuple[str, str, Sequence[str]]],
    request_id: str,
) -> InferResponse | dict[str, Any]:
    """The answer: the probability per flight, and its variant, version and missing features."""
    variants, versions, missing = (list(column) for column in zip(*details))
    columns: list[tuple[str, str, list[Any]]] = [
        (prediction, "FP64", list(scores)),
        ("variant", "BYTES", variants),
        ("model_version", "BYTES", versions),
        ("missing_features", "BYTES", [",".join(m) for m in missing]),
    ]
    if not request.use_binary_outputs and not request.request_outputs:
        # Plain JSON, as KServe's InferResponse.to_rest would write it, without its round trip of
        # every output through numpy.
        return {
            "id": request.id or request_id,
            "model_name": model_name,
            "model_version": None,
            "outputs": [{"name": n, "shape": [len(v)], "datatype": t, "data": v} for n, t, v in columns],
            "parameters": {"request_id": request_id},
        }
    # Binary tensors or a chosen subset of outputs were asked for: KServe encodes them.
    numpy_type = {"FP64": np.float64, "BYTES": np.object_}
    return InferResponse(
        response_id=request.id or request_id,
        model_name=model_name,
        infer_outputs=[InferOutput(n, [len(v)], t, data=np.asarray(v, dtype=numpy_type[t])) for n, t, v in columns],
        parameters={"request_id": request_id},
        use_binary_outputs=request.use_binary_outputs,
        requested_outputs=request.request_outputs,
    )


def validation_error(errors: Sequence[dict[str, Any]], body: Any) -> RequestError:
    """A v2 body that is not an inference request (FastAPI's validation of KServe's InferenceRequest)
    as the broken rules of the fields it names, with the input's name where the body gives it."""
    problems = []
    for error in errors:
        # loc is ("body", <Union branch>, "inputs", 0, "datatype"); the branch that expected raw
        # bytes (KServe's binary extension) says nothing a JSON client can use.
        loc = [p for p in error.get("loc", ()) if p not in ("body", "InferenceRequest")]
        if loc[:1] == ["bytes"]:
            continue
        if error.get("type") == "json_invalid":
            reason = (error.get("ctx") or {}).get("error", "")
            problems.append(("body", "JSON object", f"not valid JSON at character {loc[-1] if loc else 0}: {reason}"))
            continue
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".") or "body"
        if len(loc) > 1 and loc[0] == "inputs" and isinstance(loc[1], int):
            named = _input_name(body, loc[1])
            where += f" (input {named!r})" if named else ""
        got = error.get("input", None)
        detail = "missing" if error.get("type") == "missing" else f"got {got!r:.60}"
        problems.append((where, str(error.get("msg", "invalid")), detail))
    return RequestError(problems or [("body", "Open Inference request", "not one")])


def _input_name(body: Any, index: int) -> str | None:
    try:
        name = body["inputs"][index]["name"]
    except (KeyError, IndexError, TypeError):
        return None
    return name if isinstance(name, str) else None
