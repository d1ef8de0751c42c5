"""What a receiver hands over (a :class:`Job`) and what it gets back (an :class:`Outcome`).

Transport-neutral and small, so a job can run in this process or in a worker process
(:mod:`collector.workers`); each receiver maps the outcome to its own status codes.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_BODY_BYTES = 20 * 1024 * 1024  # OTLP's recommended limit, applied after decompression

OK = "ok"
INVALID = "invalid"  # bad data: HTTP 400 / INVALID_ARGUMENT, not retried
TOO_LARGE = "too_large"  # over MAX_BODY_BYTES once decompressed: HTTP 413
UNAVAILABLE = "unavailable"  # back-pressure or a failed write: 503 + Retry-After / UNAVAILABLE
INTERNAL = "internal"  # a bug: HTTP 500 / INTERNAL, logged with its traceback

RETRY_AFTER_S = 1


@dataclass(frozen=True)
class Job:
    signal: str  # "traces" | "metrics"
    body: bytes
    json: bool = False
    gzip: bool = False


@dataclass(frozen=True)
class Outcome:
    status: str
    message: str = ""
    response: bytes = b""  # the serialized Export*ServiceResponse, when OK
    accepted: int = 0
    rejected: int = 0
    span_keys: bytes = b""  # uint64 hashes of the accepted spans' ids (retries are counted)
    flushes: tuple[float, ...] = ()  # seconds of each group commit since the last outcome
