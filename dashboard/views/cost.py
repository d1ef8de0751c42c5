"""Cost: by model, tenant, route, node and GPU type; the spread of cost per response; what
the same tokens would cost at API list prices; the pricing in use."""

from __future__ import annotations

import altair as alt
import streamlit as st

from dashboard import ui
from dashboard.context import current, query
from dashboard.queries import cost as q

f = current().filters
st.title("Cost")
tabs = st.tabs(["By model", "By tenant", "By route", "By node", "By GPU type"])
for tab, dim in zip(tabs[:4], ("model", "tenant", "route", "node"), strict=True):
    with tab:
        ui.table(f"Cost by {dim}", query(q.by_dimension, f, dim), f"cost_by_{dim}")
with tabs[4]:
    ui.table("Spend by GPU type (GPU level: node filter only)", query(q.by_gpu_type, f),
             "cost_by_gpu_type")

st.subheader("Cost per response: the whole distribution")
dist = query(q.distribution, f)
if dist.empty:
    st.caption("No priced responses in this range.")
else:
    st.altair_chart(alt.Chart(dist).mark_bar().encode(
        x=alt.X("usd_per_response:Q", scale=alt.Scale(type="log"), title="USD per response"),
        y=alt.Y("sum(responses):Q", title="responses"), color="model:N",
        tooltip=["model:N", "usd_per_response:Q", "responses:Q"]), width="stretch")
ui.table("Percentiles of cost per response", query(q.percentiles, f), "cost_percentiles")
ui.table("Self-hosted vs API list price", query(q.versus_api, f), "cost_vs_api")
st.caption("API list prices come from the pricing file's [[api]] entries; a ratio below 1 "
           "means self-hosting (idle time included) was cheaper.")
ui.table("Pricing in use", query(q.pricing_in_use, f), "pricing_in_use")
