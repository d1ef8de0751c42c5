"""Group commit with back-pressure between receivers and the sink.

Receivers ``submit`` decoded rows and wait on the returned future; a single writer thread
drains everything pending, writes one durable segment per table and only then resolves the
futures, so an acknowledgement always means "on disk". Requests that arrive while a write
is in progress form the next batch, so batches grow with load by themselves. Before a write,
the writer waits (at most ``linger_s``) only for requests it was told are on their way (being
decoded: :meth:`DurableBatcher.expecting`), so they share one fsync; a lone request is never
held.
Pending rows are bounded: past the bound ``submit`` raises :class:`Overloaded` and the
receiver answers 503 with Retry-After instead of growing memory.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Protocol

import pyarrow as pa

log = logging.getLogger(__name__)


class Sink(Protocol):
    def write(self, table_name: str, rows: pa.Table) -> None: ...

    def close(self) -> None: ...


class Overloaded(RuntimeError):
    """Too much data is waiting to be written; the client should retry later."""


@dataclass
class _Pending:
    table_name: str
    rows: pa.Table
    future: Future = field(default_factory=Future)


class DurableBatcher:
    def __init__(
        self, sink: Sink, *, max_pending_rows: int = 200_000, linger_s: float = 0.005
    ) -> None:
        self._sink = sink
        self._max_pending_rows = max_pending_rows
        self._linger = linger_s
        self._pending: list[_Pending] = []
        self._pending_rows = 0
        self._coming = 0  # requests being decoded that will submit (or not) soon
        self._cond = threading.Condition()
        self._closed = False
        self.on_commit: Callable[[float], None] | None = None  # seconds per durable write
        self._thread = threading.Thread(target=self._run, name="batcher", daemon=True)
        self._thread.start()

    @contextmanager
    def expecting(self) -> Iterator[None]:
        """Announce a request that is being decoded and may :meth:`submit` within the block."""
        with self._cond:
            self._coming += 1
        try:
            yield
        finally:
            with self._cond:
                self._coming -= 1
                self._cond.notify()

    def submit(self, table_name: str, rows: pa.Table) -> Future:
        with self._cond:
            if self._closed:
                raise Overloaded("collector is shutting down")
            if self._pending_rows and self._pending_rows + rows.num_rows > self._max_pending_rows:
                raise Overloaded(f"{self._pending_rows} rows are waiting to be written")
            item = _Pending(table_name, rows)
            self._pending.append(item)
            self._pending_rows += rows.num_rows
            self._cond.notify()
        return item.future

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    self._cond.wait()
                if not self._pending and self._closed:
                    return
                # Let requests already on their way join, unless we are closing.
                deadline = time.monotonic() + self._linger
                while (self._coming and not self._closed
                       and (left := deadline - time.monotonic()) > 0):
                    self._cond.wait(left)
                batch, self._pending = self._pending, []
                self._pending_rows = 0
            self._commit(batch)

    def _commit(self, batch: list[_Pending]) -> None:
        by_table: dict[str, list[_Pending]] = {}
        for item in batch:
            by_table.setdefault(item.table_name, []).append(item)
        for name, items in by_table.items():
            try:
                started = time.perf_counter()
                rows = pa.concat_tables([i.rows for i in items])
                if rows.num_rows:
                    self._sink.write(name, rows)
                if self.on_commit is not None:
                    self.on_commit(time.perf_counter() - started)
            except Exception as e:
                log.exception("writing %d %s batches failed", len(items), name)
                for i in items:
                    i.future.set_exception(e)
            else:
                for i in items:
                    i.future.set_result(i.rows.num_rows)

    @property
    def pending_rows(self) -> int:
        return self._pending_rows

    def close(self) -> None:
        """Write everything still pending, stop the writer thread, close the sink."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join()
        self._sink.close()
