"""Request explorer: find a request by trace id, request id, answer id or tenant, or take the
slowest or most expensive in range; see its spans on a timeline, the answer it served (its
requests, retries and the app's own spans on one timeline), the power and the batch on its
GPUs while it ran, and how its cost was computed."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from dashboard import ui
from dashboard.context import current, query
from dashboard.queries import explorer as q
from inferledger.results.kpis import no_value

f = current().filters
st.title("Request explorer")
left, right = st.columns([2, 1])
text = left.text_input("Trace id, request id, answer id (or a prefix) or tenant",
                       key="ex_text").strip()
mode = right.radio("Or list", ["slowest", "most expensive"], horizontal=True, key="ex_mode")
found = query(q.find, f, text) if text else query(q.top, f, mode)
if found.empty:
    st.info(f"No request matches {text!r} in this range." if text
            else "No requests in this range.")
    st.stop()
ui.table(f"{len(found)} request(s)", found.drop(columns=["request_uid"]), "requests_found")
labels = {uid: f"{tid[:16]}…  {model}  {outcome}  {ui.secs(e2e)}" for uid, tid, model, outcome,
          e2e in found[["request_uid", "trace_id", "model", "outcome", "e2e_s"]].itertuples(
              index=False)}
uid = st.selectbox("Request", list(labels), format_func=labels.get, key="ex_request")
listed = found.set_index("request_uid")["started_at"]
r = query(q.request, uid, listed[uid].timestamp()) if uid in listed.index else None
if r is None:
    st.warning("That request is no longer in the published results.")
    st.stop()

st.subheader(" · ".join(str(r[k]) if r[k] is not None and not pd.isna(r[k]) else no_value(k)
                        for k in ("model", "tenant", "route", "outcome")))
ui.figures([("End to end", ui.secs(r["e2e_s"])), ("TTFT", ui.secs(r["ttft_s"])),
            ("Tokens in", ui.number(r["input_tokens"])),
            ("Tokens out", ui.number(r["output_tokens"])),
            ("Cost", ui.money_small(r["cost_usd"])),
            ("SLO", "met" if r["slo_met"] else "missed" if r["slo_met"] is not None
             and not pd.isna(r["slo_met"]) else "—")])
st.caption(f"trace `{r['trace_id']}` · request `{r['request_id']}` · node {r['host_name']} · "
           f"GPUs {', '.join(r['gpu_uuids']) if r['placed'] else 'unplaced'}")

st.subheader("Timeline")
phases = pd.DataFrame([
    ("queue", r["started_s"], r["scheduled_s"]),
    ("prefill", r["scheduled_s"], r["first_token_s"]),
    ("decode", r["first_token_s"], r["finished_s"])], columns=["name", "start", "end"])
phases = phases.dropna()
phases["start"] = pd.to_datetime(phases["start"], unit="s", utc=True)
phases["end"] = pd.to_datetime(phases["end"], unit="s", utc=True)
phases["kind"] = "phase (engine clock)"
started, finished = float(r["started_s"]), float(r["finished_s"])
spans = query(q.spans, [r["trace_id"]], started, finished)
spans["kind"] = "span: " + spans["service_name"].fillna("")
timeline = pd.concat([spans[["name", "start", "end", "kind"]], phases], ignore_index=True)
st.altair_chart(alt.Chart(timeline).mark_bar().encode(
    x=alt.X("start:T", title=None), x2="end:T", y=alt.Y("name:N", sort=None, title=None),
    color="kind:N", tooltip=["name:N", "kind:N", "start:T", "end:T"]), width="stretch")

a = query(q.answer, r["answer_id"], started) if r["answer_id"] else None
if a is not None:
    st.subheader(f"Its answer: {a['requests']} request(s), {a['outcome']}")
    ui.figures([("Answer cost", ui.money_small(a["cost_usd"])),
                ("Of it retries", ui.money_small(a["retry_cost_usd"])),
                ("Of it added context", ui.money_small(a["context_cost_usd"])),
                ("Answer end to end", ui.secs(a["e2e_s"])),
                ("Tools and retrieval", ui.secs(a["other_spans_s"]))])
    members = query(q.answer_requests, r["answer_id"], a["started_at"].timestamp())
    ui.table("Its requests", members.drop(columns=["request_uid", "started_s", "finished_s"]),
             "answer_requests")
    whole = query(q.spans, sorted(set(members["trace_id"])), float(members["started_s"].min()),
                  float(members["finished_s"].max()))
    whole["kind"] = "span: " + whole["service_name"].fillna("")
    st.altair_chart(alt.Chart(whole).mark_bar().encode(
        x=alt.X("start:T", title=None), x2="end:T",
        y=alt.Y("label:N", sort=None, title=None), color="kind:N",
        tooltip=["name:N", "kind:N", "start:T", "end:T",
                 alt.Tooltip("duration_s:Q", format=".3f", title="seconds")]).transform_calculate(
        label="datum.name + ' · ' + slice(datum.span_id, 0, 6)"), width="stretch")
    st.caption(f"Answer `{a['answer_id']}` (grouped by {a['answer_key']}): its requests, "
               "retries and the app's own spans (retrieval, tool calls) on one timeline; "
               "retries are booked to this answer, not as anonymous waste.")

if r["placed"]:
    st.subheader("Its GPUs while it ran: power and the batch it shared")
    ctx = query(q.gpu_context, list(r["gpu_uuids"]), started, finished)
    if ctx.empty:
        st.caption("No GPU samples around this request.")
    else:
        band = pd.DataFrame({"start": [pd.to_datetime(r["started_s"], unit="s", utc=True)],
                             "end": [pd.to_datetime(r["finished_s"], unit="s", utc=True)]})
        base = alt.Chart(ctx).encode(x=alt.X("time:T", title=None), color="gpu_uuid:N")
        shade = alt.Chart(band).mark_rect(opacity=0.15).encode(x="start:T", x2="end:T")
        st.altair_chart(alt.layer(shade, base.mark_line().encode(y=alt.Y("power_w:Q",
                                                                         title="W"))),
                        width="stretch")
        st.altair_chart(alt.layer(shade, base.mark_line(interpolate="step-after").encode(
            y=alt.Y("running:Q", title="requests running"))), width="stretch")

st.subheader("How its cost was computed")
parts = query(q.cost_parts, uid, started, finished)
if not r["placed"]:
    st.caption("Not placed on any GPU (no span or process ties it to one), so it has no "
               "attributed GPU time and no cost yet.")
elif parts.empty:
    st.caption("No GPU time attributed to it: it fell between two samples of its GPUs, or "
               "never reached an engine.")
st.markdown(
    f"GPU time {ui.number(r['gpu_seconds'], 3)} s × the GPU's hourly price = "
    f"{ui.money_small(r['gpu_cost_usd'])}; energy {ui.number(r['energy_j'], 1)} J × PUE × "
    f"price per kWh = {ui.money_small(r['energy_cost_usd'])}; total "
    f"{ui.money_small(r['cost_usd'])} (+ {ui.money_small(r['idle_share_usd'])} idle share "
    "under the "
    f"'{r['idle_policy']}' policy). Pricing `{r['pricing_version']}`, attribution "
    f"'{r['attribution_method']}'. Prices: *Pricing & settings*.")
if not parts.empty:
    ui.table("Its share of each GPU-hour", parts, "request_cost_parts")
