"""The page's HTML: one Jinja2 template (autoescaped) and a server-rendered SVG chart."""

from __future__ import annotations

import math
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import DictLoader, Environment, select_autoescape
from markupsafe import Markup, escape

CHART_WIDTH = 720
CHART_HEIGHT = 150
_PAD_LEFT, _PAD_BOTTOM, _PAD_TOP = 34, 18, 8


def calls_chart(calls: dict[str, Any], tz: ZoneInfo) -> Markup:
    """Bars of calls per minute (failed part in red) under a dashed line at the limit."""
    minutes = calls["minutes"]
    limit = float(calls["limit_per_minute"])
    peak = max([m["calls"] for m in minutes] + [0])
    top = max(peak, limit * 1.25, 1.0)
    width = CHART_WIDTH - _PAD_LEFT
    height = CHART_HEIGHT - _PAD_BOTTOM - _PAD_TOP
    step = width / max(len(minutes), 1)

    def y(value: float) -> float:
        return _PAD_TOP + height - value / top * height

    parts = [
        f'<svg id="calls-chart" class="chart" viewBox="0 0 {CHART_WIDTH} {CHART_HEIGHT}" '
        f'width="{CHART_WIDTH}" height="{CHART_HEIGHT}" role="img" '
        f'aria-label="API calls per minute over the last {calls["hours"]} h against the limit">',
        f'<line x1="{_PAD_LEFT}" y1="{y(0):.1f}" x2="{CHART_WIDTH}" y2="{y(0):.1f}" class="axis"/>',
    ]
    for index, minute in enumerate(minutes):
        if not minute["calls"]:
            continue
        x = _PAD_LEFT + index * step
        ok = minute["calls"] - minute["failed"]
        label = f"{minute['minute'].astimezone(tz):%H:%M}: {minute['calls']} call(s)"
        if minute["failed"]:
            label += f", {minute['failed']} failed"
        parts.append(
            f'<g class="bar" data-minute="{minute["minute"].isoformat()}" '
            f'data-calls="{minute["calls"]}"><title>{escape(label)}</title>'
        )
        if ok:
            parts.append(
                f'<rect x="{x:.1f}" y="{y(ok):.1f}" width="{max(step - 0.5, 1):.1f}" '
                f'height="{y(0) - y(ok):.1f}" class="ok"/>'
            )
        if minute["failed"]:
            parts.append(
                f'<rect x="{x:.1f}" y="{y(minute["calls"]):.1f}" '
                f'width="{max(step - 0.5, 1):.1f}" height="{y(ok) - y(minute["calls"]):.1f}" '
                'class="failed"/>'
            )
        parts.append("</g>")
    parts.append(
        f'<line id="limit-line" x1="{_PAD_LEFT}" y1="{y(limit):.1f}" x2="{CHART_WIDTH}" '
        f'y2="{y(limit):.1f}" class="limit" data-limit="{limit}"/>'
        f'<text x="{_PAD_LEFT - 4}" y="{y(limit) + 4:.1f}" class="label end">{limit:g}</text>'
        f'<text x="{_PAD_LEFT - 4}" y="{y(0) + 4:.1f}" class="label end">0</text>'
    )
    # A label every `every` hours (at most about 8 across), the start when it has room.
    every = max(1, math.ceil(calls["hours"] / 8))
    labelled: list[float] = []
    for index, minute in enumerate(minutes):
        local = minute["minute"].astimezone(tz)
        x = _PAD_LEFT + index * step
        if local.minute == 0 and local.hour % every == 0 and x < CHART_WIDTH - 30:
            labelled.append(x)
            parts.append(
                f'<text x="{x:.1f}" y="{CHART_HEIGHT - 4}" class="label">{local:%H:%M}</text>'
            )
    if minutes and (not labelled or labelled[0] - _PAD_LEFT > 45):
        start = minutes[0]["minute"].astimezone(tz)
        parts.append(
            f'<text x="{_PAD_LEFT}" y="{CHART_HEIGHT - 4}" class="label">{start:%H:%M}</text>'
        )
    parts.append("</svg>")
    # Safe: numbers, ISO timestamps and the escaped tooltip text only.
    return Markup("".join(parts))  # noqa: S704


