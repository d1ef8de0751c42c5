"""InferLedger dashboard — Overview: what responses cost and where the GPU time went.

Run with ``inferledger dashboard --data DIR`` (the data directory arrives as
``$INFERLEDGER_DATA``). Queries are cached for a few seconds so a refresh shows data
seconds old without hammering the store.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import streamlit as st

from analytics.attribution import BUCKETS
from analytics.summary import NoResults, require_results
from dashboard import queries as q
from inferledger.store import DataDir, connect_readonly

RANGES = {"Last 15 minutes": timedelta(minutes=15), "Last hour": timedelta(hours=1),
          "Last 24 hours": timedelta(days=1), "Last 7 days": timedelta(days=7), "All": None}

st.set_page_config(page_title="InferLedger", layout="wide")


@st.cache_resource(ttl=60)
def _connection(data_root: str):
    return connect_readonly(DataDir.at(data_root))


@st.cache_data(ttl=5, show_spinner=False)
def _load(data_root: str, since: datetime | None, models: tuple, tenants: tuple) -> dict:
    con = _connection(data_root)
    f = q.Filters(since=since, models=models, tenants=tenants)
    return {
        "simulated": q.is_simulated(con),
        "kpis": q.kpis(con, f),
        "by_model": q.by_dimension(con, f, "model"),
        "by_tenant": q.by_dimension(con, f, "tenant"),
        "gpu": q.gpu_time_by_gpu(con, f),
        "trend": q.cost_over_time(con, f),
        "pricing": q.pricing_version(con),
    }


def _money(v: float | None, digits: int = 4) -> str:
    return "—" if v is None or v != v else f"${v:,.{digits}f}"


def _pct(v: float | None) -> str:
    return "—" if v is None or v != v else f"{v * 100:.1f}%"


def _secs(v: float | None) -> str:
    return "—" if v is None or v != v else f"{v * 1000:.0f} ms"


def _table(title: str, df, key: str) -> None:
    st.subheader(title)
    st.dataframe(df, hide_index=True, width="stretch")
    st.download_button("Download CSV", df.to_csv(index=False).encode(), f"{key}.csv",
                       "text/csv", key=f"dl-{key}")


def main() -> None:
    data_root = os.environ.get("INFERLEDGER_DATA", "./inferledger-data")
    st.title("InferLedger — cost per response")
    try:
        require_results(DataDir.at(data_root))
    except NoResults as e:
        st.info(f"Nothing to show yet. {e}. Start the demo (`inferledger demo`) or point vLLM "
                "and the node agents at the collector.")
        return
    con = _connection(data_root)
    models, tenants = q.choices(con)
    with st.sidebar:
        st.caption(f"Store: `{DataDir.at(data_root).root}`")
        span = st.selectbox("Time range", list(RANGES), index=len(RANGES) - 1)
        sel_models = st.multiselect("Model", models)
        sel_tenants = st.multiselect("Tenant", tenants)
        if st.button("Refresh"):
            st.cache_data.clear()
    delta = RANGES[span]
    since = datetime.now(UTC) - delta if delta else None
    d = _load(data_root, since, tuple(sel_models), tuple(sel_tenants))
    if d["simulated"]:
        st.warning("**Simulated data.** These figures come from InferLedger's simulated vLLM "
                   "fleet and simulated GPUs, not from real hardware.")
    k = d["kpis"]
    if not k["requests"]:
        st.info("No requests in the store yet. Start the demo (`inferledger demo`) or point "
                "vLLM and the node agents at the collector; results appear after the next "
                "analytics run.")
        return
    c = st.columns(4)
    c[0].metric("GPU spend", _money(k["gpu_spend_usd"]),
                help="All measured GPU time and energy in range, priced")
    c[1].metric("Requests", f"{int(k['requests']):,}")
    c[2].metric("Cost per response", _money(k["cost_per_response_usd"], 6))
    c[3].metric("Cost per 1k output tokens", _money(k["cost_per_1k_output_usd"], 5))
    c = st.columns(4)
    c[0].metric("Useful GPU time", _pct(k["useful_fraction"]))
    c[1].metric("Idle GPU time", _pct(k["idle_fraction"]), help="Idle cost: "
                + _money(k["idle_cost_usd"]))
    c[2].metric("TTFT p50", _secs(k["ttft_p50_s"]))
    c[3].metric("TTFT p95", _secs(k["ttft_p95_s"]))
    st.caption(f"Placed requests: {int(k['placed'])}/{int(k['requests'])} · energy "
               f"{k['energy_kwh'] or 0:.3f} kWh · {d['pricing'] or ''}")
    _table("By model", d["by_model"], "cost_by_model")
    _table("By tenant", d["by_tenant"], "cost_by_tenant")
    st.subheader("GPU time: useful vs wasted (seconds)")
    gpu = d["gpu"]
    if len(gpu):
        st.bar_chart(gpu.set_index("gpu")[[f"{b}_s" for b in BUCKETS]], horizontal=True)
    _table("GPU time by GPU", gpu, "gpu_time")
    if len(d["trend"]):
        st.subheader("Attributed cost per minute")
        st.line_chart(d["trend"], x="minute", y="cost_usd", color="model")


main()
