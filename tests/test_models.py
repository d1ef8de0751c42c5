"""The pipeline as its SQL files declare it: every step after the steps whose tables it
reads, every published table with a way to put its rows in a day, and the published names
readers know (docs/SQL.md) all present."""

from __future__ import annotations

import pytest

from analytics.models import ManifestError, models, parse_model, published, steps

READERS_KNOW = {"requests", "answers", "request_gpus", "gpu_intervals", "attribution",
                "gpu_time", "request_costs", "answer_costs", "spend_hourly", "gpu_activity",
                "node_power", "latency", "cost_hourly", "cost_daily", "conservation"}


def test_every_step_runs_after_what_it_reads():
    made: set[str] = set()
    every = {t for m in models() for t in m.creates}
    for m in models():
        needed = (m.reads & every) - m.creates
        assert needed <= made, f"{m.step} reads {sorted(needed - made)} before they exist"
        made |= m.creates
    assert steps()[-1].startswith("marts/") and "kernel" in steps()


def test_published_tables_are_the_documented_ones_each_with_its_rows():
    assert {m.publish for m in published()} == READERS_KNOW
    for m in published():
        assert m.table in m.creates, m.step
        assert m.day_key or m.rows or m.daily, f"{m.step}: no day_key, rows or grain"
        assert "WHERE" in m.rows_of(m.table, 0, 3600) or m.daily


def test_a_file_declares_itself():
    m = parse_model("marts/mart_new", "--! publish: new_things\n--! day_key: epoch(hour)\n"
               "-- reads mart_gpu_time only in this comment\n"
               "CREATE OR REPLACE TEMP TABLE mart_new AS SELECT * FROM int_requests")
    assert (m.publish, m.creates) == ("new_things", frozenset({"mart_new"}))
    assert "int_requests" in m.reads and "mart_gpu_time" not in m.reads
    assert m.rows_of("mart_new", 10, 20) == \
        "SELECT * FROM mart_new WHERE epoch(hour) >= 10 AND epoch(hour) < 20"
    with pytest.raises(ManifestError, match="unknown header"):
        parse_model("marts/x", "--! publsh: typo\nSELECT 1")
