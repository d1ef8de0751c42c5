"""Idle policies, API comparison, timeouts and latency/SLO figures on hand-checked data."""

from __future__ import annotations

from dataclasses import replace

import pytest

from analytics.pricing import load_pricing
from analytics.settings import Settings, SettingsError, Slo, load_settings
from tests.builders import Fleet, rows

T0 = 1_800_000_000.0
G1 = "GPU-dddddddd-0000-0000-0000-000000000001"
G2 = "GPU-dddddddd-0000-0000-0000-000000000002"


def fleet() -> tuple[Fleet, str, str]:
    """Two GPUs on one node: G1 serves model a for 1 s then idles 3 s; G2 serves b, idles 1 s."""
    f = Fleet()
    ra = f.request(scheduled=T0, first_token=T0, finished=T0 + 1, gpus=[G1], output_tokens=10,
                   model="a", tenant="x")
    rb = f.request(scheduled=T0, first_token=T0, finished=T0 + 3, gpus=[G2], output_tokens=10,
                   model="b", tenant="y")
    for g in (G1, G2):
        for t in range(5):
            f.sample(g, T0 + t, energy_j=100.0 * t)
    return f, ra, rb


def costs(f: Fleet, policy: str) -> dict[str, dict]:
    pricing = replace(load_pricing(), idle_policy=policy)
    got = rows(f.con(pricing=pricing), "SELECT * FROM mart_request_costs")
    return {r["request_uid"]: r for r in got}


def idle_cost(f: Fleet) -> dict[str, float]:
    return {g["gpu_uuid"]: g["idle_cost_usd"]
            for g in rows(f.con(), "SELECT * FROM mart_gpu_time")}


def test_separate_keeps_idle_out_of_responses() -> None:
    f, ra, rb = fleet()
    c = costs(f, "separate")
    for r in (ra, rb):
        assert c[r]["idle_share_usd"] == 0 and c[r]["total_cost_usd"] == c[r]["cost_usd"]


def test_node_and_tenant_spread_all_idle_by_cost() -> None:
    f, ra, rb = fleet()
    idle = idle_cost(f)
    for policy in ("node", "tenant"):
        c = costs(f, policy)
        shares = c[ra]["idle_share_usd"] + c[rb]["idle_share_usd"]
        assert shares == pytest.approx(idle[G1] + idle[G2])
        # rb cost three times ra (3 s vs 1 s on identical GPUs): three times the idle share
        assert c[rb]["idle_share_usd"] == pytest.approx(3 * c[ra]["idle_share_usd"])
        assert c[ra]["total_cost_usd"] == pytest.approx(c[ra]["cost_usd"]
                                                        + c[ra]["idle_share_usd"])


def test_model_policy_charges_each_model_its_own_gpus_idle() -> None:
    f, ra, rb = fleet()
    idle = idle_cost(f)
    c = costs(f, "model")
    assert c[ra]["idle_share_usd"] == pytest.approx(idle[G1])
    assert c[rb]["idle_share_usd"] == pytest.approx(idle[G2])


def test_api_list_price_comparison(tmp_path) -> None:
    f = Fleet()
    r = f.request(scheduled=T0, first_token=T0, finished=T0 + 1, gpus=[G1], input_tokens=1000,
                  output_tokens=500, model="llama-3.1-8b-instruct")
    f.sample(G1, T0, energy_j=0.0)
    f.sample(G1, T0 + 1, energy_j=100.0)
    got = {x["request_uid"]: x for x in rows(f.con(), "SELECT * FROM mart_request_costs")}
    assert got[r]["api_cost_usd"] == pytest.approx(1500 / 1e6 * 0.20)


def test_timeouts_are_their_own_waste_bucket() -> None:
    f = Fleet()
    f.request(scheduled=T0, first_token=T0, finished=T0 + 1, gpus=[G1], output_tokens=10,
              outcome="timeout")
    f.sample(G1, T0, energy_j=0.0)
    f.sample(G1, T0 + 1, energy_j=100.0)
    g = rows(f.con(), "SELECT * FROM mart_gpu_time")[0]
    assert g["timed_out_s"] == pytest.approx(1.0) and g["useful_s"] == 0


