"""The report as an e-mail: HTML for mail clients (inline styles, tables for layout, charts
as inline PNG parts referenced by Content-ID), a plain-text alternative with the same
figures, and a CSV attachment of the week's costs per model and per tenant."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid
from html import escape

import pandas as pd

from analytics.report.charts import cost_by_day, gpu_time_by_day
from analytics.report.figures import WeeklyFigures
from inferledger.results.kpis import NOT_CHARGED

SIMULATED = ("Simulated data: these figures come from InferLedger's simulated vLLM fleet and "
             "simulated GPUs, not from real hardware.")
_TD = "padding:4px 10px;border-bottom:1px solid #eee;font-size:14px"
_TH = "padding:4px 10px;border-bottom:2px solid #ccc;font-size:12px;color:#555;text-align:left"


def _ok(v: object) -> bool:
    return v is not None and not pd.isna(v)


def _usd(v: float | None, digits: int = 2) -> str:
    return f"${v:,.{digits}f}" if _ok(v) else "—"


def _pct(v: float | None) -> str:
    return f"{v:.1%}" if _ok(v) else "—"


def _int(v: float | None) -> str:
    return f"{v:,.0f}" if _ok(v) else "—"


# (label, key, format, lower is better)
KPIS: tuple[tuple[str, str, Callable[[float | None], str], bool], ...] = (
    ("GPU spend", "gpu_spend_usd", _usd, True),
    ("Responses", "requests", _int, False),
    ("Cost per response", "cost_per_response_usd", lambda v: _usd(v, 6), True),
    ("Cost per 1k output tokens", "cost_per_1k_output_usd", lambda v: _usd(v, 5), True),
    ("Useful GPU time", "useful_fraction", _pct, False),
    ("Idle cost", "idle_cost_usd", _usd, True),
    ("Energy", "energy_kwh", lambda v: f"{v:,.1f} kWh" if _ok(v) else "—", True),
    ("Carbon", "carbon_kg", lambda v: f"{v:,.1f} kg CO2e" if _ok(v) else "—", True),
    ("TTFT p95", "ttft_p95_s", lambda v: f"{v * 1000:,.0f} ms" if _ok(v) else "—", True),
    ("SLO attainment", "slo_attainment", _pct, False),
)


def _change(now: float | None, before: float | None) -> str:
    if not _ok(now) or not _ok(before) or not before:
        return "new" if _ok(now) and now and not before else "—"
    return f"{(now - before) / abs(before):+.1%}"


# Where answers span several requests (agents, RAG, retries), what one answer cost leads.
ANSWER_KPIS: tuple[tuple[str, str, Callable[[float | None], str], bool], ...] = (
    ("Answers", "answers", _int, False),
    ("Cost per completed answer", "cost_per_completed_answer_usd", lambda v: _usd(v, 6), True),
    ("Cost per answer", "cost_per_answer_usd", lambda v: _usd(v, 6), True),
)
SEVERAL = 1.01  # requests per answer above which answers are not simply responses


def answers_span_requests(f: WeeklyFigures) -> bool:
    v = f.now.get("requests_per_answer")
    return _ok(v) and v > SEVERAL


def kpi_rows(f: WeeklyFigures) -> list[tuple[str, str, str, str]]:
    """(label, this week, last week, change) for each headline figure, cost per answer
    first where answers span several requests; no change where the weeks are not both
    whole (``coverage_note`` says why)."""
    kpis = (*ANSWER_KPIS, *KPIS) if answers_span_requests(f) else KPIS
    return [(label, fmt(f.now.get(key)), fmt(f.before.get(key)),
             _change(f.now.get(key), f.before.get(key)) if f.comparable else "—")
            for label, key, fmt, _ in kpis]


def answer_line(f: WeeklyFigures) -> str | None:
    """What one answer cost, in words, where answers span several requests."""
    if not answers_span_requests(f):
        return None
    n = f.now
    return (f"{_int(n.get('answers'))} answers ({_int(n.get('completed_answers'))} completed) "
            f"from {_int(n.get('requests'))} responses, {n.get('requests_per_answer'):.2f} "
            f"each: {_usd(n.get('cost_per_completed_answer_usd'), 6)} per completed answer "
            f"with all spend included; retries cost {_usd(n.get('retry_cost_usd'))} and "
            f"added context {_usd(n.get('context_cost_usd'))}.")


def coverage_note(f: WeeklyFigures) -> str:
    """What the week's data covers, and why changes are withheld if they are."""
    c = f.coverage
    if c.first is None:
        return "No data this week."
    span = (f"Data: {c.first:%a %d %b %H:%M} – {c.last:%a %d %b %H:%M} UTC "
            f"({c.days():.1f} of 7 days)")
    if not c.complete:
        return f"{span}. This week is in progress: figures so far, no changes against last week."
    if not c.previous_complete:
        return (f"{span}. The data begins after last week started: no changes against "
                "last week and no movers.")
    return f"{span}."


