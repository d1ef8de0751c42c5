"""Which windows a run computes, and from which raw data.

A window is a UTC day, or the hours of one a live run's new data touched. What is new comes
from receipt times (every raw row is stamped when the collector accepted it); the raw
store's range from Parquet statistics, without reading the data.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import duckdb

from analytics.models import read_sql
from analytics.settings import Settings
from analytics.watermark import Watermark
from inferledger.store import DataDir, retry_vanished
from inferledger.store.catalog import raw_views_sql

DAY_S = 86_400
HOUR_S = 3_600
MARGIN_S = 3_600.0


def day_label(day_start_s: float) -> str:
    return datetime.fromtimestamp(day_start_s, UTC).strftime("%Y-%m-%d")


@dataclass(frozen=True)
class Window:
    """Hours of one UTC day to (re)compute: the whole day, or its last hours while live."""

    lo: float  # epoch s, on the hour
    hi: float  # epoch s, on the hour, at most the day's end

    @property
    def day(self) -> float:
        return math.floor(self.lo / DAY_S) * DAY_S

    @property
    def whole_day(self) -> bool:
        return self.lo == self.day and self.hi == self.day + DAY_S

    @property
    def hours(self) -> range:
        return range(int(self.lo), int(self.hi), HOUR_S)

    def label(self) -> str:
        if self.whole_day:
            return day_label(self.day)
        return (f"{day_label(self.day)} {(self.lo - self.day) / HOUR_S:02.0f}:00–"
                f"{(self.hi - self.day) / HOUR_S:02.0f}:00")


@dataclass(frozen=True)
class Touched:
    """The time new data touched: from the earliest start of the new spans, of the new
    samples and of every span those overlap in time or share a trace with (their shares and
    answers change), to the latest end. Empty when nothing arrived."""

    lo: float = math.inf
    hi: float = -math.inf

    @property
    def empty(self) -> bool:
        return self.lo > self.hi


@dataclass(frozen=True)
class Probe:
    span: tuple[float, float] | None  # earliest and latest time in the raw store (epoch s)
    received_s: float  # newest receipt time
    touched: Touched | None  # what arrived after the time asked for (None: not asked)


def probe(data: DataDir, received_after_s: float | None) -> Probe:
    """The raw data's range, from Parquet statistics, and what arrived after a time."""
    return retry_vanished(lambda: _raw_probe(data, received_after_s))


def _raw_probe(data: DataDir, received_after_s: float | None) -> Probe:
    con = duckdb.connect()
    try:
        con.execute("\n".join(raw_views_sql(data))).fetchall()
        lo, hi, received = con.execute(read_sql("run", "raw_range")).fetchall()[0]
        if lo is None:
            return Probe(None, 0.0, None)
        touched = None
        if received_after_s is not None:
            touched = _touched(con, int(received_after_s * 1e9))
    finally:
        con.close()
    return Probe((lo / 1e9, hi / 1e9), (received or 0) / 1e9, touched)


def _touched(con: duckdb.DuckDBPyConnection, after_ns: int) -> Touched:
    con.execute(read_sql("run", "new_spans"), {"after": after_ns}).fetchall()
    lo, hi = con.execute(read_sql("run", "new_range"), {"after": after_ns}).fetchall()[0]
    if lo is None:
        return Touched()
    first = con.execute(read_sql("run", "touched_from"), {
        "margin": lo - int(MARGIN_S * 1e9), "lo": lo, "hi": hi}).fetchall()[0][0]
    return Touched(min(lo, first if first is not None else lo) / 1e9, hi / 1e9)


def _days(lo: float, hi: float) -> list[float]:
    first, last = math.floor(lo / DAY_S) * DAY_S, math.floor(hi / DAY_S) * DAY_S
    return [float(d) for d in range(int(first), int(last) + DAY_S, DAY_S)]


def _whole(days: list[float]) -> list[Window]:
    return [Window(d, d + DAY_S) for d in days]


def windows_to_run(span: tuple[float, float] | None, state: Watermark | None, *,
                   since: float | None, until: float | None, lateness_s: float,
                   reprice: bool, whole_days: bool = False,
                   touched: Touched | None = None) -> list[Window]:
    """What to (re)compute: a backfill range, everything, or what is new since the watermark.

    A backfill, a first run and a re-price compute whole UTC days. A live run recomputes only
    the hours new data touched (``touched``; without it, from ``lateness_s`` before the
    watermark to the newest data), never earlier than ``lateness_s`` before the watermark
    (older data is a backfill's), and each day whose data has become complete (its end more
    than ``lateness_s`` behind the watermark) once more whole, so every finished day is
    computed from all of its data once (the attribution's fits see the whole day).
    ``whole_days`` makes live runs compute whole days too (an idle policy other than
    'separate' shares idle over the day). ``span`` is the raw data's time range; with no
    data at all, today (empty tables).
    """
    if since is not None or until is not None:
        lo = since if since is not None else (span[0] if span else time.time())
        hi = until if until is not None else (span[1] if span else time.time())
        return _whole(_days(lo, hi))
    if span is None:
        return _whole(_days(time.time(), time.time()))
    if state is None or reprice:
        return _whole(_days(*span))
    # never before the earliest data, whatever the watermark says
    late = max(min(state.watermark_s - lateness_s, span[1]), span[0])
    complete = math.floor((max(state.watermark_s, span[1]) - lateness_s) / DAY_S) * DAY_S
    settle = [d for d in _days(late, span[1]) if state.settled_s <= d and d + DAY_S <= complete]
    lo, hi = late, span[1]
    if touched is not None:
        if touched.empty or touched.hi < late:
            return _whole(settle)
        lo, hi = max(touched.lo, late), min(touched.hi, span[1])
    if whole_days:
        return _whole(sorted(set(settle) | set(_days(lo, hi))))
    out = _whole(settle)
    hour = math.floor(lo / HOUR_S) * HOUR_S
    end = math.floor(hi / HOUR_S) * HOUR_S + HOUR_S
    for d in _days(hour, hi):
        if d in settle:
            continue
        w = Window(max(hour, d), min(end, d + DAY_S))
        out.append(Window(d, d + DAY_S) if w.lo == d and w.hi == d + DAY_S else w)
    return out


def raw_ranges(w: Window, settings: Settings) -> dict[str, tuple[int, int]]:
    """The raw data a window is computed from: spans overlapping it with MARGIN_S either
    side (requests crossing its edges, the rest of their answers); GPU and engine samples
    from MARGIN_S before a whole day, or from the longest valid sample gap before a window
    of hours — enough for the interval across its start — to MARGIN_S after it. Samples
    are most of the raw rows (a live agent sends one per GPU metric per second), so a live
    run reads minutes of them before its hours, not an hour."""
    before = MARGIN_S if w.whole_day else min(MARGIN_S, settings.max_sample_gap_s)
    return {"spans": (int((w.lo - MARGIN_S) * 1e9), int((w.hi + MARGIN_S) * 1e9)),
            "metric_points": (int((w.lo - before) * 1e9), int((w.hi + MARGIN_S) * 1e9))}
