"""Measured inputs are checked before they are priced: an implausible interval is
quarantined with its reason, shown as `unmeasured`, never attributed or priced, and
conservation reads measured = valid + quarantined."""

from __future__ import annotations

import pytest

from analytics.settings import Settings
from tests.builders import Fleet, rows

T0 = 1_800_000_000.0 + 100  # inside one hour
G = "GPU-cccccccc-0000-0000-0000-000000000001"


def checked(f: Fleet, settings: Settings | None = None) -> tuple[list[dict], dict, list[dict]]:
    con = f.con(settings)
    intervals = rows(con, f"SELECT t0 - {T0!r} AS t0, measured_s, measured_j, "
                          "quarantine_reason FROM int_gpu_intervals ORDER BY t0, t1")
    [gpu] = rows(con, "SELECT * FROM mart_gpu_time")
    [c] = rows(con, "SELECT * FROM mart_conservation")
    assert max(c["rel_error_s"], c["rel_error_j"]) < 1e-12
    assert c["measured_s"] == pytest.approx(c["attributed_s"] + c["unattributed_s"]
                                            + c["unmeasured_s"])
    return intervals, gpu, rows(con, "SELECT * FROM mart_request_costs")


def test_two_agents_reporting_one_gpu_are_quarantined_not_added_up() -> None:
    """Two agents interleave their own energy counters for one hw.id: each delta between them
    is nonsense (here 500,000 J in 0.5 s), so none is priced."""
    f = Fleet()
    r = f.request(scheduled=T0, first_token=T0, finished=T0 + 3, gpus=[G], output_tokens=30)
    for k in range(4):
        f.sample(G, T0 + k, energy_j=100.0 * k, source="agent-a", power_limit_w=700)
        f.sample(G, T0 + k + 0.5, energy_j=500_000.0 + 100.0 * k, source="agent-b",
                 power_limit_w=700)
    intervals, gpu, [cost] = checked(f)
    assert {i["quarantine_reason"] for i in intervals} == {"two_sources"}
    assert gpu["unmeasured_s"] == pytest.approx(3.5) and gpu["useful_s"] == 0
    assert gpu["unmeasured_reasons"] == "two_sources" and gpu["cost_usd"] == 0
    assert cost["request_uid"] == r and cost["gpu_seconds"] == 0 and cost["cost_usd"] == 0


def test_power_above_the_limit_is_quarantined_and_the_rest_priced() -> None:
    f = Fleet()
    f.request(scheduled=T0, first_token=T0, finished=T0 + 2, gpus=[G], output_tokens=20)
    f.sample(G, T0, energy_j=0.0, power_limit_w=700)
    f.sample(G, T0 + 1, energy_j=500.0, power_limit_w=700)  # 500 W: fine
    f.sample(G, T0 + 2, energy_j=500.0 + 1100.0, power_limit_w=700)  # 1100 W > 700 × 1.5
    intervals, gpu, [cost] = checked(f)
    assert [i["quarantine_reason"] for i in intervals] == [None, "power_above_limit"]
    assert (gpu["useful_s"], gpu["useful_j"]) == pytest.approx((1.0, 500.0))
    assert (gpu["unmeasured_s"], gpu["unmeasured_j"]) == pytest.approx((1.0, 1100.0))
    assert cost["energy_j"] == pytest.approx(500.0)
    # A wider margin lets the same reading through.
    intervals, gpu, _ = checked(f, Settings(power_limit_margin=2.0))
    assert [i["quarantine_reason"] for i in intervals] == [None, None]
    assert gpu["unmeasured_s"] == 0 and gpu["unmeasured_reasons"] is None


def test_a_clock_stepping_back_and_a_long_gap_are_quarantined() -> None:
    f = Fleet()
    f.request(scheduled=T0, first_token=T0, finished=T0 + 1, gpus=[G], output_tokens=10)
    for i, (t, e) in enumerate(((0, 0.0), (1, 100.0), (2, 200.0))):
        f.sample(G, T0 + t, energy_j=e, received_at=i + 1)
    # Received last, stamped between earlier samples: the agent's clock went back.
    f.sample(G, T0 + 1.5, energy_j=260.0, received_at=10)
    f.sample(G, T0 + 1002, energy_j=100_000.0, received_at=11)  # 1000 s later: a gap
    intervals, gpu, _ = checked(f)
    assert [(i["t0"], i["quarantine_reason"]) for i in intervals] == [
        (0, None), (1, "time_backwards"), (1.5, "time_backwards"), (2, "gap")]
    assert gpu["unmeasured_reasons"] == "gap, time_backwards"
    assert gpu["unmeasured_s"] == pytest.approx(1001.0)
    assert gpu["useful_s"] == pytest.approx(1.0)


def test_the_gpu_page_and_the_report_show_what_was_quarantined(tmp_path) -> None:
    from datetime import UTC, datetime

    from analytics.pipeline import run
    from analytics.report.figures import weekly_figures
    from analytics.report.render import html, text
    from analytics.report.week import Week
    from dashboard.queries.gpu import unmeasured
    from inferledger.results.filters import Filters
    from inferledger.store import DataDir, connect_readonly

    f = Fleet()
    f.request(scheduled=T0, first_token=T0, finished=T0 + 2, gpus=[G], output_tokens=20)
    f.sample(G, T0, energy_j=0.0, power_limit_w=700)
    f.sample(G, T0 + 1, energy_j=500.0, power_limit_w=700)
    f.sample(G, T0 + 2, energy_j=500.0 + 5000.0, power_limit_w=700)
    data = f.write(DataDir.at(tmp_path / "store"))
    run(data)
    con = connect_readonly(data)
    try:
        page = unmeasured(con, Filters())
        assert page["unmeasured_s"].tolist() == pytest.approx([1.0])
        assert page["reasons"].tolist() == ["power_above_limit"]
        day = datetime.fromtimestamp(T0, UTC)
        iso = day.isocalendar()
        figures = weekly_figures(con, Week.parse(f"{iso.year}-W{iso.week:02d}"))
    finally:
        con.close()
    report = text(figures)
    assert "Unmeasured GPU time (inputs failed a check; not attributed or priced):" in report
    assert "power_above_limit" in report and "power_above_limit" in html(figures, {})
