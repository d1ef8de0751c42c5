"""The overview page in Streamlit's AppTest: with data, filtered, and on an empty store."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from analytics.pipeline import run
from tests.builders import Fleet

APP = str(Path(__file__).resolve().parent.parent / "dashboard" / "app.py")
T0 = 1_800_000_000.0
G = "GPU-cccccccc-0000-0000-0000-000000000001"


@pytest.fixture
def store(data):
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


def _app(monkeypatch, data) -> AppTest:
    monkeypatch.setenv("INFERLEDGER_DATA", str(data.root))
    return AppTest.from_file(APP, default_timeout=60)


def test_overview_with_data(monkeypatch, store) -> None:
    at = _app(monkeypatch, store).run()
    assert not at.exception
    assert any("Simulated data" in w.value for w in at.warning)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Requests"] == "2"
    assert metrics["Cost per response"].startswith("$")
    assert metrics["Useful GPU time"].endswith("%")
    by_model = at.dataframe[0].value
    assert set(by_model["model"]) == {"llama", "qwen"}


def test_filters_narrow_every_figure(monkeypatch, store) -> None:
    at = _app(monkeypatch, store).run()
    at.sidebar.multiselect[0].set_value(["llama"]).run()
    assert not at.exception
    assert {m.label: m.value for m in at.metric}["Requests"] == "1"
    assert list(at.dataframe[0].value["model"]) == ["llama"]


def test_empty_store_explains_what_to_do(monkeypatch, data) -> None:
    at = _app(monkeypatch, data).run()
    assert not at.exception
    assert any("inferledger analytics run" in i.value for i in at.info)
    run(data)  # analytics ran, still no requests
    at = _app(monkeypatch, data).run()
    assert not at.exception and any("No requests" in i.value for i in at.info)