def spend_line(f: WeeklyFigures) -> str:
    """Spend as the sum of its parts, in words: the bridge of the report."""
    n = f.now
    return (f"GPU spend {_usd(n.get('gpu_spend_usd'))} = useful {_usd(n.get('useful_usd'))} + "
            f"wasted {_usd(n.get('wasted_usd'))} + idle {_usd(n.get('idle_cost_usd'))}.")


def costs_csv(f: WeeklyFigures) -> bytes:
    parts = [d.rename(columns={dim: "value"}).assign(dimension=dim)
             for dim, d in (("model", f.by_model), ("tenant", f.by_tenant))]
    table = pd.concat(parts, ignore_index=True)
    cols = ["dimension", "value", "requests", "output_tokens", "cost_usd", "idle_share_usd",
            "total_usd", "usd_per_response", "previous_cost_usd"]
    buf = io.StringIO()
    table.reindex(columns=cols).assign(week=f.week.label).to_csv(buf, index=False)
    return buf.getvalue().encode()


def _table(headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f'<th style="{_TH}">{escape(h)}</th>' for h in headers)
    body = "".join("<tr>" + "".join(f'<td style="{_TD}">{escape(c)}</td>' for c in r) + "</tr>"
                   for r in rows)
    return (f'<table cellpadding="0" cellspacing="0" style="border-collapse:collapse;'
            f'margin:8px 0 18px 0"><tr>{head}</tr>{body}</table>')


def _top(f: WeeklyFigures, d: pd.DataFrame, dim: str, n: int = 5) -> list[list[str]]:
    """The n dearest, then the rest, what no one is charged for, and the total: the rows
    add up to the week's spend."""
    named = d[d[dim] != NOT_CHARGED]
    rows = [[str(r[dim]), _int(r["requests"]), _usd(r["total_usd"]),
             _usd(r["usd_per_response"], 6),
             _change(r["total_usd"], r["previous_cost_usd"]) if f.comparable else "—"]
            for _, r in named.head(n).iterrows()]
    rest = named.iloc[n:]
    if len(rest):
        rows.append([f"{len(rest)} more", _int(rest["requests"].sum()),
                     _usd(rest["total_usd"].sum()), "", ""])
    uncharged = d.loc[d[dim] == NOT_CHARGED, "total_usd"].sum()
    if uncharged:
        rows.append(["Idle and overhead (not charged)", "", _usd(uncharged), "", ""])
    rows.append(["Total GPU spend", _int(named["requests"].sum()),
                 _usd(d["total_usd"].sum()), "", ""])
    return rows


def _top_line(r: list[str], per_response: bool = False) -> str:
    line = f"  {r[0]:<32} {r[1] + ' responses' if r[1] else '':>19}  {r[2]:>12}"
    if per_response and r[3]:
        line += f"  {r[3]} per response"
    return line + (f"  ({r[4]})" if r[4] else "")


