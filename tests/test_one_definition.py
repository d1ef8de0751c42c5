"""One set of numbers everywhere: for several windows and filters, spend and its parts read
the same to the cent from `analytics summary --json`, the FOCUS export, the weekly report's
figures and the dashboard's queries and pages, and add up (spend = useful + wasted + idle)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import duckdb
import pytest
from streamlit.testing.v1 import AppTest

from analytics.report.figures import weekly_figures
from analytics.report.week import Week
from dashboard import ui
from dashboard.queries import base
from inferledger.results.filters import Filters
from inferledger.results.kpis import NOT_CHARGED, bridge, by_dimension, headline
from inferledger.store import connect_readonly
from inferledger.vocabulary import BRIDGE
from tests.conftest import WEDNESDAY_2PM
from tests.test_dashboard import APP

END = datetime.fromtimestamp(WEDNESDAY_2PM, UTC)
WINDOWS = {
    "all": (None, None),
    "six hours": (END - timedelta(hours=6), END),
    "a morning": (END - timedelta(hours=14), END - timedelta(hours=8)),
}
SLICES = {"everything": {}, "globex": {"tenants": ("globex",)},
          "llama": {"models": ("llama-3.1-8b-instruct",)}, "node a": {"nodes": ("sim-node-a",)}}


def cents(v: float) -> int:
    return round(v * 100)


@pytest.fixture(scope="module")
def con(demo_store):
    c = connect_readonly(demo_store)
    yield c
    c.close()


@pytest.mark.parametrize("window", WINDOWS)
@pytest.mark.parametrize("part", SLICES)
def test_spend_adds_up_under_every_filter(con, window, part) -> None:
    start, end = WINDOWS[window]
    f = Filters(start, end, **SLICES[part])
    h = headline(con, f)
    steps = bridge(con, f)
    assert list(steps["bucket"][:len(BRIDGE)]) == list(BRIDGE)
    assert h["gpu_spend_usd"] > 0
    assert steps["usd"].sum() == pytest.approx(h["gpu_spend_usd"], rel=1e-12)
    assert h["useful_usd"] + h["wasted_usd"] + h["idle_cost_usd"] == pytest.approx(
        h["gpu_spend_usd"], rel=1e-12)
    for dim in ("model", "tenant", "route", "node"):
        rows = by_dimension(con, f, dim)
        assert cents(rows["total_usd"].sum()) == cents(h["gpu_spend_usd"]), dim
        assert rows["requests"].sum() == h["requests"], dim
    if f.narrows_requests:  # what no one is charged for stays outside the selection
        assert h["not_charged_usd"] > 0
        assert NOT_CHARGED not in set(by_dimension(con, f, "model")["model"])
        whole = headline(con, Filters(start, end, nodes=f.nodes))
        assert h["gpu_spend_usd"] + h["not_charged_usd"] <= whole["gpu_spend_usd"] + 1e-9
    # energy and carbon on one basis: carbon is the slice's measured energy × PUE × grid
    assert h["carbon_kg"] / h["energy_kwh"] == pytest.approx(1.3 * 380 / 1000)


def test_a_tenant_filter_gives_the_tenants_row(con) -> None:
    everyone = by_dimension(con, Filters(), "tenant").set_index("tenant")
    for tenant in ("acme", "globex", "initech"):
        h = headline(con, Filters(tenants=(tenant,)))
        assert cents(h["gpu_spend_usd"]) == cents(everyone.loc[tenant, "total_usd"])
        assert h["requests"] == everyone.loc[tenant, "requests"]


def test_summary_focus_report_and_store_agree_to_the_cent(demo_store, con, tmp_path) -> None:
    def cli(*args: str) -> str:
        out = subprocess.run([sys.executable, "-m", "commands", *args, "--data",
                              str(demo_store.root)], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        return out.stdout

    s = json.loads(cli("analytics", "summary", "--json"))
    h = headline(con, Filters())
    for key in ("gpu_spend_usd", "attributed_usd", "idle_cost_usd", "wasted_usd",
                "cost_per_response_usd", "energy_kwh", "carbon_kg", "cost_per_answer_usd",
                "cost_per_completed_answer_usd", "retry_cost_usd", "context_cost_usd"):
        assert s[key] == pytest.approx(h[key], rel=1e-12), key
    # answers: their cost is their requests' cost, each request in exactly one answer
    answers_usd, requests_usd, in_answers, requests = con.execute(
        "SELECT (SELECT sum(cost_usd) FROM answer_costs), (SELECT sum(cost_usd) FROM "
        "request_costs), (SELECT sum(requests) FROM answer_costs), "
        "(SELECT count(*) FROM request_costs)").fetchall()[0]
    assert cents(answers_usd) == cents(requests_usd) and in_answers == requests
    gpu_time = con.execute("SELECT sum(cost_usd) FROM gpu_time").fetchall()[0][0]
    assert cents(s["gpu_spend_usd"]) == cents(gpu_time)

    focus = tmp_path / "focus.csv"
    cli("analytics", "export", "--out", str(focus), "--grain", "hour")
    billed = duckdb.sql(f"SELECT sum(BilledCost), sum(x_Requests), "
                        f"sum(BilledCost) FILTER (WHERE x_ChargeKind = 'idle'), "
                        f"sum(x_CarbonGrams) FROM '{focus}'").fetchall()[0]
    assert cents(billed[0]) == cents(s["gpu_spend_usd"])
    assert billed[1] == s["requests"]
    assert cents(billed[2]) == cents(s["idle_cost_usd"])
    assert billed[3] / 1000 == pytest.approx(s["carbon_kg"], rel=1e-9)

    week = Week.parse("2026-W48")  # the demo's day lies in it
    r = weekly_figures(con, week)
    assert cents(r.now["gpu_spend_usd"]) == cents(s["gpu_spend_usd"])
    assert cents(r.waste.set_index("cause").loc["idle", "usd"]) == cents(s["idle_cost_usd"])
    assert cents(r.by_model["total_usd"].sum()) == cents(s["gpu_spend_usd"])
    assert cents(r.by_tenant["total_usd"].sum()) == cents(s["gpu_spend_usd"])
    assert r.now["cost_per_completed_answer_usd"] == pytest.approx(
        s["cost_per_completed_answer_usd"], rel=1e-12)


def test_the_dashboard_pages_show_the_same_spend(monkeypatch, demo_store, con) -> None:
    monkeypatch.setenv("INFERLEDGER_DATA", str(demo_store.root))
    at = AppTest.from_file(APP, default_timeout=120).run()
    _, newest = base.coverage(con)
    for tenants in ((), ("globex",)):
        if tenants:
            at.sidebar.multiselect(key="f_tenant").set_value(list(tenants)).run()
        f = Filters.for_range("Last 7 days", newest, tenants=tenants)
        want = ui.money(headline(con, f)["gpu_spend_usd"])
        assert {m.label: m.value for m in at.metric}["GPU spend"] == want
        at.switch_page("views/cost.py").run()
        assert not at.exception
        assert any(f"Rows add up to {want}" in c.value for c in at.caption)
        at.switch_page("views/overview.py").run()
