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
