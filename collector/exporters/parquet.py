"""Append-only Parquet segments under ``raw/<table>/day=YYYY-MM-DD/``.

Readers pay for every file they open (≈ 0.2 ms each in DuckDB, measured), so a busy
collector must not write one segment per request. A write is durable on return either way:
at a low rate it is its own segment, as before; past ``direct_per_s`` segments of a table in
the last second, rows are appended to the table's write-ahead file
(``wal/<writer>/<table>/``, an Arrow IPC stream: an append and an ``fdatasync``, no Parquet
encoding) and that file becomes
one segment ``publish_s`` after its first row. The segment's name is the file's, so
publishing it again after a crash replaces rather than duplicates; a torn last batch was
never acknowledged and is dropped.
"""

from __future__ import annotations

import glob
import logging
import os
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

import pyarrow as pa

from inferledger.store.layout import DataDir, fsync_dir, write_parquet_atomic
from inferledger.store.raw_schema import SCHEMA_VERSION, SCHEMA_VERSION_KEY, parquet_options

log = logging.getLogger("inferledger.collector")


def recover(data: DataDir) -> None:
    """At start, before any sink writes (several share the store, one per worker): drop the
    temporary files of interrupted writes and publish what write-ahead files hold."""
    for tmp in data.raw.glob("*/day=*/.*.tmp"):
        tmp.unlink(missing_ok=True)
    publish_wals(data, data.wal)


def publish_wals(data: DataDir, under: Path) -> None:
    """Publish every write-ahead file under ``under`` (all sinks', or one dead sink's)."""
    for wal in sorted(under.glob("**/*.arrows")):
        publish_wal(data, wal)


def wait_published(data: DataDir, timeout_s: float = 10.0) -> bool:
    """Wait until the write-ahead files that exist now are published, so a reader sees every
    row acknowledged so far (a collector publishes them within ``publish_s``). False if some
    were not by ``timeout_s``."""
    pending = {Path(p) for p in glob.iglob(str(data.wal / "**" / "*.arrows"), recursive=True)}
    deadline = time.monotonic() + timeout_s
    while any(p.exists() for p in pending):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _segment_path(data: DataDir, table: str, name: str) -> Path:
    day = datetime.fromtimestamp(int(name.split("-")[0]) / 1e9, UTC).strftime("%Y-%m-%d")
    return data.raw_table(table) / f"day={day}" / f"{name}.parquet"


def _write_segment(rows: pa.Table, path: Path) -> None:
    # LZ4: a third less CPU than zstd for a file that lives only until compaction
    # rewrites it with zstd (DuckDB, the CLI included, reads both).
    write_parquet_atomic(rows, path, durable=True, compression="lz4",
                         **parquet_options(rows.schema))


def publish_wal(data: DataDir, wal: Path) -> None:
    """The write-ahead file's complete batches → one segment; then the file goes."""
    segment = _segment_path(data, wal.parent.name, wal.stem)
    if not segment.exists():
        batches, schema = [], None
        try:
            with pa.ipc.open_stream(pa.OSFile(str(wal))) as reader:
                schema = reader.schema
                for batch in reader:
                    batches.append(batch)
        except FileNotFoundError:
            return
        except (pa.ArrowInvalid, OSError) as e:  # torn by a crash: keep what is whole
            log.info("%s: kept %d whole batches (%s)", wal, len(batches), e)
        if batches:
            _write_segment(pa.Table.from_batches(batches, schema), segment)
    wal.unlink(missing_ok=True)


@dataclass
class _Wal:
    path: Path
    file: BinaryIO
    writer: pa.ipc.RecordBatchStreamWriter
    opened: float


class ParquetSegmentSink:
    """Each ``write`` is durable on return; see the module's docstring for where it goes."""

    def __init__(self, data: DataDir, *, direct_per_s: int = 4, publish_s: float = 1.0,
                 owner: str = "main") -> None:
        self.data = data.ensure()
        self.wal = data.wal / owner  # this sink's files: whoever outlives it publishes them
        self.direct_per_s, self.publish_s = direct_per_s, publish_s
        self._direct: dict[str, deque[float]] = {}  # when each table's recent segments went
        self._open: dict[str, _Wal] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._publisher = threading.Thread(target=self._publish_loop, name="wal-publisher",
                                           daemon=True)
        self._publisher.start()

    def write(self, table_name: str, rows: pa.Table) -> None:
        rows = rows.replace_schema_metadata({SCHEMA_VERSION_KEY: str(SCHEMA_VERSION).encode()})
        now = time.monotonic()
        with self._lock:
            recent = self._direct.setdefault(table_name, deque())
            while recent and now - recent[0] > 1.0:
                recent.popleft()
            if len(recent) >= self.direct_per_s:
                self._append(table_name, rows, now)
                return
            recent.append(now)
        name = f"{time.time_ns()}-{uuid.uuid4().hex[:8]}"
        _write_segment(rows, _segment_path(self.data, table_name, name))

    def _append(self, table_name: str, rows: pa.Table, now: float) -> None:
        wal = self._open.get(table_name)
        if wal is None:
            path = self.wal / table_name / f"{time.time_ns()}-{uuid.uuid4().hex[:8]}.arrows"
            path.parent.mkdir(parents=True, exist_ok=True)
            file = open(path, "wb")  # noqa: SIM115 - closed when published
            wal = _Wal(path, file, pa.ipc.new_stream(file, rows.schema), now)
            fsync_dir(path.parent)  # the file itself must survive a crash, not only its bytes
            self._open[table_name] = wal
        wal.writer.write_table(rows)
        wal.file.flush()
        os.fdatasync(wal.file.fileno())

    def _publish_loop(self) -> None:
        while not self._stop.wait(0.05):
            self._publish(force=False)

    def _publish(self, force: bool) -> None:
        now = time.monotonic()
        with self._lock:
            due = [t for t, w in self._open.items() if force or now - w.opened >= self.publish_s]
            closed = [self._open.pop(t) for t in due]
            for w in closed:
                w.writer.close()
                w.file.close()
        for w in closed:
            try:
                publish_wal(self.data, w.path)
            except (OSError, pa.ArrowException):  # durable in the file; recover() publishes it
                log.exception("publishing %s failed; it is published at the next start", w.path)

    def close(self) -> None:
        """Publish every write-ahead file now."""
        self._stop.set()
        self._publisher.join()
        self._publish(force=True)
