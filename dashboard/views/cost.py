"""Cost: by model, tenant, route, node and GPU type, each table adding up to the Overview's
spend; the spread of cost per response; what the same tokens would cost at API list prices;
the pricing in use."""

from __future__ import annotations

import altair as alt
import streamlit as st

from dashboard import ui
from dashboard.context import current, query
from dashboard.queries import cost as q

f = current().filters
st.title("Cost")
now = query(q.headline, f)
st.altair_chart(ui.waterfall(query(q.bridge, f)), width="stretch")
policy = now["idle_policy"] or "separate"
st.caption(
    f"Spend {ui.money(now['gpu_spend_usd'])} = the responses' own GPU time "
    f"{ui.money(now['attributed_usd'])} + idle {ui.money(now['idle_cost_usd'])} + other waste "
    f"no response owns {ui.money(now['overhead_usd'])}. "
    f"Idle policy '{policy}': "
    + ("idle is its own line, charged to no response." if policy == "separate" else
       "idle is spread over the responses (the idle share column)."))
tabs = st.tabs(["By model", "By tenant", "By route", "By node", "By GPU type"])
for tab, dim in zip(tabs[:4], ("model", "tenant", "route", "node"), strict=True):
    with tab:
        rows = query(q.by_dimension, f, dim)
        ui.table(f"Cost by {dim}", rows[[dim, *q.SHOWN]], f"cost_by_{dim}")
        st.caption(f"Rows add up to {ui.money(rows['total_usd'].sum())}, the spend charged "
                   "in this selection" + ("" if dim == "node" else
                                          "; the last row is what no one is charged for") + ".")
with tabs[4]:
    ui.table("Spend by GPU type (GPU level: node filter only)", query(q.by_gpu_type, f),
             "cost_by_gpu_type")

ui.table("Cost per answer, by app", query(q.answers_by, f, "route"), "cost_per_answer")
st.caption(
    f"{ui.number(now['answers'])} answers of {ui.number(now['requests_per_answer'], 2)} "
    f"requests each on average; retries cost {ui.money(now['retry_cost_usd'])} and added "
    f"context {ui.money(now['context_cost_usd'])} of the answers' cost. Fully loaded (all "
    f"spend ÷ completed answers): {ui.money_small(now['cost_per_completed_answer_usd'])} "
    "per completed answer.")

st.subheader("Cost per response: the whole distribution")
dist = query(q.distribution, f)
if dist.empty:
    st.caption("No priced responses in this range.")
else:
    st.altair_chart(alt.Chart(dist).mark_bar().encode(
        x=alt.X("usd_per_response:Q", scale=alt.Scale(type="log"), title="USD per response"),
        y=alt.Y("sum(responses):Q", title="Responses"), color=alt.Color("model:N", title="Model"),
        tooltip=[alt.Tooltip("model:N", title="Model"),
                 alt.Tooltip("usd_per_response:Q", title="USD per response", format="$.6f"),
                 alt.Tooltip("responses:Q", title="Responses", format=",")]), width="stretch")
ui.table("Percentiles of cost per response", query(q.percentiles, f), "cost_percentiles")
ui.table("Self-hosted vs API list price", query(q.versus_api, f), "cost_vs_api")
st.caption("API list prices come from the pricing file's [[api_price]] entries. Per model, the "
           "ratio compares its own cost and its idle share with the API price; the last row "
           "compares the whole GPU spend, idle and overhead included. Below 1, self-hosting "
           "was cheaper.")
ui.table("Pricing in use", query(q.pricing_in_use, f), "pricing_in_use")
