"""The run report: one self-contained HTML file (inline CSS and SVG, no script, no network;
a Content-Security-Policy forbids both) from a RunSummary; and the page of a pipeline's DAG."""

from __future__ import annotations

import json
from html import escape
from typing import Any

from osiris.runtime.records.layout import Edge, Graph, Node
from osiris.runtime.records.summary import RunSummary
from osiris.runtime.records.svg import (
    EDGE_STYLES,
    ROLE_COLOURS,
    STATUS_COLOURS,
    clip,
    dag_svg,
    gantt_svg,
    human,
    sparkline_svg,
)

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d2733;
margin:0;background:#f5f7fa}
main{max-width:1100px;margin:0 auto;padding:20px 24px 40px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:16px;margin:26px 0 8px}
.meta{color:#5b6b7f}.card{background:#fff;border:1px solid #e3e7ec;border-radius:8px;
padding:14px;overflow-x:auto}
.badge{display:inline-block;padding:2px 10px;border-radius:10px;color:#fff;font-weight:600;
font-size:13px;vertical-align:middle}
table{border-collapse:collapse;width:100%}th,td{padding:5px 8px;border-bottom:1px solid #eef1f4;
text-align:left;vertical-align:middle}th{font-weight:600;color:#5b6b7f;font-size:12px}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.failure{border-left:4px solid #d64545;background:#fff5f5}.failure pre{white-space:pre-wrap;
word-break:break-word;margin:6px 0 0;font-size:13px}
.legend span{display:inline-block;margin-right:14px;font-size:12px;color:#5b6b7f}
.legend i{display:inline-block;width:12px;height:12px;border-radius:3px;margin-right:4px;
vertical-align:-1px}
code{font-size:12px}td code{white-space:nowrap}td.note{font-size:12px;color:#5b6b7f;max-width:260px}
""".strip()


def _page(title: str, body: str) -> str:
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head>"
        f"<body><main>{body}</main></body></html>\n"
    )


def _legend(items: dict[str, str]) -> str:
    return (
        '<div class="legend">'
        + "".join(
            f'<span><i style="background:{c}"></i>{escape(k)}</span>' for k, c in items.items()
        )
        + "</div>"
    )


def _edge_legend() -> str:
    return (
        '<div class="legend">'
        + "".join(
            f'<span><svg width="34" height="10"><line x1="0" y1="5" x2="34" y2="5" {style}/>'
            f"</svg> {escape(kind)}</span>"
            for kind, style in EDGE_STYLES.items()
        )
        + "</div>"
    )


def run_graph(summary: RunSummary) -> Graph:
    """The run's DAG, each step with its status."""
    return Graph(
        tuple(Node(s.id, s.id, s.driver, s.role, s.status) for s in summary.steps),
        tuple(Edge(a, b, kind) for a, b, kind in summary.edges),
    )


def _seconds(ms: int | None) -> str:
    return "" if ms is None else f"{ms / 1000:.2f}s"


def _bytes(value: int) -> str:
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(value)


def _value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def render_report(summary: RunSummary) -> str:
    """The whole report page."""
    colour = STATUS_COLOURS.get(summary.status, "#9aa0a6")
    title = f"{summary.pipeline or 'run'} — {summary.run_id}"
    parts = [
        f"<h1>{escape(summary.pipeline or '(unknown pipeline)')} "
        f'<span class="badge status" data-status="{escape(summary.status)}" '
        f'style="background:{colour}">{escape(summary.status)}</span></h1>',
        f'<div class="meta">run <code>{escape(summary.run_id)}</code> · started '
        f"{escape(summary.started_at or '?')} · {escape(_seconds(summary.duration_ms))} · "
        f"{summary.rows_moved:,} rows written · up to {summary.max_parallel_seen} steps at once"
        "</div>",
    ]
    if summary.status in ("failed", "cancelled", "interrupted") or summary.error:
        failed = next((s for s in summary.steps if s.id == summary.failed_step), None)
        lines = [f"<strong>{escape(summary.status)}</strong>"]
        if summary.failed_step:
            lines.append(f" at step <code>{escape(summary.failed_step)}</code>")
        text = summary.error or "the run stopped without recording why (killed?)"
        lines.append(f'<pre class="error">{escape(text)}</pre>')
        detail = summary.error_detail or (failed.detail if failed else None)
        if detail:
            lines.append(f'<pre class="detail">{escape(detail)}</pre>')
        if summary.note:
            lines.append(f'<p class="note">{escape(summary.note)}</p>')
        parts.append(f'<h2>Failure</h2><div class="card failure">{"".join(lines)}</div>')
    parts.append(
        '<h2>Pipeline</h2><div class="card">'
        + dag_svg(run_graph(summary))
        + _legend(STATUS_COLOURS)
        + _edge_legend()
        + "</div>"
    )
    total = (summary.duration_ms or 0) / 1000
    parts.append('<h2>Timeline</h2><div class="card">' + gantt_svg(summary.steps, total) + "</div>")
    rows = []
    for step in summary.steps:
        colour = STATUS_COLOURS.get(step.status, "#9aa0a6")
        rate = human(step.rows_per_s) if step.status == "ok" else ""
        rows.append(
            f'<tr class="step" data-step="{escape(step.id)}">'
            f"<td><code>{escape(step.id)}</code></td><td>{escape(step.driver)}</td>"
            f'<td><span class="badge" style="background:{colour}">{escape(step.status)}</span></td>'
            f'<td class="num">{step.rows_in:,}</td><td class="num">{step.rows_out:,}</td>'
            f'<td class="num">{escape(_bytes(step.bytes)) if step.bytes else ""}</td>'
            f'<td class="num">{_seconds(step.duration_ms) if step.start is not None else ""}</td>'
            f'<td class="num">{rate}</td><td>{sparkline_svg(step)}</td>'
            f'<td class="note" title="{escape(step.error or "")}">'
            f"{escape(clip(step.error or '', 90))}</td></tr>"
        )
    parts.append(
        '<h2>Steps</h2><div class="card"><table class="steps"><thead><tr><th>step</th>'
        "<th>driver</th><th>status</th><th>rows in</th><th>rows out</th><th>bytes</th>"
        "<th>time</th><th>rows/s</th><th>rows/s over time</th><th>note</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )
    if summary.warnings:
        items = "".join(f"<li>{escape(w)}</li>" for w in summary.warnings)
        parts.append(f'<h2>Warnings</h2><div class="card"><ul>{items}</ul></div>')
    params = "".join(
        f"<tr><td><code>{escape(str(k))}</code></td><td><code>{escape(_value(v))}</code></td></tr>"
        for k, v in sorted(summary.params.items())
    )
    parts.append(
        '<h2>Params</h2><div class="card"><table class="params">'
        f"{params or '<tr><td>none</td></tr>'}</table></div>"
    )
    env = dict(summary.environment)
    versions = env.pop("versions", {}) or {}
    facts = [("manifest fingerprint", summary.manifest_fingerprint or "")]
    facts += [(str(k), _value(v)) for k, v in sorted(env.items())]
    if isinstance(versions, dict):
        facts += [(f"{k} version", _value(v)) for k, v in sorted(versions.items())]
    facts.append(("run folder", str(summary.folder)))
    env_rows = "".join(
        f"<tr><th>{escape(k)}</th><td><code>{escape(v)}</code></td></tr>" for k, v in facts
    )
    parts.append(
        f'<h2>Environment</h2><div class="card"><table class="env">{env_rows}</table></div>'
    )
    return _page(title, "".join(parts))


def graph_page(graph: Graph, title: str, subtitle: str = "") -> str:
    """A pipeline's DAG on its own page (`osiris graph -o FILE.html`)."""
    body = (
        f"<h1>{escape(title)}</h1>"
        + (f'<div class="meta">{escape(subtitle)}</div>' if subtitle else "")
        + '<div class="card" style="margin-top:14px">'
        + dag_svg(graph)
        + _legend(ROLE_COLOURS)
        + _edge_legend()
        + "</div>"
    )
    return _page(title, body)