def _when(value: datetime | date | None, tz: ZoneInfo) -> str:
    if value is None:
        return "—"
    if isinstance(value, datetime):
        return f"{value.astimezone(tz):%Y-%m-%d %H:%M:%S}"
    return value.isoformat()


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 1:
        return "now"
    if seconds < 120:
        return f"in {seconds:.0f} s"
    if seconds < 7200:
        return f"in {seconds / 60:.0f} min"
    return f"in {seconds / 3600:.1f} h"


def _change(old: Any, new: Any) -> str:
    if old == new:
        return str(new)
    return f"{'—' if old is None else old} → {'—' if new is None else new}"


TEMPLATE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="{{ refresh }}">
<title>SMSC · Airflow</title>
<link rel="icon" href="data:,">
<style>
:root { color-scheme: light; --ink:#1d2733; --muted:#5b6875; --line:#d9dee4; --ok:#2f7d4f;
        --bad:#b3261e; --warn:#8a5a00; --bg:#f6f8fa; --accent:#017cee; }
* { box-sizing: border-box; }
body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--ink);
       margin: 0; padding: 16px 20px; background: #fff; }
h1 { font-size: 20px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 18px 0 8px; }
h3 { font-size: 14px; margin: 14px 0 6px; text-transform: uppercase; letter-spacing: .04em;
     color: var(--muted); }
.sub, .muted { color: var(--muted); } code { font: 12px ui-monospace, monospace;
  background: var(--bg); padding: 1px 4px; border-radius: 3px; }
