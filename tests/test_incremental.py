"""Analytics runs day by day: watermark, idempotent re-runs, late data, backfill."""

from __future__ import annotations

import duckdb
import pytest

from analytics.pipeline import run
from analytics.watermark import Watermark
from analytics.windows import DAY_S
from inferledger.store import write_parquet_atomic
from tests.builders import Fleet, places, stored

MIDNIGHT = 1_800_057_600.0  # 2027-01-16 00:00 UTC
G = "GPU-eeeeeeee-0000-0000-0000-000000000001"


def two_days() -> tuple[Fleet, str, str]:
    f = Fleet()
    before = f.request(scheduled=MIDNIGHT - 600, first_token=MIDNIGHT - 600,
                       finished=MIDNIGHT - 300, gpus=[G], output_tokens=10)
    across = f.request(scheduled=MIDNIGHT - 100, first_token=MIDNIGHT - 100,
                       finished=MIDNIGHT + 100, gpus=[G], output_tokens=10)
    for t in range(-700, 701, 50):
        f.sample(G, MIDNIGHT + t, energy_j=10.0 * (t + 700))
    return f, before, across


def test_days_are_partitions_and_midnight_is_seamless(data) -> None:
    f, before, across = two_days()
    result = run(f.write(data))
    assert result.days == 2
    # Neither day is complete (the data ends less than the lateness after midnight): their
    # hours are files of their own, so live runs rewrite only the hours they recompute.
    assert places(data.derived_table("gpu_time")) == \
        ["day=2027-01-15.h23.parquet", "day=2027-01-16.h00.parquet"]
    # The request across midnight belongs to the day it started; its GPU time to both days.
    got = dict(stored(data, "SELECT request_uid, gpu_seconds FROM request_costs"))
    assert got[across] == pytest.approx(200.0) and got[before] == pytest.approx(300.0)
    hours = dict(stored(data, "SELECT hour::DATE::VARCHAR, sum(gpu_seconds) FROM attribution "
                             "WHERE request_uid = ? GROUP BY 1".replace("?", f"'{across}'")))
    assert hours == {"2027-01-15": pytest.approx(100.0), "2027-01-16": pytest.approx(100.0)}
    measured = stored(data, "SELECT sum(measured_s), max(rel_error_s) FROM conservation")[0]
    assert measured[0] == pytest.approx(1400.0) and measured[1] <= 1e-9  # each hour once
    state = Watermark.read(data)
    assert state.watermark_s == pytest.approx(MIDNIGHT + 700)


def test_rerun_is_idempotent(data) -> None:
    f, _, _ = two_days()
    run(f.write(data))
    first = stored(data, "SELECT * FROM request_costs ORDER BY request_uid")
    run(data)
    assert stored(data, "SELECT * FROM request_costs ORDER BY request_uid") == first


def test_results_of_another_shape_are_recomputed_whole(data, caplog) -> None:
    """Results from a release without answers (or other [answers] keys) are recomputed from
    raw, every day, without --reprice: prices did not change, the tables did."""
    from dataclasses import replace

    from analytics.settings import Settings

    f, before, _ = two_days()
    run(f.write(data))
    old = Watermark.read(data)
    replace(old, shape="").write(data)  # as an older release left it
    for f in data.derived_table("answers").glob("*.parquet"):
        f.unlink()
    assert run(data).days == 2  # both days again, not only the newest hours
    assert "another shape" in caplog.text
    assert stored(data, f"SELECT count(*) FROM answers WHERE request_uid = '{before}'") == [(1,)]
    assert Watermark.read(data).shape == old.shape
    caplog.clear()
    by_conversation = Settings(answer_keys=("gen_ai.conversation.id", "trace"))
    assert run(data, settings=by_conversation).days == 2
    assert "another shape" in caplog.text
    caplog.clear()
    run(data, settings=by_conversation)
    assert "another shape" not in caplog.text  # then live again


