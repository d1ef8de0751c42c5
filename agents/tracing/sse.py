"""Watches a server-sent-events stream as it passes, without holding it back.

Only an incomplete event (no blank line yet) is held, which an SSE client could not use
anyway, so the client's time to first token is unchanged. It records usage, finish reasons
and content chunks, and can drop the usage-only chunk the middleware itself asked for.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

_EVENT_END = re.compile(rb"\r?\n\r?\n")
# An ordinary token chunk (no usage object, no finish reason) is counted without decoding;
# a false match only costs a full decode.
_USAGE = re.compile(rb'"usage"\s*:\s*\{')
_FINISH = re.compile(rb'"finish_reason"\s*:\s*"')
_NO_CHOICES = re.compile(rb'"choices"\s*:\s*\[\s*\]')


class SseTap:
    def __init__(self, *, strip_usage_chunk: bool) -> None:
        self.strip_usage_chunk = strip_usage_chunk
        self.usage: dict[str, Any] | None = None
        self.finish_reasons: list[str] = []
        self.model: str | None = None
        self.content_chunks = 0
        self.first_token_at: float | None = None
        self.done = False  # [DONE] passed: the client has the whole response
        self._decoded = False
        self._pending = b""

    def feed(self, data: bytes) -> bytes:
        """Bytes in from the app → bytes out to the client (complete events only)."""
        if not self._pending and data.endswith(b"\n\n") and data.find(b"\n\n") == len(data) - 2:
            return data if self._inspect(data) else b""  # the usual case: one whole event
        self._pending += data
        out = []
        while True:
            m = _EVENT_END.search(self._pending)
            if m is None:
                break
            event, self._pending = self._pending[: m.end()], self._pending[m.end():]
            if self._inspect(event):
                out.append(event)
        return b"".join(out)

    def flush(self) -> bytes:
        rest, self._pending = self._pending, b""
        return rest

    def _inspect(self, event: bytes) -> bool:
        """Record what the event says; False if it must not reach the client."""
        if event.startswith(b"data: ") and event.count(b"\n") == 2:  # one data line
            payload = event[6:].strip()
        else:
            payload = b"".join(line[5:].strip() for line in event.splitlines()
                               if line.startswith(b"data:"))
        if payload == b"[DONE]":
            self.done = True
            return True
        if not payload:
            return True
        if self._decoded and not _USAGE.search(payload) and not _FINISH.search(payload):
            if not _NO_CHOICES.search(payload):
                self._content()
            return True
        try:
            obj = json.loads(payload)
        except ValueError:
            return True
        if not isinstance(obj, dict):
            return True
        self._decoded = True  # the first event told us the model; the rest may be skimmed
        self.model = obj.get("model") or self.model
        choices = obj.get("choices") or []
        if obj.get("usage"):
            self.usage = obj["usage"]
            if self.strip_usage_chunk and not choices:
                return False
        if choices:
            self._content()
            for c in choices:
                if isinstance(c, dict) and c.get("finish_reason"):
                    self.finish_reasons.append(str(c["finish_reason"]))
        return True

    def _content(self) -> None:
        if self.first_token_at is None:
            self.first_token_at = time.monotonic()
        self.content_chunks += 1