.banner { border: 1px solid var(--line); border-left: 4px solid var(--bad); padding: 8px 12px;
          margin: 10px 0; background: #fdf3f2; }
.banner.warn { border-left-color: var(--warn); background: #fdf8ee; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(190px, 1fr)); gap: 8px; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: 8px 10px; }
.card .v { font-size: 18px; font-weight: 600; } .card .k { color: var(--muted); font-size: 12px; }
table { border-collapse: collapse; width: 100%; font-size: 12.5px; }
th, td { text-align: left; padding: 3px 6px; border-bottom: 1px solid var(--line);
         vertical-align: top; white-space: nowrap; }
td.wrap { white-space: normal; } th { color: var(--muted); font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.outcome-ok { color: var(--ok); } .outcome-bad { color: var(--bad); font-weight: 600; }
.status-matched { color: var(--ok); } .status-differs { color: var(--bad); font-weight: 600; }
.status-incomplete { color: var(--warn); }
.progress { background: var(--bg); border: 1px solid var(--line); width: 140px; height: 10px;
            display: inline-block; vertical-align: middle; }
.progress span { display: block; height: 100%; background: var(--accent); }
.chart .ok { fill: var(--accent); } .chart .failed { fill: var(--bad); }
.chart .axis { stroke: var(--line); } .chart .limit { stroke: var(--bad);
  stroke-dasharray: 5 4; stroke-width: 1.5; }
.chart .label { font-size: 10px; fill: var(--muted); } .chart .end { text-anchor: end; }
section.account { border-top: 2px solid var(--line); margin-top: 14px; }
a { color: var(--accent); text-decoration: none; } a:hover { text-decoration: underline; }
footer { margin-top: 18px; color: var(--muted); font-size: 12px; }
.scroll { max-height: 420px; overflow: auto; }
</style>
</head>
<body>
<h1>SMSC</h1>
<div class="sub">Rate limit {{ limit.calls }} calls per {{ limit.window_s|round(1) }} s
  (+ {{ (limit.span_s - limit.window_s)|round(1) }} s margin) per account ·
  warehouse <code>{{ page.warehouse.conn_id }}</code>{% if page.warehouse.where %}
  ({{ page.warehouse.where }}){% endif %} · times in {{ timezone }} ·
  as of {{ when(generated) }}</div>

{% if not page.warehouse.ok %}
<div class="banner{% if page.warehouse.error in ("NoBootstrap", "SchemaBehind") %} warn{%
  endif %}" id="warehouse-error"
     data-error="{{ page.warehouse.error }}">
  {% if page.warehouse.error == "NoBootstrap" %}
  <strong>No bootstrap yet:</strong> {{ page.warehouse.message }}.
  {% elif page.warehouse.error == "SchemaBehind" %}
  <strong>The warehouse schema is behind:</strong> {{ page.warehouse.message }}.
  {% else %}
  <strong>The warehouse is unreachable</strong> through connection
  <code>{{ page.warehouse.conn_id }}</code>:
  <code>{{ page.warehouse.error }}</code> {{ page.warehouse.message }}.
  Check the connection (host, port, database, login) and that PostgreSQL is up; the page
  shows nothing it cannot read there.
  {% endif %}
</div>
{% endif %}
{% if page.airflow.error %}
<div class="banner warn" id="airflow-error">Airflow's metadata could not be read
  (<code>{{ page.airflow.error }}</code> {{ page.airflow.message }}): backfills and pools
  are not shown.</div>
{% elif page.bootstrapped is false %}
<div class="banner warn" id="bootstrap-missing"><strong>The bootstrap has not run</strong>
  in this Airflow (no Variable <code>smsc_bootstrap</code>): run
  <code>airflow smsc bootstrap</code>; until then the DAG's runs stop at their first task.
</div>
{% endif %}

{% for acc in page.accounts %}
<section class="account" id="account-{{ acc.name }}" data-account="{{ acc.account }}">
<h2>Account <code>{{ acc.account or acc.name }}</code>
  <span class="muted">· DAG <a target="_top" href="{{ ui }}dags/{{ acc.dag_id }}">{{ acc.dag_id
  }}</a> · pool <code>{{ acc.pool }}</code> · series {{ acc.series|join(", ") }}</span></h2>
{% if acc.error %}
<div class="banner" data-error="{{ acc.error }}">Connection <code>{{ acc.conn_id }}</code>:
  <code>{{ acc.error }}</code> {{ acc.message }}</div>
{% else %}
{% set now = acc.now %}
<h3>Now</h3>
<div class="grid" data-panel="now">
  <div class="card"><div class="k">next free call slot</div>
    <div class="v" data-figure="next-slot">{{ duration(now.next_slot_in_s) }}</div>
    <div class="muted">{{ when(now.next_slot) }}</div></div>
  <div class="card"><div class="k">calls in the last {{ now.limit.span_s|round(0)|int }} s</div>
    <div class="v"><span data-figure="calls-in-window">{{ now.calls_in_window }}</span>
      / {{ now.limit.calls }}</div>
    <div class="muted">last call {{ when(now.last_call) }}</div></div>
  <div class="card"><div class="k">pool
    {% if now.pool %}<code>{{ now.pool.name }}</code>{% endif %}</div>
    {% if now.pool and now.pool.present %}
    <div class="v" data-figure="pool-running">{{ now.pool.running }} / {{ now.pool.slots|int }}
      running</div>
    <div class="muted"><span data-figure="pool-queued">{{ now.pool.queued }}</span> queued ·
      {{ now.pool.scheduled }} scheduled</div>
    {% elif now.pool %}
    <div class="v outcome-bad" data-figure="pool-missing">missing</div>
    <div class="muted">run <code>airflow smsc bootstrap</code></div>
    {% else %}<div class="v">—</div>{% endif %}</div>
  <div class="card"><div class="k">cooldowns</div>
    {% for c in now.cooldowns %}
    <div class="outcome-bad" data-cooldown="{{ c.kind }}">{{ "IP blocked (error 4)" if
      c.kind == "ip_block" else "credentials refused (error 2)" }}: ends
      {{ duration(c.ends_in_s) }} ({{ when(c.until) }})</div>
    <div class="muted wrap">{{ c.reason }}</div>
    {% else %}<div class="v outcome-ok" data-figure="cooldowns">none</div>{% endfor %}</div>
</div>
<h3>Running backfills</h3>
{% if now.backfills %}
<table data-table="backfills"><tr><th>backfill</th><th>days</th><th class="num">loaded</th>
  <th>progress</th><th>runs</th><th>ETA</th></tr>
{% for b in now.backfills %}
<tr data-backfill="{{ b.id }}">
  <td><a target="_top" href="{{ ui }}{{ b.ui_path }}">#{{ b.id }}</a>{% if b.is_paused %}
    <span class="outcome-bad">paused</span>{% endif %}</td>
  <td>{{ when(b.first_day) }} … {{ when(b.last_day) }}</td>
  <td class="num"><span data-figure="days-loaded">{{ b.days_loaded }}</span> /
    <span data-figure="days-expected">{{ b.days_expected }}</span></td>
  <td><span class="progress"><span style="width: {{ (100 * b.days_loaded / b.days_expected)
    |round(0) if b.days_expected else 0 }}%"></span></span></td>
  <td>{% for state, n in b.runs|dictsort %}{{ n }} {{ state }}{% if not loop.last %},
    {% endif %}{% endfor %}</td>
  <td class="wrap" data-figure="eta">{% if b.eta %}{{ duration(b.eta_in_s) }} ·
    {{ when(b.eta) }}<br><span class="muted">{{ b.calls_left }} call(s) left{% if
    b.eta_rate_budget %}; the rate budget alone: {{ duration(b.eta_rate_budget_in_s) }}{% endif
    %}</span>{% elif b.is_paused %}paused{% else %}finishing{% endif %}</td></tr>
{% endfor %}</table>
{% else %}<div class="muted" data-empty="backfills">No backfill is running. Start one with
  <code>airflow backfill create --dag-id {{ acc.dag_id }} --from-date … --to-date …
  --max-active-runs 2</code>.</div>
{% endif %}

