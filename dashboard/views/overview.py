"""Overview: spend and what it bought (bucket by bucket, as a bridge), responses, cost per
response, useful vs wasted vs idle GPU time, energy, carbon, latency and SLOs, each against
the previous period when that comparison is fair, and how they moved."""

from __future__ import annotations

import altair as alt
import streamlit as st

from dashboard import ui
from dashboard.context import current, query
from dashboard.queries import base
from dashboard.queries import overview as q

ctx = current()
f = ctx.filters
st.title("Overview")
now = query(q.headline, f)
if not now["requests"] and not now["gpu_spend_usd"] > 0:  # NaN: no GPU time either
    ui.no_data_yet("No requests and no GPU time in this range. ")
    st.stop()
prev = f.previous()
before = None
if prev is not None:
    first, _ = query(base.coverage)
    why = f.not_comparable(prev, first)
    if why is None:
        before = query(q.headline, prev)
    else:
        st.caption(f"No change against the previous period: {why}.")

row = st.columns(4)
ui.metric(row[0], "GPU spend", now, before, "gpu_spend_usd", ui.money, lower_is_better=True,
          help="Every measured and checked GPU-second and joule in range, priced: useful + "
               "wasted + idle (the bridge below)")
ui.metric(row[1], "Responses", now, before, "requests", ui.number)
ui.metric(row[2], "Cost per response", now, before, "cost_per_response_usd", ui.money_small,
          lower_is_better=True, help="The responses' own GPU cost ÷ responses (idle excluded)")
ui.metric(row[3], "Cost per 1k output tokens", now, before, "cost_per_1k_output_usd",
          ui.money_small, lower_is_better=True)
row = st.columns(4)
ui.metric(row[0], "Answers", now, before, "answers", ui.number,
          help="Requests grouped by the answer they served: a trace (an app's or agent's "
               "root span) or an explicit answer id; retries join the answer they retried")
ui.metric(row[1], "Cost per answer", now, before, "cost_per_answer_usd", ui.money_small,
          lower_is_better=True,
          help="An answer's requests' own GPU cost, retries included ÷ answers (idle excluded)")
ui.metric(row[2], "Cost per completed answer", now, before, "cost_per_completed_answer_usd",
          ui.money_small, lower_is_better=True,
          help="All GPU spend in range — idle, waste and failed answers included — ÷ the "
               "answers that completed: the fully loaded cost of one delivered answer")
ui.metric(row[3], "Requests per answer", now, before, "requests_per_answer",
          lambda v: ui.number(v, 2), lower_is_better=True)
row = st.columns(4)
ui.metric(row[0], "Useful GPU time", now, before, "useful_fraction", ui.pct)
ui.metric(row[1], "Wasted GPU time", now, before, "wasted_fraction", ui.pct,
          lower_is_better=True,
          help="Failed, aborted, timed-out, preempted, model loading and unaccounted time")
ui.metric(row[2], "Idle GPU time", now, before, "idle_fraction", ui.pct, lower_is_better=True)
ui.metric(row[3], "Idle cost", now, before, "idle_cost_usd", ui.money, lower_is_better=True)
row = st.columns(4)
ui.metric(row[0], "Energy", now, before, "energy_kwh", lambda v: f"{ui.number(v, 2)} kWh",
          lower_is_better=True, help="Measured GPU energy, idle included")
ui.metric(row[1], "Carbon", now, before, "carbon_kg", lambda v: f"{ui.number(v, 2)} kg CO₂e",
          lower_is_better=True, help="From the same energy × PUE × grid intensity")
ui.metric(row[2], "TTFT p95", now, before, "ttft_p95_s", ui.secs, lower_is_better=True)
ui.metric(row[3], "SLO attainment", now, before, "slo_attainment", ui.pct)

st.subheader("Where the spend went")
st.altair_chart(ui.waterfall(query(q.bridge, f)), width="stretch")
if f.narrows_requests:
    st.caption(
        f"Model and tenant filters: spend here is what is charged to the selection — its "
        f"responses' own GPU time and the idle spread over them under the idle policy "
        f"'{now['idle_policy']}'. The same GPUs also spent "
        f"{ui.money(now['not_charged_usd'])} on idle and overhead charged to no one "
        f"(fleet spend in range {ui.money(now['fleet_spend_usd'])}).")
if now["unmeasured_gpu_hours"]:
    st.caption(f"{ui.number(now['unmeasured_gpu_hours'], 2)} GPU-hours failed the input "
               "checks: shown on the GPU page, not priced.")

cost = query(q.cost_trend, f)
gpu = query(q.gpu_trend, f)
left, right = st.columns(2)
with left:
    st.subheader("Attributed cost by model")
    st.altair_chart(alt.Chart(cost).mark_area().encode(
        x=alt.X("time:T", title=None), y=alt.Y("sum(cost_usd):Q", title="USD"),
        color=alt.Color("model:N", title="Model"),
        tooltip=[alt.Tooltip("time:T", title="Time"), alt.Tooltip("model:N", title="Model"),
                 alt.Tooltip("cost_usd:Q", title="USD", format=",.2f")]),
        width="stretch")
with right:
    st.subheader("GPU time: useful, wasted, idle")
    shares = ["useful", "wasted", "idle"]
    st.altair_chart(alt.Chart(gpu).mark_area().encode(
        x=alt.X("time:T", title=None),
        y=alt.Y("sum(gpu_hours):Q", stack="normalize", axis=alt.Axis(format="%"), title=None),
        color=alt.Color("share:N", sort=shares, scale=ui.colour_scale(shares), title=None),
        order=alt.Order("share_order:Q"),
        tooltip=[alt.Tooltip("time:T", title="Time"), alt.Tooltip("share:N", title="Share"),
                 alt.Tooltip("sum(gpu_hours):Q", title="GPU-hours", format=",.2f")]
    ).transform_calculate(share_order="indexof(['useful', 'wasted', 'idle'], datum.share)"),
        width="stretch")
st.download_button("Download cost over time (CSV)", cost.to_csv(index=False).encode(),
                   "cost_over_time.csv", "text/csv", key="dl-cost_over_time")