def text(f: WeeklyFigures) -> str:
    lines = [f"InferLedger weekly report — {f.week}", ""]
    if f.simulated:
        lines += [SIMULATED, ""]
    if f.empty:
        return "\n".join([*lines, "No responses and no GPU time were recorded this week.", ""])
    if (lever := f.lever()):
        lines += [lever, ""]
    lines += [coverage_note(f), spend_line(f)]
    if (answers := answer_line(f)):
        lines.append(answers)
    lines.append("")
    lines += [f"{label:<27}{now:>18}   last week {before:>14}   {change}"
              for label, now, before, change in kpi_rows(f)]
    lines += ["", "Top models by cost:"]
    lines += [_top_line(r, per_response=True) for r in _top(f, f.by_model, "model")]
    lines += ["", "Top tenants by cost:"]
    lines += [_top_line(r) for r in _top(f, f.by_tenant, "tenant")]
    lines += ["", "Idle and waste by cause:"]
    lines += [f"  {r.cause.replace('_', ' '):<15} {r.gpu_hours:>9.1f} GPU-hours  "
              f"{_usd(r.usd):>12}" for r in f.waste.itertuples() if r.gpu_hours > 0]
    lines += _unmeasured_lines(f)
    if f.opportunities:
        lines += ["", "Top opportunities:"] + [f"  - {o}" for o in f.opportunities]
    lines += ["", "Per-model and per-tenant costs are attached as CSV."]
    return "\n".join(lines) + "\n"


def _unmeasured_lines(f: WeeklyFigures) -> list[str]:
    """The week's quarantined GPU time, if any: a measurement problem to fix, not a cost."""
    if f.unmeasured is None or f.unmeasured.empty:
        return []
    return ["", "Unmeasured GPU time (inputs failed a check; not attributed or priced):",
            *(f"  {r.gpu:<28} {r.gpu_hours:>9.2f} GPU-hours  ({r.reasons})"
              for r in f.unmeasured.itertuples())]


def html(f: WeeklyFigures, chart_cids: dict[str, str]) -> str:
    """``chart_cids``: chart name → Content-ID (without brackets) of its PNG part; the
    preview passes data: URIs instead."""
    out = ['<html><body style="font-family:Arial,Helvetica,sans-serif;color:#222;'
           'max-width:720px;margin:0 auto">',
           f'<h2 style="margin-bottom:2px">InferLedger weekly report</h2>'
           f'<div style="color:#666;margin-bottom:14px">{escape(str(f.week))}</div>']
    if f.simulated:
        out.append(f'<div style="background:#fff8e1;border:1px solid #f9a825;padding:8px 12px;'
                   f'margin-bottom:14px"><b>{escape(SIMULATED)}</b></div>')
    if f.empty:
        out.append("<p>No responses and no GPU time were recorded this week.</p></body></html>")
        return "".join(out)
    if (lever := f.lever()):
        out.append(f'<p style="font-size:17px;margin:6px 0 10px 0"><b>{escape(lever)}</b></p>')
    out.append(f'<p style="color:#555;margin:0 0 4px 0">{escape(coverage_note(f))}</p>'
               f'<p style="color:#555;margin:0 0 10px 0">{escape(spend_line(f))}</p>')
    if (answers := answer_line(f)):
        out.append(f'<p style="color:#555;margin:0 0 10px 0">{escape(answers)}</p>')
    out.append(_table(["", "This week", "Last week", "Change"],
                      [list(r) for r in kpi_rows(f)]))
    for name, title in (("cost", "Attributed cost per day"),
                        ("gpu", "GPU time per day: useful, wasted, idle")):
        if name in chart_cids:
            out.append(f'<h3 style="margin-bottom:4px">{title}</h3><img src="'
                       f'{chart_cids[name]}" alt="{title}" width="600" style="display:block">')
    out.append('<h3 style="margin-bottom:4px">Top models by cost</h3>')
    out.append(_table(["Model", "Responses", "Cost", "Per response", "vs last week"],
                      _top(f, f.by_model, "model")))
    out.append('<h3 style="margin-bottom:4px">Top tenants by cost</h3>')
    out.append(_table(["Tenant", "Responses", "Cost", "Per response", "vs last week"],
                      _top(f, f.by_tenant, "tenant")))
    movers = f.movers()
    if not movers.empty:
        out.append('<h3 style="margin-bottom:4px">Biggest movers</h3>')
        out.append(_table(["", "Name", "Cost", "Change"], [
            [r.kind, str(r.name), _usd(r.total_usd), f"{r.change_usd:+,.2f} USD"]
            for r in movers.itertuples()]))
    out.append('<h3 style="margin-bottom:4px">Idle and waste by cause</h3>')
    out.append(_table(["Cause", "GPU-hours", "Cost"], [
        [r.cause.replace("_", " "), f"{r.gpu_hours:,.1f}", _usd(r.usd)]
        for r in f.waste.itertuples() if r.gpu_hours > 0]))
    if (lines := _unmeasured_lines(f)):
        out.append(f'<h3 style="margin-bottom:4px">{escape(lines[1])}</h3>')
        out.append(_table(["GPU", "GPU-hours", "Reasons"], [
            [r.gpu, f"{r.gpu_hours:,.2f}", r.reasons] for r in f.unmeasured.itertuples()]))
    if f.opportunities:
        out.append('<h3 style="margin-bottom:4px">Top opportunities</h3><ul>')
        out += [f'<li style="margin-bottom:6px">{escape(o)}</li>' for o in f.opportunities]
        out.append("</ul>")
    out.append('<p style="color:#666;font-size:12px">Per-model and per-tenant costs are '
               "attached as CSV. Figures: InferLedger's published results "
               "(spend_hourly, cost_hourly, request_costs).</p></body></html>")
    return "".join(out)


