"""OTLP/JSON → protobuf messages.

OTLP/JSON encodes trace and span ids as hex, where protobuf's JSON mapping expects base64;
``json_format`` would silently decode them into garbage ids (measured: the
specification's example trace id parsed into a 24-byte id, with no error). So ids are
rewritten to base64 first, then the standard parser runs with unknown fields ignored, as
the OTLP specification requires.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message

_ID_KEYS = {"traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id"}


def _fix_ids(node: Any) -> Any:
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            if k in _ID_KEYS and isinstance(v, str):
                try:
                    raw = bytes.fromhex(v)
                except ValueError as e:
                    raise ValueError(f"{k} {v!r} is not hex") from e
                out[k] = base64.b64encode(raw).decode()
            else:
                out[k] = _fix_ids(v)
        return out
    if isinstance(node, list):
        return [_fix_ids(v) for v in node]
    return node


def parse_json(body: bytes, message: Message) -> Message:
    """Parse an OTLP/JSON body into ``message``; raises ``ValueError`` with a reason."""
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"body is not JSON: {e}") from e
    if not isinstance(doc, dict):
        raise ValueError("OTLP/JSON body must be an object")
    try:
        return json_format.ParseDict(_fix_ids(doc), message, ignore_unknown_fields=True)
    except json_format.ParseError as e:
        raise ValueError(f"not a valid OTLP message: {e}") from e