def test_late_data_within_lateness_and_backfill_beyond_it(data) -> None:
    f, _, _ = two_days()
    run(f.write(data))
    late = Fleet()
    # A request from ten minutes before midnight arrives late (within the 1 h lateness).
    uid = late.request(scheduled=MIDNIGHT - 500, first_token=MIDNIGHT - 500,
                       finished=MIDNIGHT - 400, gpus=[G], output_tokens=10)
    spans, _ = late.tables()
    write_parquet_atomic(spans, data.raw_table("spans") / "day=2027-01-15" / "late.parquet")
    run(data)
    assert uid in dict(stored(data, "SELECT request_uid, cost_usd FROM request_costs"))
    # Far behind the watermark: only an explicit backfill recomputes that day.
    old = Fleet()
    old_day = MIDNIGHT - 2 * DAY_S
    old_uid = old.request(scheduled=old_day + 10, first_token=old_day + 10,
                          finished=old_day + 15, gpus=[G], output_tokens=10)
    spans, _ = old.tables()
    write_parquet_atomic(spans, data.raw_table("spans") / "day=2027-01-14" / "old.parquet")
    run(data)
    assert old_uid not in dict(stored(data, "SELECT request_uid, 1 FROM request_costs"))
    seen = []
    run(data, since=old_day, until=old_day + 60,
        progress=lambda i, n, day: seen.append((i, n, day)))
    assert seen == [(1, 1, "2027-01-14")]
    assert old_uid in dict(stored(data, "SELECT request_uid, 1 FROM request_costs"))
    assert Watermark.read(data).watermark_s == pytest.approx(MIDNIGHT + 700)  # unchanged


def test_partitions_are_plain_parquet(data) -> None:
    f, _, _ = two_days()
    run(f.write(data))
    n = duckdb.sql("SELECT count(*) FROM read_parquet(?)",
                   params=[str(data.derived_table("requests") / "*.parquet")]).fetchall()
    assert n == [(2,)]


def test_a_run_before_any_data_sets_no_watermark(data) -> None:
    run(data)  # e.g. the scheduler's first tick, before the first span arrives
    assert Watermark.read(data) is None
    f, _, _ = two_days()
    assert run(f.write(data)).days == 2  # the data's days, not every day since 1970


def traffic(f: Fleet, start: float, end: float) -> None:
    """A request every 10 minutes on G and a sample every minute, over [start, end)."""
    for t in range(int(start), int(end), 600):
        f.request(scheduled=t + 5, first_token=t + 6, finished=t + 65, gpus=[G],
                  input_tokens=200, output_tokens=60)
    for t in range(int(start), int(end), 60):
        f.sample(G, t, energy_j=200.0 * (t - MIDNIGHT + 86_400))


def _more(data, start: float, end: float, name: str) -> None:
    f = Fleet()
    traffic(f, start, end)
    spans, points = f.tables()
    day = f"day={_label(start)}"
    write_parquet_atomic(spans, data.raw_table("spans") / day / f"{name}.parquet")
    write_parquet_atomic(points, data.raw_table("metric_points") / day / f"{name}.parquet")


