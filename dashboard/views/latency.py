"""Latency: where a response's time went (edge, queue, prefill, decode, other spans), the
percentiles over time, the tail, SLO attainment and goodput."""

from __future__ import annotations

import altair as alt
import streamlit as st

from dashboard import ui
from dashboard.context import current, query
from dashboard.queries import latency as q

f = current().filters
st.title("Latency")
slo = query(q.slo, f)
if slo.empty:
    ui.no_data_yet("No requests in this range. ")
    st.stop()

st.subheader("Where the time went (mean seconds per successful response)")
dim = st.radio("Group by", ["model", "tenant", "route"], horizontal=True, key="lat_dim")
phases = query(q.phases, f, dim)
st.altair_chart(alt.Chart(phases).mark_bar().encode(
    y=alt.Y(f"{dim}:N", title=None), x=alt.X("mean_s:Q", title="seconds"),
    color=alt.Color("phase:N", sort=["edge_overhead", "queue", "prefill", "decode",
                                     "other_spans"]),
    tooltip=[f"{dim}:N", "phase:N", alt.Tooltip("mean_s:Q", format=".3f")]), width="stretch")

st.subheader("Percentiles over time")
pct = query(q.percentiles_over_time, f)
metric = st.radio("Metric", ["ttft", "tpot", "e2e"], horizontal=True, key="lat_metric",
                  format_func={"ttft": "TTFT", "tpot": "TPOT", "e2e": "end to end"}.get)
one = pct[pct["metric"] == metric].melt(["time", "metric"], ["p50", "p95", "p99"],
                                        var_name="percentile", value_name="seconds")
st.altair_chart(alt.Chart(one).mark_line().encode(
    x=alt.X("time:T", title=None), y=alt.Y("seconds:Q", scale=alt.Scale(type="log")),
    color="percentile:N", tooltip=["time:T", "percentile:N", "seconds:Q"]), width="stretch")

ui.table("SLO attainment and goodput by model", slo, "slo_by_model")
st.caption("A response is good when it succeeded within every objective set for its model "
           "(settings file; vllm bench serve's definition). Goodput: good responses per "
           "second.")
ui.table("The tail: slowest responses", query(q.tail, f), "slowest_responses")
