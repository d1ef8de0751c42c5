"""Append-only Parquet segments under ``raw/<table>/day=YYYY-MM-DD/``."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

import pyarrow as pa

from inferledger.store.layout import DataDir, write_parquet_atomic
from inferledger.store.raw_schema import SCHEMA_VERSION, SCHEMA_VERSION_KEY, statistics_columns


def sweep_unfinished(data: DataDir) -> None:
    """Drop the temporary files of writes a crash interrupted (never acknowledged).

    Only at start, before any sink writes: several sinks (one per worker) share the store.
    """
    for tmp in data.raw.glob("*/day=*/.*.tmp"):
        tmp.unlink(missing_ok=True)


class ParquetSegmentSink:
    """Each ``write`` is one immutable, fsynced segment; returning means it is durable."""

    def __init__(self, data: DataDir) -> None:
        self.data = data.ensure()

    def write(self, table_name: str, rows: pa.Table) -> None:
        now = time.time_ns()
        day = datetime.fromtimestamp(now / 1e9, UTC).strftime("%Y-%m-%d")
        name = f"{now}-{uuid.uuid4().hex[:8]}.parquet"
        path = self.data.raw_table(table_name) / f"day={day}" / name
        rows = rows.replace_schema_metadata({SCHEMA_VERSION_KEY: str(SCHEMA_VERSION).encode()})
        # LZ4: a third less CPU than zstd for a file that lives only until compaction
        # rewrites it with zstd (DuckDB, the CLI included, reads both).
        write_parquet_atomic(rows, path, durable=True, compression="lz4",
                             write_statistics=statistics_columns(rows.schema))
