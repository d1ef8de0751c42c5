"""One export request, whatever its transport: decode, flatten, make durable, answer.

This is where the collector's CPU goes (decompression, protobuf parsing, flattening, the
group commit), so it is what runs in the worker processes (:mod:`collector.workers`);
receivers only frame requests and map the :class:`~collector.jobs.Outcome` to their codes.
"""

from __future__ import annotations

import logging
import threading
import zlib
from collections.abc import Callable
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import replace

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from google.protobuf.message import DecodeError, Message

from collector import jobs
from collector.batcher import DurableBatcher, Overloaded
from collector.jobs import Job, Outcome
from collector.processors.metrics import flatten_metrics
from collector.processors.otlp_json import parse_json
from collector.processors.traces import flatten_traces
from collector.signals import SIGNALS_BY_NAME

log = logging.getLogger(__name__)

ACK_TIMEOUT_S = 30.0

# (request, the request's bytes as received if at hand) → (rows, rejected, message)
FLATTEN: dict[str, Callable[[Message, bytes | None], tuple[pa.Table, int, str]]] = {
    "traces": flatten_traces, "metrics": flatten_metrics}


class _BodyTooLarge(Exception):
    pass


def _gunzip_bounded(body: bytes, limit: int) -> bytes:
    d = zlib.decompressobj(wbits=31)
    out = d.decompress(body, limit + 1)
    if len(out) > limit or d.unconsumed_tail:
        raise _BodyTooLarge
    return out


_FMIX = (np.uint64(33), np.uint64(0xFF51AFD7ED558CCD), np.uint64(0xC4CEB9FE1A85EC53))
_KEY_WIDTH = 48  # hex of a 16-byte trace id and an 8-byte span id (invalid ids are rejected)


def span_key_hashes(rows: pa.Table) -> np.ndarray:
    """A 64-bit hash of each row's trace id + span id, the same in every process (Python's
    ``hash`` of a string is salted per process, and workers must agree)."""
    keys = pc.binary_join_element_wise(rows["trace_id"], rows["span_id"], "").combine_chunks()
    if len(keys) == 0:
        return np.zeros(0, np.uint64)
    offsets = np.frombuffer(keys.buffers()[1], np.int32)[keys.offset:keys.offset + len(keys) + 1]
    if keys.null_count or not (np.diff(offsets) == _KEY_WIDTH).all():
        raise ValueError(f"span keys are not {_KEY_WIDTH} hex characters")
    data = np.frombuffer(keys.buffers()[2], np.uint8)[offsets[0]:offsets[-1]]
    words = data.view(np.uint64).reshape(-1, _KEY_WIDTH // 8)
    h = np.zeros(len(words), np.uint64)
    for i in range(words.shape[1]):
        h = _fmix64(h ^ words[:, i])
    return h


def _fmix64(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's finalizer: every input bit reaches every output bit, so ids that differ
    only in a few characters still spread over the duplicate counter's slots."""
    shift, m1, m2 = _FMIX
    h = (h ^ (h >> shift)) * m1
    h = (h ^ (h >> shift)) * m2
    return h ^ (h >> shift)


class Ingestor:
    """Runs jobs against one group-committing batcher; thread-safe."""

    def __init__(self, batcher: DurableBatcher) -> None:
        self.batcher = batcher
        self._flushes: list[float] = []
        self._lock = threading.Lock()
        batcher.on_commit = self._committed

    def _committed(self, seconds: float) -> None:
        with self._lock:
            self._flushes.append(seconds)

    def run(self, job: Job) -> Outcome:
        try:
            outcome = self._run(job)
        except Exception as e:  # a bug: say so, and keep serving
            log.exception("%s request failed", job.signal)
            outcome = Outcome(jobs.INTERNAL, f"internal error: {type(e).__name__}: {e}")
        with self._lock:  # every commit is reported once, with the next outcome
            flushes, self._flushes = tuple(self._flushes), []
        return replace(outcome, flushes=flushes) if flushes else outcome

    def _run(self, job: Job) -> Outcome:
        signal = SIGNALS_BY_NAME[job.signal]
        with self.batcher.expecting():  # a commit starting now waits for these rows
            decoded = self._decode(job)
            if isinstance(decoded, Outcome):
                return decoded
            rows, rejected, message = decoded
            try:
                future = self.batcher.submit(signal.table, rows) if rows.num_rows else None
            except Overloaded as e:
                return Outcome(jobs.UNAVAILABLE, str(e))
        if future is not None:
            try:
                future.result(timeout=ACK_TIMEOUT_S)
            except FutureTimeout:
                return Outcome(jobs.UNAVAILABLE,
                               f"write not confirmed within {ACK_TIMEOUT_S:.0f}s")
            except Exception as e:  # the sink's error: not acknowledged, the client retries
                return Outcome(jobs.UNAVAILABLE, f"write failed: {e}")
        response = signal.response_type()
        if rejected:
            ps = response.partial_success
            setattr(ps, signal.rejected_field, rejected)
            ps.error_message = message
        keys = span_key_hashes(rows).tobytes() if signal.table == "spans" else b""
        return Outcome(jobs.OK, response=response.SerializeToString(), accepted=rows.num_rows,
                       rejected=rejected, span_keys=keys)

    def _decode(self, job: Job) -> Outcome | tuple[pa.Table, int, str]:
        """(rows, rejected count, message), or the outcome saying why the body is bad."""
        signal = SIGNALS_BY_NAME[job.signal]
        raw = job.body
        try:
            if job.gzip:
                raw = _gunzip_bounded(raw, jobs.MAX_BODY_BYTES)
        except _BodyTooLarge:
            return Outcome(jobs.TOO_LARGE,
                           f"decompressed body exceeds {jobs.MAX_BODY_BYTES} bytes")
        except zlib.error as e:
            return Outcome(jobs.INVALID, f"bad gzip body: {e}")
        request = signal.request_type()
        try:
            if job.json:
                parse_json(raw, request)
            else:
                request.ParseFromString(raw)
        except (ValueError, DecodeError) as e:
            return Outcome(jobs.INVALID, f"cannot decode {signal.name} request: {e}")
        return FLATTEN[signal.name](request, None if job.json else raw)

    @property
    def pending_rows(self) -> int:
        return self.batcher.pending_rows

    def close(self) -> None:
        self.batcher.close()
