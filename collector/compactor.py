"""Keeps the raw store fast and bounded: merges small segments, drops expired days.

The collector writes one small segment per table per group commit (several a second), and
every reader globs them all; a background pass merges a day partition's small segments into
one file. It never loses or duplicates a row, even if killed at any point, thanks to a
journal written before anything becomes visible:

1. journal ``.c-ID.journal`` (the sources) → merged rows in a temporary file → renamed to
   ``c-ID.parquet``: now visible beside its sources (readers of the deduplicated ``stg_*``
   views see no difference; ``raw_*`` may briefly show the rows twice);
2. one pass later (``grace_s``, so queries that listed the sources finish reading them), the
   sources are deleted, then the journal.

On start, :meth:`Compactor.recover` finishes step 2 for every journal whose merged file
exists and undoes the rest (the sources are intact). Retention deletes whole day partitions
older than a table's configured age.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from inferledger.errors import UserError
from inferledger.store import DataDir
from inferledger.store.layout import fsync_dir, publish_durably
from inferledger.store.raw_schema import RAW_TABLES, parquet_options

log = logging.getLogger("inferledger.collector.compactor")

MAX_MERGE_ROWS = 2_000_000  # rows per merged file
BATCH_ROWS = 32_768  # rows in memory at once while merging (and per merged row group)


@dataclass
class Compactor:
    data: DataDir
    retention_days: dict[str, int] = field(default_factory=dict)  # raw table → days kept
    small_rows: int = 250_000  # segments with fewer rows are merged
    min_segments: int = 8  # merge a partition once it has this many small segments
    grace_s: float = 30.0
    merged_rows: int = 0
    deleted_partitions: int = 0

    def __post_init__(self) -> None:
        unknown = set(self.retention_days) - set(RAW_TABLES)
        if unknown:
            raise UserError(f"retention for unknown table(s) {sorted(unknown)}; "
                             f"raw tables are {sorted(RAW_TABLES)}")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- one pass ----------------------------------------------------------------------
    def run_once(self, now: float | None = None) -> None:
        now = time.time() if now is None else now
        for part in self._partitions():
            self._finish(part, now)
            self._merge(part)
        self.expire(datetime.fromtimestamp(now, UTC).date())

    def recover(self) -> None:
        """After a crash: complete compactions whose merged file exists, undo the others."""
        for part in self._partitions():
            self._finish(part, now=None)

    def expire(self, today: date) -> None:
        for table, days in self.retention_days.items():
            cutoff = (today - timedelta(days=days)).isoformat()
            for part in sorted(self.data.raw_table(table).glob("day=*")):
                if part.name.removeprefix("day=") < cutoff:
                    for f in part.iterdir():
                        f.unlink(missing_ok=True)
                    try:
                        part.rmdir()
                    except OSError:  # a late segment for that day landed meanwhile: next pass
                        continue
                    self.deleted_partitions += 1
                    log.info("retention: removed %s/%s (older than %d days)", table, part.name,
                             days)

    # -- steps -------------------------------------------------------------------------
    def _partitions(self) -> list[Path]:
        return sorted(p for t in RAW_TABLES for p in self.data.raw_table(t).glob("day=*")
                      if p.is_dir())

    def _merge(self, part: Path) -> None:
        busy = {s for j in part.glob(".c-*.journal") for s in _read_journal(j)["sources"]}
        meta = {p: pq.read_metadata(p) for p in sorted(part.glob("*.parquet"))
                if p.name not in busy}
        small = [p for p, m in meta.items() if m.num_rows < self.small_rows]
        if not small:
            return
        # Segments as this collector writes them (older versions' stay until a later pass
        # has enough of theirs), oldest first, up to a bounded merged size.
        schema = meta[small[-1]].schema.to_arrow_schema()
        sources, rows = [], 0
        for p in small:
            if rows < MAX_MERGE_ROWS and meta[p].schema.to_arrow_schema().equals(
                    schema, check_metadata=True):  # same columns and schema version
                sources.append(p)
                rows += meta[p].num_rows
        if len(sources) < self.min_segments:
            return
        cid = f"{time.time_ns()}-{uuid.uuid4().hex[:8]}"
        merged = part / f"c-{cid}.parquet"
        _write_durably(part / f".c-{cid}.journal", json.dumps({
            "sources": [p.name for p in sources], "merged": merged.name,
            "visible_at": time.time()}).encode())
        # Streamed in batches: a merge holds BATCH_ROWS rows in memory, whatever its size.
        tmp = part / f".{merged.name}.{uuid.uuid4().hex}.tmp"
        with pq.ParquetWriter(tmp, schema, compression="zstd",
                              **parquet_options(schema)) as writer:
            group: list[pa.RecordBatch] = []
            for p in sources:
                for batch in pq.ParquetFile(p).iter_batches(batch_size=BATCH_ROWS):
                    group.append(batch)
                    if sum(b.num_rows for b in group) >= BATCH_ROWS:
                        writer.write_table(pa.Table.from_batches(group))
                        group = []
            if group:
                writer.write_table(pa.Table.from_batches(group))
        self.merged_rows += rows
        publish_durably(tmp, merged)
        log.debug("merged %d segments in %s", len(sources), part)

    def _finish(self, part: Path, now: float | None) -> None:
        """Delete the sources of merges older than the grace (all of them when ``now`` is None)."""
        for journal in sorted(part.glob(".c-*.journal")):
            j = _read_journal(journal)
            merged = part / j["merged"]
            if not merged.exists():  # crashed before the merged file became visible: undo
                for tmp in part.glob(f".{j['merged']}.*.tmp"):
                    tmp.unlink()
            elif now is not None and now - j["visible_at"] < self.grace_s:
                continue
            else:
                for name in j["sources"]:
                    (part / name).unlink(missing_ok=True)
                fsync_dir(part)
            journal.unlink()
            fsync_dir(part)

    # -- background --------------------------------------------------------------------
    def start(self) -> Compactor:
        self.recover()
        self._thread = threading.Thread(target=self._loop, name="compactor", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.grace_s):
            try:
                self.run_once()
            except (OSError, pa.ArrowException, ValueError):
                log.exception("compaction pass failed; the store is unchanged, will retry")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


def _read_journal(path: Path) -> dict:
    return json.loads(path.read_text())


def _write_durably(path: Path, body: bytes) -> None:
    """All of ``body`` at ``path`` or nothing (a crash leaves only a ``.tmp``, swept later)."""
    tmp = path.with_name(f"{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_bytes(body)
    publish_durably(tmp, path)