{% set calls = acc.calls %}
<h3>Calls</h3>
<div class="muted"><span data-figure="calls-total">{{ calls.total }}</span> call(s) in the last
  {{ calls.hours }} h, <span data-figure="calls-failed">{{ calls.failed }}</span> failed, peak
  {{ calls.peak_per_minute }} per minute; dashed line: the limit,
  {{ calls.limit_per_minute }} per minute.</div>
{{ chart(calls) }}
<div class="scroll">
<table id="ledger-{{ acc.name }}" data-table="ledger"><tr><th>when</th><th>window</th>
  <th>outcome</th><th class="num">error</th><th class="num">latency</th><th class="num">wait</th>
  <th>caller</th></tr>
{% for row in calls.ledger %}
<tr data-call="{{ row.id }}"><td>{{ when(row.reserved_at) }}</td>
  <td>{{ when(row.window_start) }}{% if row.window_end != row.window_start %} … {{
    when(row.window_end) }}{% endif %}</td>
  <td class="{{ 'outcome-ok' if row.outcome == 'ok' else 'outcome-bad' }}">{{ row.outcome }}</td>
  <td class="num">{{ row.error_code if row.error_code is not none else "" }}</td>
  <td class="num">{{ row.latency_ms ~ " ms" if row.latency_ms is not none else "" }}</td>
  <td class="num">{{ "%.1f s"|format(row.waited_ms / 1000) if row.waited_ms else "" }}</td>
  <td>{% if row.ui_path %}<a target="_top" href="{{ ui }}{{ row.ui_path }}"
    title="{{ row.caller }}">{{ row.caller_label }}</a>{% else %}{{ row.caller or "—" }}{% endif
    %}</td></tr>
{% else %}<tr><td colspan="7" class="muted" data-empty="ledger">No API call recorded yet for
  this account.</td></tr>
{% endfor %}</table></div>

{% set data = acc.data %}
<h3>Data</h3>
<h4>Days never loaded <span class="muted">(<span data-figure="gap-days">{{ data.gap_days
  }}</span> day(s) in {{ data.gaps|length }} range(s))</span></h4>
{% if data.gaps %}
<table data-table="gaps"><tr><th>series</th><th>days</th><th class="num">count</th>
  <th>fill with</th></tr>
{% for g in data.gaps %}
<tr><td>{{ g.series }}</td><td>{{ when(g.first) }}{% if g.last != g.first %} … {{ when(g.last)
  }}{% endif %}</td><td class="num">{{ g.days }}</td>
  <td class="wrap"><code>{{ g.backfill_command }}</code><br>
    <span class="muted">or all ranges at once:</span> <code>{{ g.gaps_command }}</code>
    {% for id, n in g.being_filled|dictsort %}<br><span class="outcome-ok"
      data-being-filled="{{ id }}">backfill #{{ id }} is loading {{ n }} of these
      day(s)</span>{% endfor %}</td></tr>
{% endfor %}</table>
{% else %}<div class="muted" data-empty="gaps">No gaps: every day since the first load has
  been fetched.</div>{% endif %}

