"""OTLP ``AnyValue`` → the string form kept in the raw attribute maps."""

from __future__ import annotations

import base64
import json
from typing import Any

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue


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
    py = to_python(value)
    return None if py is None else json.dumps(py, separators=(",", ":"))


def attr_map(attributes: Any) -> list[tuple[str, str | None]]:
    """Repeated ``KeyValue`` → list of pairs (Arrow's map form); later duplicates win."""
    out: dict[str, str | None] = {}
    kv: KeyValue
    for kv in attributes:
        out[kv.key] = to_text(kv.value)
    return list(out.items())
