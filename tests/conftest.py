from __future__ import annotations

import pytest

from collector.service import Collector
from inferledger.store import DataDir


@pytest.fixture
def data(tmp_path) -> DataDir:
    return DataDir.at(tmp_path / "data")


@pytest.fixture
def collector(data):
    c = Collector(data, grpc_port=0, http_port=0).start()
    yield c
    c.stop()


WEDNESDAY_2PM = 1_795_615_200.0  # 2026-11-25 14:00 UTC: business hours, the night job done


@pytest.fixture(scope="session")
def demo_store(tmp_path_factory) -> DataDir:
    """A day of the demo scenario, generated and sent through a real collector, analysed:
    what a user of the dashboard sees after `inferledger demo --history 1d`."""
    from analytics.pipeline import run
    from simulator.history.generate import generate_history
    from simulator.scenario import load_scenario

    data = DataDir.at(tmp_path_factory.mktemp("demo") / "data")
    c = Collector(data, grpc_port=0, http_port=0).start()
    try:
        generate_history(load_scenario("demo"), 1.0, f"http://127.0.0.1:{c.http_port}",
                         end=WEDNESDAY_2PM, seed=3)
    finally:
        c.stop()
    run(data)
    return data
