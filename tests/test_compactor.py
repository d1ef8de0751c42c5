"""Compaction and retention never lose or duplicate a row, even when interrupted."""

from __future__ import annotations

import os
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from collector.compactor import Compactor
from collector.exporters.parquet import ParquetSegmentSink
from inferledger.errors import UserError
from inferledger.store import DataDir
from inferledger.store.raw_schema import SPANS
from tests.builders import stored


def _segment(i: int) -> pa.Table:
    return pa.Table.from_pylist([{"trace_id": f"{i:032x}", "span_id": f"{k:016x}",
                                  "name": f"s{i}-{k}", "kind": 1, "received_at_unix_nano": i}
                                 for k in range(3)], schema=SPANS)


def _filled(data: DataDir, n: int = 10) -> list[str]:
    sink = ParquetSegmentSink(data, direct_per_s=n)  # one segment per write
    for i in range(n):
        sink.write("spans", _segment(i))
    sink.close()
    return sorted(r["name"] for i in range(n) for r in _segment(i).to_pylist())


def _names(data: DataDir) -> list[str]:
    """Every raw row as stored on disk, duplicates included (the files, not the views)."""
    files = sorted(data.raw_table("spans").glob("day=*/*.parquet"))
    return sorted(n for f in files for n in pq.read_table(f, columns=["name"])["name"].to_pylist())


def test_small_segments_are_merged_then_removed_one_pass_later(data) -> None:
    want = _filled(data)
    c = Compactor(data, min_segments=8, grace_s=0)
    c.run_once()
    part = next(data.raw_table("spans").glob("day=*"))
    assert len(list(part.glob("c-*.parquet"))) == 1 and len(list(part.glob(".c-*.journal"))) == 1
    # Merged and sources are both visible now: the deduplicated view still counts each once.
    assert sorted(r[0] for r in stored(data, "SELECT name FROM stg_spans")) == want
    c.run_once()
    assert [p.name[:2] for p in part.glob("*.parquet")] == ["c-"]
    assert not list(part.glob(".c-*"))
    assert _names(data) == want and c.merged_rows == len(want)


def test_partitions_below_the_threshold_are_left_alone(data) -> None:
    _filled(data, n=3)
    Compactor(data, min_segments=8, grace_s=0).run_once()
    assert not list(data.raw.glob("spans/day=*/c-*.parquet"))


def test_sources_stay_until_the_grace_has_passed(data) -> None:
    want = _filled(data)
    c = Compactor(data, min_segments=8, grace_s=3600)
    c.run_once()
    c.run_once()  # within the grace: the sources a reader may have listed are still there
    assert _names(data) == sorted(want * 2)


def test_crash_before_the_merged_file_was_visible_is_undone(data) -> None:
    want = _filled(data)
    c = Compactor(data, min_segments=8, grace_s=0)
    c.run_once()
    part = next(data.raw_table("spans").glob("day=*"))
    merged = next(part.glob("c-*.parquet"))
    os.replace(merged, part / f".{merged.name}.0123.tmp")  # as if killed before the rename
    Compactor(data).recover()
    assert _names(data) == want
    assert not list(part.glob(".*"))


def test_crash_after_the_merged_file_was_visible_is_completed(data) -> None:
    want = _filled(data)
    Compactor(data, min_segments=8, grace_s=3600).run_once()  # killed before the deletions
    Compactor(data).recover()
    assert _names(data) == want


def test_retention_drops_whole_old_days_only(data) -> None:
    from datetime import date

    for day in ("2026-10-01", "2026-11-20", "2026-11-21", "2026-11-28"):
        part = data.raw_table("spans") / f"day={day}"
        part.mkdir(parents=True)
        pq.write_table(_segment(1), part / "x.parquet")
    c = Compactor(data, {"spans": 7})
    c.expire(date(2026, 11, 28))
    assert sorted(p.name for p in data.raw_table("spans").glob("day=*")) == [
        "day=2026-11-21", "day=2026-11-28"]
    assert c.deleted_partitions == 2  # 11-20 is 8 days old: past a 7-day retention


def test_retention_for_an_unknown_table_is_refused(data) -> None:
    with pytest.raises(UserError, match="unknown table"):
        Compactor(data, {"logs": 7})


def test_segments_carry_their_schema_version_through_compaction(data) -> None:
    from inferledger.store.raw_schema import SCHEMA_VERSION, SCHEMA_VERSION_KEY

    _filled(data)
    c = Compactor(data, min_segments=8, grace_s=0)
    c.run_once()
    c.run_once()
    (merged,) = data.raw.glob("spans/day=*/*.parquet")
    meta = pq.read_schema(merged).metadata
    assert meta[SCHEMA_VERSION_KEY] == str(SCHEMA_VERSION).encode()


def test_a_busy_sink_writes_few_segments_and_a_crash_loses_no_acknowledged_row(data) -> None:
    """Past its direct-segment budget a sink appends to a write-ahead file: each write is
    durable on return, the file becomes one segment within ``publish_s``, and after a crash
    (no publish, a torn last batch) recovery publishes exactly the whole batches, once."""
    from collector.exporters.parquet import recover

    sink = ParquetSegmentSink(data, direct_per_s=2, publish_s=0.3)
    want = []
    for i in range(20):
        sink.write("spans", _segment(i))
        want += [r["name"] for r in _segment(i).to_pylist()]
    assert len(list(data.raw.glob("spans/day=*/*.parquet"))) == 2  # the rest is in the WAL
    deadline = time.monotonic() + 10
    while _names(data) != sorted(want):  # published by the sink's own thread
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert len(list(data.raw.glob("spans/day=*/*.parquet"))) == 3
    assert not list(data.wal.glob("**/*.arrows"))

    crashed = ParquetSegmentSink(data, direct_per_s=0, publish_s=3600)
    for i in range(20, 23):
        crashed.write("spans", _segment(i))
        want += [r["name"] for r in _segment(i).to_pylist()]
    (wal,) = data.wal.glob("*/spans/*.arrows")
    with open(wal, "ab") as f:  # a batch torn mid-write by the crash: never acknowledged
        f.write(b"\xff\xff\xff\xff\x50\x01\x00\x00partial")
    recover(data)
    assert _names(data) == sorted(want) and not wal.exists()
    recover(data)  # a second start changes nothing
    assert _names(data) == sorted(want)
