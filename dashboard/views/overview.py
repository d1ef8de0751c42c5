"""Overview: spend, responses, cost per response, useful vs wasted GPU time, energy, carbon,
latency and SLOs, each against the previous period, and how they moved."""

from __future__ import annotations

import altair as alt
import streamlit as st

from dashboard import ui
from dashboard.context import current, query
from dashboard.queries import overview as q

ctx = current()
f = ctx.filters
st.title("Overview")
now = query(q.kpis, f)
prev = f.previous()
before = query(q.kpis, prev) if prev is not None else None
if not now["requests"]:
    ui.no_data_yet("No requests in this range. ")
    st.stop()

row = st.columns(4)
ui.metric(row[0], "GPU spend", now, before, "gpu_spend_usd", ui.money, lower_is_better=True,
          help="Every measured GPU-second and joule in range, priced (node filter only)")
ui.metric(row[1], "Responses", now, before, "requests", ui.number)
ui.metric(row[2], "Cost per response", now, before, "cost_per_response_usd",
          lambda v: ui.money(v, 6), lower_is_better=True)
ui.metric(row[3], "Cost per 1k output tokens", now, before, "cost_per_1k_output_usd",
          lambda v: ui.money(v, 5), lower_is_better=True)
row = st.columns(4)
ui.metric(row[0], "Useful GPU time", now, before, "useful_fraction", ui.pct)
ui.metric(row[1], "Wasted GPU time", now, before, "wasted_fraction", ui.pct,
          lower_is_better=True,
          help="Failed, aborted, timed-out, preempted, model loading and unaccounted time")
ui.metric(row[2], "Idle GPU time", now, before, "idle_fraction", ui.pct, lower_is_better=True)
ui.metric(row[3], "Idle cost", now, before, "idle_cost_usd", ui.money, lower_is_better=True)
row = st.columns(4)
ui.metric(row[0], "Energy", now, before, "energy_kwh", lambda v: f"{ui.number(v, 2)} kWh",
          lower_is_better=True)
ui.metric(row[1], "Carbon", now, before, "carbon_kg", lambda v: f"{ui.number(v, 2)} kg CO₂e",
          lower_is_better=True)
ui.metric(row[2], "TTFT p95", now, before, "ttft_p95_s", ui.secs, lower_is_better=True)
ui.metric(row[3], "SLO attainment", now, before, "slo_attainment", ui.pct)
if f.narrows_requests:
    st.caption("Model and tenant filters narrow the response figures; GPU spend, time shares "
               "and energy are per GPU and follow the node filter only.")

cost = query(q.cost_trend, f)
gpu = query(q.gpu_trend, f)
left, right = st.columns(2)
with left:
    st.subheader("Attributed cost by model")
    st.altair_chart(alt.Chart(cost).mark_area().encode(
        x=alt.X("time:T", title=None), y=alt.Y("sum(cost_usd):Q", title="USD"),
        color="model:N", tooltip=["time:T", "model:N", "cost_usd:Q", "requests:Q"]),
        width="stretch")
with right:
    st.subheader("GPU time: useful, wasted, idle")
    shares = gpu.melt("time", var_name="share", value_name="fraction")
    st.altair_chart(alt.Chart(shares).mark_area().encode(
        x=alt.X("time:T", title=None),
        y=alt.Y("fraction:Q", stack="normalize", axis=alt.Axis(format="%"), title=None),
        color=alt.Color("share:N", sort=["useful", "wasted", "idle"]),
        tooltip=["time:T", "share:N", alt.Tooltip("fraction:Q", format=".1%")]),
        width="stretch")
st.download_button("Download cost and responses over time (CSV)",
                   cost.to_csv(index=False).encode(), "cost_over_time.csv", "text/csv",
                   key="dl-cost_over_time")
