"""The GPU page's power figures, from the samples as agents send them."""

from __future__ import annotations

import pytest

from analytics.pipeline import run
from dashboard.queries.gpu import activity, node_power
from inferledger.results.filters import Filters
from inferledger.store import DataDir, connect_readonly
from tests.builders import Fleet

T0 = 1_800_000_000.0


def store(f: Fleet, tmp_path):
    """A reader's session on a store holding ``f``'s data, analysed, as the dashboard opens
    one."""
    data = f.write(DataDir.at(tmp_path / "store"))
    run(data)
    return connect_readonly(data)
G1 = "GPU-aaaaaaaa-0000-0000-0000-000000000001"
G2 = "GPU-aaaaaaaa-0000-0000-0000-000000000002"


def test_node_power_sums_each_gpu_once_however_their_samples_interleave(tmp_path) -> None:
    """Two GPUs of one node sampled at their own instants (one every second, the other
    half a second later and twice as often): the node draws 300 + 500 W against 700 + 700 W
    of limits, then 400 + 500 W at the peak. Rounding each sample's second would sum one
    GPU's samples, or three."""
    f = Fleet()
    for k in range(60):
        f.sample(G1, T0 + k, energy_j=None, power_w=300.0 if k < 50 else 400.0,
                 power_limit_w=700.0)
        for half in (0.5, 0.75):
            f.sample(G2, T0 + k + half, energy_j=None, power_w=500.0, power_limit_w=700.0)
    [node] = node_power(store(f, tmp_path), Filters()).to_dict("records")
    assert node["power_limit_w"] == 1400
    assert node["peak_power_w"] == 900
    assert node["mean_power_w"] == pytest.approx(800 + 100 * 10 / 60, abs=0.5)
    assert node["headroom_at_peak_w"] == 500


def test_gpus_of_one_node_and_model_have_distinct_short_labels(tmp_path) -> None:
    f = Fleet()
    for g in (G1, G2):
        f.sample(g, T0, energy_j=None, power_w=100.0)
    labels = sorted(activity(store(f, tmp_path), Filters())["gpu"].unique())
    assert labels == ["node · …000001 (H100 80GB HBM3)", "node · …000002 (H100 80GB HBM3)"]