def _label(t: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d")


def test_a_live_run_recomputes_only_the_newest_hours(data, tmp_path) -> None:
    f = Fleet()
    traffic(f, MIDNIGHT, MIDNIGHT + 6 * 3600)
    run(f.write(data))
    early = "SELECT * FROM attribution WHERE hour < TIMESTAMPTZ '2027-01-16 04:00:00+00' " \
            "ORDER BY request_uid, hour"
    before = stored(data, early)
    _more(data, MIDNIGHT + 6 * 3600, MIDNIGHT + 7.5 * 3600, "live")
    seen = []
    result = run(data, progress=lambda i, n, label: seen.append(label))
    # from an hour before the watermark (the last sample, 05:59) to the newest data's hour,
    # not the whole day
    assert seen == ["2027-01-16 04:00–08:00"] and result.windows == 1
    assert stored(data, early) == before  # earlier hours untouched
    # The day's tables are whole and consistent: as a backfill of the whole day makes them.
    live = {q: _rounded(stored(data, q)) for q in QUERIES}
    run(data, since=MIDNIGHT, until=MIDNIGHT + 1)
    for q in QUERIES:
        assert _rounded(stored(data, q)) == live[q], q
    assert stored(data, "SELECT max(rel_error_s), max(rel_error_j) FROM conservation")[0] \
        <= (1e-9, 1e-9)


def _rounded(rows: list[tuple]) -> list[tuple]:
    return [tuple(round(v, 9) if isinstance(v, float) else v for v in r) for r in rows]


QUERIES = (
    "SELECT count(*), count(DISTINCT request_uid) FROM requests",
    "SELECT count(*) FROM request_gpus",
    "SELECT count(*), sum(gpu_seconds) FROM request_costs",
    "SELECT hour, sum(cost_usd) FROM spend_hourly GROUP BY 1 ORDER BY 1",
    "SELECT hour, sum(measured_s) FROM gpu_time GROUP BY 1 ORDER BY 1",
    "SELECT sum(requests), sum(cost_usd) FROM cost_daily",
    "SELECT dimension, value, requests FROM latency ORDER BY 1, 2",
)


def test_a_finished_day_is_computed_whole_once(data) -> None:
    f = Fleet()
    traffic(f, MIDNIGHT + 20 * 3600, MIDNIGHT + 23.5 * 3600)
    run(f.write(data))
    assert Watermark.read(data).settled_s == MIDNIGHT  # the day is not complete yet
    _more(data, MIDNIGHT + 23.5 * 3600, MIDNIGHT + 24 * 3600, "evening")
    _more(data, MIDNIGHT + DAY_S, MIDNIGHT + DAY_S + 1.5 * 3600, "night")
    seen = []
    run(data, progress=lambda i, n, label: seen.append(label))
    # 01:30 is more than the lateness (1 h) past midnight: the 16th is complete, computed
    # whole; the 17th's hours since an hour before the old watermark (23:30) as a window.
    assert seen == ["2027-01-16", "2027-01-17 00:00–02:00"]
    assert Watermark.read(data).settled_s == MIDNIGHT + DAY_S
    # the finished day is one file per table, its hours' files gone; the new day is hours
    assert places(data.derived_table("gpu_time")) == [
        "day=2027-01-16.parquet", "day=2027-01-17.h00.parquet", "day=2027-01-17.h01.parquet"]
    seen.clear()
    run(data, progress=lambda i, n, label: seen.append(label))
    assert seen == ["2027-01-17 00:00–02:00"]  # settled once, not again


def _received(table, at: float):
    """``table`` as the collector stamps it: every row received at ``at`` (epoch s)."""
    import pyarrow as pa

    i = table.schema.get_field_index("received_at_unix_nano")
    return table.set_column(i, "received_at_unix_nano",
                            pa.array([int(at * 1e9)] * table.num_rows, pa.int64()))


def _arrive(data, f: Fleet, name: str, at: float) -> None:
    spans, points = f.tables()
    write_parquet_atomic(_received(spans, at), data.raw_table("spans") / "d" / f"{name}.parquet")
    if points.num_rows:
        write_parquet_atomic(_received(points, at),
                             data.raw_table("metric_points") / "d" / f"{name}.parquet")


def test_a_live_run_recomputes_the_hours_new_data_touched(data) -> None:
    import time

    now = time.time()
    f = Fleet()
    traffic(f, MIDNIGHT, MIDNIGHT + 6 * 3600)
    _arrive(data, f, "first", now - 3000)
    run(data)
    early = "SELECT * FROM request_costs WHERE started_at < TIMESTAMPTZ '2027-01-16 05:00:00+00' " \
            "ORDER BY request_uid"
    before = stored(data, early)
    seen: list[str] = []
    f = Fleet()
    traffic(f, MIDNIGHT + 6 * 3600, MIDNIGHT + 6.5 * 3600)
    _arrive(data, f, "live", now - 2000)
    run(data, progress=lambda i, n, label: seen.append(label))
    # the new half hour, not an hour before the watermark as well
    assert seen == ["2027-01-16 06:00–07:00"]
    assert stored(data, early) == before
    # A late request from 05:40 (within the lateness of the 06:29 watermark): its hour only.
    seen.clear()
    late = Fleet()
    at = MIDNIGHT + 5 * 3600 + 2400
    uid = late.request(scheduled=at, first_token=at + 1, finished=at + 40, gpus=[G],
                       output_tokens=10)
    _arrive(data, late, "late", now - 1000)
    run(data, progress=lambda i, n, label: seen.append(label))
    assert seen == ["2027-01-16 05:00–06:00"]
    assert uid in dict(stored(data, "SELECT request_uid, 1 FROM request_costs"))
    # Nothing new: nothing recomputed.
    seen.clear()
    assert run(data, progress=lambda i, n, label: seen.append(label)).windows == 0
    assert seen == []
    # What the live runs published is what a backfill of the whole day computes.
    live = {q: _rounded(stored(data, q)) for q in QUERIES}
    run(data, since=MIDNIGHT, until=MIDNIGHT + 1)
    for q in QUERIES:
        assert _rounded(stored(data, q)) == live[q], q