<h4>Reconciliation per month</h4>
{% if data.reconciliation %}
<table data-table="reconciliation"><tr><th>month</th><th>series</th><th>status</th>
  <th class="num">attempt</th><th class="num">logins</th><th class="num">differing</th>
  <th class="num">missing days</th><th>checked</th></tr>
{% for r in data.reconciliation %}
<tr><td>{{ r.month.strftime("%Y-%m") }}</td><td>{{ r.series }}</td>
  <td class="status-{{ r.status }}">{{ r.status }}</td><td class="num">{{ r.attempt }}</td>
  <td class="num">{{ r.logins }}</td><td class="num">{{ r.logins_differing }}</td>
  <td class="num">{{ r.missing_day_count }}</td><td>{{ when(r.checked_at) }}</td></tr>
{% endfor %}</table>
{% else %}<div class="muted" data-empty="reconciliation">No month checked yet: scheduled runs
  check a month when its last day is loaded.</div>{% endif %}

<h4>Latest revisions</h4>
{% if data.revisions %}
<table data-table="revisions"><tr><th>day</th><th>series</th><th>login</th><th>cnt</th>
  <th>credit</th><th>debit</th><th>changed</th></tr>
{% for r in data.revisions %}
<tr><td>{{ when(r.stat_date) }}</td><td>{{ r.series }}</td><td>{{ r.login }}</td>
  <td>{{ change(r.old_cnt, r.new_cnt) }}</td><td>{{ change(r.old_credit, r.new_credit) }}</td>
  <td>{{ change(r.old_debit, r.new_debit) }}</td><td>{{ when(r.changed_at) }}</td></tr>
{% endfor %}</table>
{% else %}<div class="muted" data-empty="revisions">No stored day has changed on a
  re-fetch.</div>{% endif %}
{% endif %}
</section>
{% endfor %}

<footer>Read-only; reads the warehouse through <code>{{ page.warehouse.conn_id }}</code> and
  never calls SMSC. JSON: <a href="{{ base }}/api/now">now</a> ·
  <a href="{{ base }}/api/calls">calls</a> · <a href="{{ base }}/api/data">data</a>.
  Built in <span id="elapsed-ms">{{ page.elapsed_ms }}</span> ms with
  <span id="query-count">{{ page.warehouse_queries }}</span> warehouse queries.</footer>
</body>
</html>
"""

REFUSAL = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>SMSC · not allowed</title>
<link rel="icon" href="data:,">
<style>body { font: 14px/1.4 system-ui, sans-serif; margin: 16px 20px; color: #1d2733; }</style>
</head><body><h1>SMSC</h1><p id="refused">Not allowed: {{ reason }}.</p>
<p>Ask an Airflow admin for that access, or log in as another user.</p></body></html>
"""

_env = Environment(
    loader=DictLoader({"page.html": TEMPLATE, "refusal.html": REFUSAL}),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


def render_page(
    page: dict[str, Any],
    *,
    timezone: str,
    limit: dict[str, float],
    base: str,
    ui: str,
    generated: datetime,
    refresh: int = 30,
) -> str:
    """The whole page. ``base``: where this app is mounted; ``ui``: Airflow's UI root."""
    tz = ZoneInfo(timezone)
    return _env.get_template("page.html").render(
        page=page,
        timezone=timezone,
        limit=limit,
        base=base,
        ui=ui,
        generated=generated,
        refresh=refresh,
        when=lambda value: _when(value, tz),
        duration=_duration,
        change=_change,
        chart=lambda calls: calls_chart(calls, tz),
    )


def refusal_page(reason: str) -> str:
    """The 403 page: why, without anything the user may not see."""
    return _env.get_template("refusal.html").render(reason=reason)