def test_percentiles_and_slo_attainment() -> None:
    f = Fleet()
    # 4 requests of model m: TTFTs 0.1, 0.2, 0.3, 2.0 s (the last misses a 1 s TTFT SLO).
    for i, ttft in enumerate((0.1, 0.2, 0.3, 2.0)):
        f.request(scheduled=T0 + i, first_token=T0 + i + ttft, finished=T0 + i + 3,
                  gpus=[G1], output_tokens=11, model="m", ttft=ttft)
    settings = Settings(slos=(Slo("*", ttft_s=1.0, tpot_s=1.0, e2e_s=10.0),))
    lat = {(r["dimension"], r["value"]): r
           for r in rows(f.con(settings), "SELECT * FROM mart_latency")}
    m = lat[("model", "m")]
    assert m["requests"] == 4 and m["slo_attainment"] == pytest.approx(0.75)
    assert m["ttft_p50_s"] == pytest.approx(0.25)
    assert m["ttft_p99_s"] == pytest.approx(0.3 + 0.97 * 1.7)  # linear interpolation
    # TPOT as vllm bench serve defines it: (e2e − TTFT) / (tokens − 1)
    assert m["tpot_p50_s"] == pytest.approx(((3.002 - 0.2) + (3.002 - 0.3)) / 2 / 10, rel=1e-3)
    assert lat[("all", "*")]["requests"] == 4 and ("tenant", "t") in lat


def test_settings_file(tmp_path) -> None:
    f = tmp_path / "s.toml"
    f.write_text('[attribution]\nmethod = "time_overlap"\n[[slo]]\nmodel = "m"\nttft_s = 0.5\n'
                 '[[placement]]\nhost = "h"\ngpu_uuids = ["GPU-1", "GPU-2"]\n'
                 '[checks]\npower_limit_margin = 1.2\n')
    s = load_settings(f)
    assert s.method == "time_overlap" and s.slos == (Slo("m", 0.5, None, None),)
    assert (s.power_limit_margin, s.max_sample_gap_s) == (1.2, 900.0)
    assert s.placement == (("h", None, "GPU-1"), ("h", None, "GPU-2"))
    f.write_text('[attribution]\nmethod = "fair"\n')
    with pytest.raises(SettingsError, match="fair"):
        load_settings(f)
    f.write_text('[checks]\npower_limit_margin = 0.5\n')
    with pytest.raises(SettingsError, match=r"\[checks\] power_limit_margin = 0.5 is not allowed"):
        load_settings(f)
    f.write_text('[[slo]]\nttft_s = -1\n')
    with pytest.raises(SettingsError, match=r"s.toml \[\[slo\]\] #1 ttft_s = -1 is not allowed: "
                       "expected a number > 0"):
        load_settings(f)
    # A model's shape: a new one is added to the known ones, a known one replaced.
    f.write_text('[[model]]\nmodel = "Acme/Big-1"\nweight_bytes = 2e9\nkv_bytes_per_token = 1e4\n'
                 '[[model]]\nmodel = "llama-3.1-8b-instruct"\nweight_bytes = 1e9\n'
                 'kv_bytes_per_token = 1e4\n')
    shapes = {m.model: m.weights_in_kv_tokens for m in load_settings(f).models}
    assert shapes["acme/big-1"] == 200_000 and shapes["llama-3.1-8b-instruct"] == 100_000
    assert "qwen2.5-32b-instruct" in shapes
    f.write_text('[[model]]\nmodel = "x"\nweight_bytes = 1e9\n')
    with pytest.raises(SettingsError,
                       match=r"\[\[model\]\] #1: missing field 'kv_bytes_per_token'"):
        load_settings(f)


