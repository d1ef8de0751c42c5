"""Every dashboard page in Streamlit's AppTest: on a day of demo data, filtered, and on an
empty store."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from analytics.pipeline import run
from tests.builders import Fleet

APP = str(Path(__file__).resolve().parent.parent / "dashboard" / "app.py")
PAGES = ("overview", "cost", "gpu_efficiency", "latency", "explorer", "settings")
T0 = 1_800_000_000.0
G = "GPU-cccccccc-0000-0000-0000-000000000001"


@pytest.fixture
def store(data):
    """Two requests on one GPU: small enough to know every figure."""
    f = Fleet()
    f.request(scheduled=T0, first_token=T0 + 0.1, finished=T0 + 2, gpus=[G], input_tokens=100,
              output_tokens=100, model="llama", tenant="acme")
    f.request(scheduled=T0 + 1, first_token=T0 + 1.2, finished=T0 + 3, gpus=[G],
              output_tokens=50, model="qwen", tenant="globex", outcome="client_abort")
    for t, e in ((0, 0.0), (1, 300.0), (2, 700.0), (3, 900.0), (4, 970.0)):
        f.sample(G, T0 + t, energy_j=e)
    # Mark this store as simulated, the way simulated components label their resource.
    for span in f.spans:
        span["resource_attributes"].append(("inferledger.simulated", "true"))
    run(f.write(data))
    return data


def _app(monkeypatch, data, page: str = "overview") -> AppTest:
    monkeypatch.setenv("INFERLEDGER_DATA", str(data.root))
    at = AppTest.from_file(APP, default_timeout=120).run()
    if page != "overview":
        at.switch_page(f"views/{page}.py").run()
    return at


def _frames(at: AppTest) -> list:
    return [d.value for d in at.dataframe]


@pytest.mark.parametrize("page", PAGES)
def test_every_page_shows_demo_data(monkeypatch, demo_store, page) -> None:
    at = _app(monkeypatch, demo_store, page)
    assert not at.exception, at.exception
    assert not at.error
    assert any("Simulated data" in w.value for w in at.warning)
    assert at.title
    if page == "overview":  # figures and charts; the trend's data as a CSV download
        assert not at.dataframe and len(at.get("download_button")) == 1
    else:
        assert at.dataframe, f"{page}: no tables"
        assert len(at.get("download_button")) == len(at.dataframe)  # every table has its CSV
    frames = _frames(at)
    if page == "overview":
        m = {x.label: x.value for x in at.metric}
        assert m["GPU spend"].startswith("$") and m["Useful GPU time"].endswith("%")
        assert int(m["Responses"].replace(",", "")) > 1000
        assert m["SLO attainment"].endswith("%") and m["Carbon"].endswith("CO₂e")
        # answers: an agent's steps and retries make fewer answers than responses
        assert 0 < int(m["Answers"].replace(",", "")) < int(m["Responses"].replace(",", ""))
        assert m["Cost per answer"].startswith("$") and float(m["Requests per answer"]) > 1
        assert m["Cost per completed answer"].startswith("$")
    elif page == "cost":
        from inferledger.results.kpis import NOT_CHARGED

        assert set(frames[0]["model"]) == {"llama-3.1-8b-instruct", "qwen2.5-32b-instruct",
                                           NOT_CHARGED}  # idle and overhead: its own row
        assert set(frames[1]["tenant"]) == {"acme", "globex", "initech", NOT_CHARGED}
        # by model, tenant, route and node: each table adds up to the same spend
        totals = {round(frames[i]["total_usd"].sum(), 6) for i in range(4)}
        assert len(totals) == 1
        assert set(frames[4]["gpu_model"]) == {"NVIDIA H100 80GB HBM3", "NVIDIA A100-SXM4-80GB"}
        apps = frames[5].set_index("route")  # cost per answer, by app
        assert apps.loc["ops-agent", "requests_per_answer"] > 2
        assert 0.05 < apps.loc["contract-rag", "context_share"] < 0.9  # of prompt and reads
        assert apps.loc["support-chat", "requests_per_answer"] == 1
    elif page == "gpu_efficiency":
        assert len(frames[0]) == 4  # GPU time by GPU
        assert (frames[1]["peak_power_w"] <= frames[1]["power_limit_w"]).all()
    elif page == "latency":
        slo = frames[0]
        assert set(slo["model"]) == {"llama-3.1-8b-instruct", "qwen2.5-32b-instruct"}
        assert slo["slo_attainment"].between(0, 1).all()
        assert frames[1]["e2e_s"].is_monotonic_decreasing  # the tail, slowest first
    elif page == "explorer":
        assert len(frames[0]) == 50
        assert {x.label for x in at.metric} >= {"End to end", "TTFT", "Cost", "SLO",
                                                 "Answer cost", "Of it retries"}
        assert len(frames[1]) >= 1  # the requests of its answer
        parts = frames[2]  # its share of each GPU-hour, priced
        assert (parts["gpu_seconds"] > 0).all() and (parts["gpu_cost_usd"] > 0).all()
    elif page == "settings":
        m = {x.label: x.value for x in at.metric}
        assert m["Attribution"] == "gpu_time" and m["PUE"]


def test_change_against_the_previous_period(monkeypatch, demo_store) -> None:
    at = _app(monkeypatch, demo_store)
    at.sidebar.selectbox(key="f_range").set_value("Last 6 hours").run()
    assert not at.exception
    deltas = {m.label: m.delta for m in at.metric}
    assert "vs previous period" in deltas["Responses"]


def test_explorer_finds_a_request_by_trace_id(monkeypatch, demo_store) -> None:
    at = _app(monkeypatch, demo_store, "explorer")
    trace = at.dataframe[0].value["trace_id"].iloc[3]
    at.text_input(key="ex_text").input(trace[:12]).run()
    assert not at.exception
    assert set(at.dataframe[0].value["trace_id"]) == {trace}  # an agent trace: its steps
    assert any(trace in c.value for c in at.caption)
    at.text_input(key="ex_text").input("no-such-trace").run()
    assert any("No request matches" in i.value for i in at.info)


def test_filters_narrow_every_figure(monkeypatch, store) -> None:
    at = _app(monkeypatch, store)
    at.sidebar.selectbox(key="f_range").set_value("All").run()
    assert {m.label: m.value for m in at.metric}["Responses"] == "2"
    at.sidebar.multiselect(key="f_model").set_value(["llama"]).run()
    assert not at.exception
    assert {m.label: m.value for m in at.metric}["Responses"] == "1"
    at.switch_page("views/cost.py").run()
    assert list(at.dataframe[0].value["model"]) == ["llama"]  # the filter follows the page
    at.sidebar.multiselect(key="f_tenant").set_value(["globex"]).run()
    # llama ∧ globex: no responses; only the GPU-level table (node filter only) is left.
    assert [d.value.columns[0] for d in at.dataframe] == ["gpu_model"]
    assert any(c.value == "Nothing in this range." for c in at.caption)


@pytest.mark.parametrize("page", PAGES)
def test_empty_store_explains_what_to_do(monkeypatch, data, page) -> None:
    at = _app(monkeypatch, data, page)
    assert not at.exception
    assert any("inferledger analytics run" in i.value for i in at.info)


@pytest.mark.parametrize("page", PAGES)
def test_results_without_requests_are_not_an_error(monkeypatch, data, page) -> None:
    run(data)  # analytics ran, but nothing has arrived yet
    at = _app(monkeypatch, data, page)
    assert not at.exception
    assert at.info or at.dataframe or at.caption
