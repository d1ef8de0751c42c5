"""Readers survive a segment vanishing under them (compaction or retention deleted it)."""

from __future__ import annotations

import duckdb
import pytest

from inferledger.store import retry_vanished


def test_a_vanished_file_is_listed_again() -> None:
    calls = []

    def query() -> int:
        calls.append(1)
        if len(calls) == 1:
            raise duckdb.IOException('IO Error: Cannot open file "x.parquet": No such file')
        return 42

    assert retry_vanished(query) == 42 and len(calls) == 2


def test_other_io_errors_are_not_retried() -> None:
    def query() -> None:
        raise duckdb.IOException("IO Error: permission denied")

    with pytest.raises(duckdb.IOException, match="permission"):
        retry_vanished(query)


def test_queries_keep_working_while_compaction_deletes_segments(data) -> None:
    """A reader in a loop while segments keep arriving and compaction merges and deletes."""
    import threading

    from collector.compactor import Compactor
    from collector.exporters.parquet import ParquetSegmentSink
    from inferledger.store import connect_readonly, write_catalog
    from tests.test_compactor import _segment

    write_catalog(data)  # as the collector does when it starts
    sink, compactor = ParquetSegmentSink(data), Compactor(data, min_segments=2, grace_s=0)
    stop, written = threading.Event(), []

    def write_and_compact() -> None:
        i = 0
        while not stop.is_set():
            sink.write("spans", _segment(i))
            written.append(3)
            i += 1
            if i % 3 == 0:
                compactor.run_once()

    writer = threading.Thread(target=write_and_compact)
    writer.start()
    seen = []
    try:
        for _ in range(60):
            con = connect_readonly(data)
            try:
                seen.append(retry_vanished(
                    lambda c=con: c.execute("SELECT count(*) FROM stg_spans").fetchone()[0]))
            finally:
                con.close()
    finally:
        stop.set()
        writer.join()
        sink.close()  # what waits in its write-ahead file becomes a segment
    assert seen == sorted(seen) and seen[-1] > 0  # never fewer rows than a moment before
    con = connect_readonly(data)
    assert con.execute("SELECT count(*) FROM stg_spans").fetchone()[0] == sum(written)
    assert compactor.merged_rows > 0