def test_rollups_add_up_to_the_requests(data) -> None:
    from analytics.pipeline import run
    from analytics.summary import summary
    from inferledger.store import connect_readonly

    f, _, _ = fleet()
    run(f.write(data))
    con = connect_readonly(data)
    per_request = con.execute("SELECT sum(cost_usd), count(*) FROM request_costs").fetchall()
    hourly = con.execute("SELECT sum(cost_usd), sum(requests) FROM cost_hourly").fetchall()
    daily = con.execute("SELECT sum(cost_usd), sum(requests) FROM cost_daily").fetchall()
    assert per_request[0][1] == hourly[0][1] == daily[0][1] == 2
    assert per_request[0][0] == pytest.approx(hourly[0][0]) == pytest.approx(daily[0][0])
    s = summary(data)
    assert s["requests"] == 2 and s["cost_per_response_usd"] == pytest.approx(
        per_request[0][0] / 2)


def test_changed_pricing_needs_reprice(data, tmp_path) -> None:
    from analytics.pipeline import RepriceRequired, run

    f, _, _ = fleet()
    f.write(data)
    run(data)
    other = tmp_path / "p.toml"
    other.write_text('version = "v2"\n[[gpu]]\nmatch = "H100"\nusd_per_hour = 9\n')
    with pytest.raises(RepriceRequired, match="--reprice"):
        run(data, other)
    run(data, other, reprice=True)
    import duckdb

    version = duckdb.sql("SELECT DISTINCT pricing_version FROM read_parquet(?)",
                         params=[str(data.derived_table("request_costs") / "*.parquet")]).fetchall()
    assert version == [("v2",)]


def test_focus_export(data, tmp_path) -> None:
    import duckdb

    from analytics.export import export_focus
    from analytics.pipeline import run

    f, _, _ = fleet()
    run(f.write(data))
    n = export_focus(data, tmp_path / "focus.parquet", fmt="parquet", grain="hour")
    got = duckdb.sql("SELECT * FROM read_parquet(?)",
                     params=[str(tmp_path / "focus.parquet")]).fetchdf()
    assert len(got) == n
    assert {"BilledCost", "ChargePeriodStart", "ResourceId", "x_Model"} <= set(got.columns)
    usage = got[got.x_ChargeKind == "usage"]
    idle = got[got.x_ChargeKind == "idle"]
    assert set(got.x_ChargeKind) == {"usage", "idle"} and len(idle) == 2  # one per GPU
    # Each model's cost is in the hour its GPU time ran; its response is counted in the hour
    # it started (its edge span began a moment before the GPU took it, in the hour before).
    assert usage.groupby("x_Model").x_Requests.sum().to_dict() == {"a": 1, "b": 1}
    assert usage.groupby("x_Model").BilledCost.sum().gt(0).all()
    gpu_time = str(data.derived_table("gpu_time") / "*.parquet")
    con_total = duckdb.sql("SELECT sum(cost_usd) FROM read_parquet(?)",
                           params=[gpu_time]).fetchall()[0][0]
    # every measured dollar is in the export: usage (attributed) + idle rows
    assert usage.BilledCost.sum() + idle.BilledCost.sum() == pytest.approx(con_total, rel=1e-6)


@pytest.mark.parametrize("policy", ["separate", "node", "model", "tenant"])
def test_the_ledger_carries_each_idle_policy(policy) -> None:
    """spend_hourly under every idle policy: its rows add up to gpu_time, and what it charges
    each tenant is that tenant's responses' total cost (their own + their idle share)."""
    f, _, _ = fleet()
    con = f.con(pricing=replace(load_pricing(), idle_policy=policy))
    spend, gpu = con.execute("SELECT (SELECT sum(cost_usd) FROM mart_spend), "
                             "(SELECT sum(cost_usd) FROM mart_gpu_time)").fetchall()[0]
    assert spend == pytest.approx(gpu, rel=1e-12)
    ledger = dict(con.execute("SELECT tenant, sum(cost_usd) FROM mart_spend WHERE tenant "
                              "IS NOT NULL GROUP BY 1").fetchall())
    responses = dict(con.execute("SELECT tenant, sum(total_cost_usd) FROM mart_request_costs "
                                 "GROUP BY 1").fetchall())
    assert ledger == pytest.approx(responses)
    uncharged = con.execute("SELECT coalesce(sum(cost_usd), 0) FROM mart_spend "
                            "WHERE allocation = 'unallocated' AND bucket = 'idle'"
                            ).fetchall()[0][0]
    assert (uncharged > 0) == (policy == "separate")
