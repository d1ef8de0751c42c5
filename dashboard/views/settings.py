"""Pricing & settings: the pricing file and analytics settings the published results were
computed with, read-only (change them in the files, then `inferledger analytics run
--reprice`)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import ui
from dashboard.context import current
from inferledger.results.published import delivery_states, published_config
from inferledger.store import DataDir

st.title("Pricing & settings")
config = published_config(DataDir.at(current().data_root))
if config is None:
    ui.no_data_yet("The analytics have not run on this store yet. ")
    st.stop()
pricing, settings = config["pricing"], config["settings"]
st.caption(f"Written by the last analytics run at {config['written_at']}. Read-only here: edit "
           "the pricing file (--pricing) or settings file (--config) and run "
           "`inferledger analytics run --reprice`.")
c = st.columns(4)
c[0].metric("Pricing version", pricing["version"])
c[1].metric("Attribution", settings["method"])
c[2].metric("Idle cost policy", pricing["idle_policy"])
c[3].metric("Prefill token weight", settings["prefill_token_weight"])
c = st.columns(3)
c[0].metric("Electricity", f"${pricing['usd_per_kwh']}/kWh")
c[1].metric("PUE", pricing["pue"])
c[2].metric("Grid carbon", f"{pricing['gco2e_per_kwh']} gCO₂e/kWh")
ui.table("GPU prices (longest match on the device name wins)",
         pd.DataFrame(pricing["gpus"], columns=["match", "usd_per_hour", "basis"]), "gpu_prices")
ui.table("API list prices, for comparison",
         pd.DataFrame(pricing["api_prices"],
                      columns=["model", "usd_per_1m_input", "usd_per_1m_output"]), "api_prices")
ui.table("Latency objectives (seconds; '*' for models without their own)",
         pd.DataFrame(settings["slos"], columns=["model", "ttft_s", "tpot_s", "e2e_s"]),
         "slos")
shapes = pd.DataFrame(settings.get("models", []),
                      columns=["model", "weight_bytes", "kv_bytes_per_token"])
shapes["weights_in_kv_tokens"] = shapes["weight_bytes"] / shapes["kv_bytes_per_token"]
ui.table("Model shapes (gpu_time weighs each decode's KV context read against the weights'; "
         "models not listed share decodes equally)", shapes, "model_shapes")
ui.table("Static placement (for requests no span or process places)",
         pd.DataFrame(settings["placement"], columns=["host", "model", "gpu_uuid"]),
         "placement")
st.caption(f"Pricing file: {pricing['source'] or 'built-in defaults'}")

st.subheader("Weekly report deliveries")
deliveries = pd.DataFrame(delivery_states(DataDir.at(current().data_root)).values(),
                          columns=["week", "to", "state", "at", "attempts", "error"])
if deliveries.empty:
    st.caption("No weekly report sent from this store yet (the scheduler sends one on Monday "
               "mornings once [report] recipients are set; `inferledger report send` by hand).")
else:
    deliveries["to"] = deliveries["to"].map(", ".join)
    for state in ("failed", "claimed"):
        bad = deliveries[deliveries["state"] == state]
        if len(bad):
            st.error(f"Weekly report {', '.join(bad['week'])}: "
                     + ("every SMTP attempt failed." if state == "failed" else
                        "a send never recorded its outcome (in doubt)."), icon=":material/mail:")
    ui.table("Latest state per week and recipients", deliveries.sort_values(
        "week", ascending=False), "report_deliveries")