def charts(f: WeeklyFigures) -> dict[str, bytes]:
    out = {}
    for name, draw in (("cost", cost_by_day), ("gpu", gpu_time_by_day)):
        png = draw(f)
        if png:
            out[name] = png
    return out


def message_id(week: str, recipients: list[str], domain: str) -> str:
    """The same for every attempt at one report: a duplicate can be recognised."""
    digest = hashlib.sha256(",".join(sorted(recipients)).encode()).hexdigest()[:12]
    return f"<inferledger-report-{week}-{digest}@{domain}>"


def email(f: WeeklyFigures, sender: str, recipients: list[str]) -> EmailMessage:
    pngs = charts(f)
    cids = {name: make_msgid(f"chart-{name}") for name in pngs}
    msg = EmailMessage()
    prefix = "[simulated] " if f.simulated else ""
    msg["Subject"] = f"{prefix}InferLedger weekly report {f.week.label}"
    msg["From"] = formataddr(("InferLedger", sender))
    msg["To"] = ", ".join(recipients)
    msg["Date"] = format_datetime(f.week.end)
    msg["Message-ID"] = message_id(f.week.label, recipients, sender.rpartition("@")[2]
                                   or "inferledger")
    msg.set_content(text(f))
    msg.add_alternative(html(f, {n: f"cid:{c[1:-1]}" for n, c in cids.items()}),
                        subtype="html")
    html_part = msg.get_payload()[1]
    for name, png in pngs.items():
        html_part.add_related(png, "image", "png", cid=cids[name],
                              filename=f"{name}.png", disposition="inline")
    msg.add_attachment(costs_csv(f), maintype="text", subtype="csv",
                       filename=f"inferledger-costs-{f.week.label}.csv")
    return msg


def preview_html(f: WeeklyFigures) -> str:
    """The HTML with its charts as data: URIs, to open in a browser."""
    import base64

    return html(f, {n: "data:image/png;base64," + base64.b64encode(p).decode()
                    for n, p in charts(f).items()})
