"""GPU efficiency: useful and wasted GPU time by GPU and over time; utilization beside SM
activity; power against the limits (power is a capacity limit); the engines' KV-cache,
prefix-cache and queue gauges. GPU figures follow the node filter only."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from dashboard import ui
from dashboard.context import current, query
from dashboard.queries import gpu as q
from dashboard.queries.overview import bucket
from inferledger.vocabulary import GPU_TIME_BUCKETS as BUCKETS

f = current().filters
st.title("GPU efficiency")
by_gpu = query(q.buckets_by_gpu, f)
if by_gpu.empty:
    ui.no_data_yet("No GPU samples in this range. ")
    st.stop()

st.subheader("Where each GPU's time went")
long = by_gpu.melt("gpu", [f"{b}_s" for b in BUCKETS], var_name="bucket", value_name="seconds")
long["bucket"] = long["bucket"].str.removesuffix("_s")
st.altair_chart(alt.Chart(long).mark_bar().encode(
    y=alt.Y("gpu:N", title=None), x=alt.X("sum(seconds):Q", stack="normalize",
                                           axis=alt.Axis(format="%"), title=None),
    color=alt.Color("bucket:N", sort=list(BUCKETS), scale=ui.colour_scale(list(BUCKETS)),
                    title="Bucket"),
    tooltip=[alt.Tooltip("gpu:N", title="GPU"), alt.Tooltip("bucket:N", title="Bucket"),
             alt.Tooltip("seconds:Q", title="GPU-seconds", format=",.0f")]), width="stretch")
over_time = query(q.buckets_over_time, f)
st.altair_chart(alt.Chart(over_time).mark_area().encode(
    x=alt.X("time:T", title=None), y=alt.Y("gpu_hours:Q", title="GPU-hours"),
    color=alt.Color("bucket:N", sort=list(BUCKETS), scale=ui.colour_scale(list(BUCKETS)),
                    title="Bucket"),
    tooltip=[alt.Tooltip("time:T", title="Time"), alt.Tooltip("bucket:N", title="Bucket"),
             alt.Tooltip("gpu_hours:Q", title="GPU-hours", format=",.2f")]), width="stretch")
ui.table("GPU time by GPU (seconds)", by_gpu, "gpu_time_by_gpu")
bad = query(q.unmeasured, f)
if not bad.empty:
    st.warning(f"{bad['unmeasured_s'].sum() / 3600:,.2f} GPU-hours are **unmeasured**: their "
               "samples failed a check (two agents reporting one GPU, a clock stepping back, "
               "power above the limit, a long gap), so they are not attributed or priced.")
    ui.table("Unmeasured GPU time (quarantined inputs)", bad, "gpu_unmeasured")

st.subheader("Busy is not the same as working: utilization vs SM activity")
act = query(q.activity, f)
heat = act.melt(["time", "gpu"], ["utilization", "sm_active"], var_name="measure",
                value_name="value").dropna()
heat["end"] = heat["time"] + pd.Timedelta(1, unit="h" if bucket(f) == "hour" else "D")
st.altair_chart(alt.Chart(heat).mark_rect().encode(
    x=alt.X("time:T", title=None), x2="end:T", y=alt.Y("gpu:N", title=None),
    color=alt.Color("value:Q", scale=alt.Scale(domain=[0, 1]), legend=alt.Legend(format="%")),
    tooltip=["time:T", "gpu:N", "measure:N", alt.Tooltip("value:Q", format=".0%")],
).facet(row=alt.Row("measure:N", title=None)), width="stretch")
st.caption("Utilization is NVML's share of time a kernel ran; SM activity (GPM, Hopper and "
           "newer) is how much of the chip worked. A GPU near 100% utilization with low SM "
           "activity is serving small batches.")

st.subheader("Power against the limit")
power = act.groupby(["time", "host_name"], as_index=False)[["power_w", "power_limit_w"]].sum()
st.altair_chart(alt.layer(
    alt.Chart(power).mark_line().encode(x=alt.X("time:T", title=None),
                                        y=alt.Y("power_w:Q", title="W"), color="host_name:N"),
    alt.Chart(power).mark_line(strokeDash=[4, 4]).encode(
        x="time:T", y="power_limit_w:Q", color="host_name:N")), width="stretch")
ui.table("Power headroom per node", query(q.node_power, f), "power_headroom")
st.subheader("Energy per node")
energy = query(q.energy, f)
st.altair_chart(alt.Chart(energy).mark_bar().encode(
    x=alt.X("time:T", title=None), y=alt.Y("sum(energy_kwh):Q", title="kWh"),
    color=alt.Color("node:N", title="Node"),
    tooltip=[alt.Tooltip("time:T", title="Time"), alt.Tooltip("node:N", title="Node"),
             alt.Tooltip("energy_kwh:Q", title="kWh", format=",.3f")]), width="stretch")
st.caption("Measured GPU energy that passed the input checks, idle included: the energy "
           "the Overview's carbon is computed from.")

st.subheader("Engine pressure: KV cache, prefix cache, queue")
eng = query(q.engine_pressure, f)
if eng.empty:
    st.caption("No vLLM /metrics scraped in this range (the node agent scrapes them with "
               "--vllm; generated history has none).")
elif eng["time"].nunique() < 2:
    st.caption("One time bucket of engine gauges in this range: too little for a line; "
               "the table has its values. Choose a longer range for the trend.")
    ui.table("Engine gauges", eng, "engine_pressure")
else:
    cols = st.columns(3)
    for col, measure, title, fmt in ((cols[0], "kv_cache_usage", "KV-cache use", "%"),
                                     (cols[1], "prefix_cache_hit_rate", "Prefix-cache hit rate",
                                      "%"),
                                     (cols[2], "waiting", "Requests waiting", ",.1f")):
        with col:
            st.caption(title)
            st.altair_chart(alt.Chart(eng).mark_line(point=True).encode(
                x=alt.X("time:T", title=None),
                y=alt.Y(f"{measure}:Q", title=None, axis=alt.Axis(format=fmt)),
                color=alt.Color("engine:N", title="Engine"),
                tooltip=[alt.Tooltip("time:T", title="Time"),
                         alt.Tooltip("engine:N", title="Engine"),
                         alt.Tooltip(f"{measure}:Q", title=title, format=fmt)]
            ).properties(height=220), width="stretch")
    ui.table("Engine gauges", eng, "engine_pressure")
