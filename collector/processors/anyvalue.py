"""OTLP ``AnyValue`` → the string form kept in the raw attribute maps."""

from __future__ import annotations

import base64
import json
import math
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue


def to_python(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [to_python(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: to_python(kv.value) for kv in value.kvlist_value.values}
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    return getattr(value, kind)


def to_text(value: AnyValue) -> str | None:
    """Strings stay verbatim; everything else is JSON, so SQL can cast or parse it."""
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "int_value":  # the hot scalars, spelled exactly as json.dumps would
        return str(value.int_value)
    if kind == "bool_value":
        return "true" if value.bool_value else "false"
    if kind == "double_value":
        return double_text(value.double_value)
    py = to_python(value)
    return None if py is None else json.dumps(py, separators=(",", ":"))


def doubles_text(values: pa.Array) -> pa.Array:
    """Finite doubles as the shortest JSON number that reads back the same (Arrow's, in C++:
    ``1``, ``0.05``, ``1e-7``)."""
    return pc.cast(values, pa.string())


def double_text(x: float) -> str:
    """One double as :func:`doubles_text` writes it; JSON spells NaN and ±Infinity."""
    return doubles_text(pa.array([x]))[0].as_py() if math.isfinite(x) else json.dumps(x)


def attr_map(attributes: Any) -> dict[str, str | None]:
    """Repeated ``KeyValue`` → a dict (Arrow builds its map from it); later duplicates win."""
    return {kv.key: to_text(kv.value) for kv in attributes}
