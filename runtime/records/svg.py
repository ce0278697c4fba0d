"""SVG pictures of runs and pipelines: the DAG (from layout), the Gantt timeline of a run's steps
and a rows/s sparkline per step. Every text from a record is escaped here."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from itertools import pairwise

from osiris.runtime.records.layout import NODE_H, NODE_W, Graph, Layout, layout
from osiris.runtime.records.summary import StepSummary

STATUS_COLOURS = {
    "ok": "#2f9e5b",
    "failed": "#d64545",
    "cancelled": "#e59a1c",
    "skipped": "#9aa0a6",
    "running": "#3b7dd8",
    "not_run": "#c9ced6",
}
ROLE_COLOURS = {"extractor": "#3b7dd8", "processor": "#8656c9", "writer": "#1f8f84"}
DARK_TEXT = {"skipped", "not_run"}
EDGE_STYLES = {
    "data": 'stroke="#7b8794" stroke-width="1.6"',
    "stream": 'stroke="#1f8f84" stroke-width="2.4" stroke-dasharray="7 4"',
    "view": 'stroke="#8656c9" stroke-width="2" stroke-dasharray="2 3"',
}


def clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def human(value: float) -> str:
    """1234567 -> 1.2M (rows, rows/s)."""
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= size:
            return f"{value / size:.1f}{unit}"
    return f"{value:.0f}"


def node_colour(status: str | None, role: str) -> str:
    if status is not None:
        return STATUS_COLOURS.get(status, "#c9ced6")
    return ROLE_COLOURS.get(role, "#5b6b7f")


def _path(points: Sequence[tuple[float, float]]) -> str:
    (x0, y0), rest = points[0], points[1:]
    parts = [f"M{x0:.1f},{y0:.1f}"]
    for x1, y1 in rest:
        if abs(y1 - y0) < 0.5:
            parts.append(f"L{x1:.1f},{y1:.1f}")
        else:
            dx = (x1 - x0) / 2
            parts.append(f"C{x0 + dx:.1f},{y0:.1f} {x1 - dx:.1f},{y1:.1f} {x1:.1f},{y1:.1f}")
        x0, y0 = x1, y1
    return " ".join(parts)


def dag_svg(graph: Graph, placed: Layout | None = None) -> str:
    """The DAG: one <g class="node" data-step=… data-status=…> per step, arrows for edges
    (dashed: a stream; dotted: a view read by the next step)."""
    placed = placed or layout(graph)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="dag" width="{placed.width:.0f}" '
        f'height="{placed.height:.0f}" viewBox="0 0 {placed.width:.0f} {placed.height:.0f}" '
        'role="img" aria-label="pipeline graph">',
        '<defs><marker id="dag-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
        'fill="#7b8794"/></marker></defs>',
    ]
    for edge, points in placed.routes:
        style = EDGE_STYLES.get(edge.kind, EDGE_STYLES["data"])
        out.append(
            f'<path class="edge edge-{escape(edge.kind)}" data-from="{escape(edge.source)}" '
            f'data-to="{escape(edge.target)}" d="{_path(points)}" fill="none" {style} '
            f'marker-end="url(#dag-arrow)"><title>{escape(edge.source)} → '
            f"{escape(edge.target)} ({escape(edge.kind)})</title></path>"
        )
    for node in graph.nodes:
        box = placed.boxes.get(node.id)
        if box is None:
            continue
        colour = node_colour(node.status, node.role)
        ink = "#1d2733" if (node.status in DARK_TEXT) else "#ffffff"
        tip = f"{node.id} — {node.sub}" + (f" — {node.status}" if node.status else "")
        out.append(
            f'<g class="node" data-step="{escape(node.id)}" '
            f'data-status="{escape(node.status or "")}" data-role="{escape(node.role)}" '
            f'data-x="{box.x:.0f}" data-y="{box.y:.0f}">'
            f"<title>{escape(tip)}</title>"
            f'<rect x="{box.x:.1f}" y="{box.y:.1f}" width="{NODE_W}" height="{NODE_H}" rx="7" '
            f'fill="{colour}"/>'
            f'<text x="{box.x + 10:.1f}" y="{box.y + 19:.1f}" fill="{ink}" font-size="13" '
            f'font-weight="600">{escape(clip(node.label, 24))}</text>'
            f'<text x="{box.x + 10:.1f}" y="{box.y + 36:.1f}" fill="{ink}" font-size="11" '
            f'opacity="0.9">{escape(clip(node.sub, 30))}</text></g>'
        )
    out.append("</svg>")
    return "".join(out)


def _tick(total: float) -> float:
    for step in (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60):
        if total / step <= 8:
            return step
    return 60 * max(1, round(total / 480))


def gantt_svg(steps: Sequence[StepSummary], total_s: float, width: int = 760) -> str:
    """One bar per step that started, from its start to its end (seconds since the run began);
    bars that overlap ran in parallel."""
    rows = sorted((s for s in steps if s.start is not None), key=lambda s: (s.start or 0, s.id))
    total = max([total_s] + [s.end or 0 for s in rows] + [0.001])
    label_w, row_h, top = 170, 24, 22
    span = width - label_w - 20
    height = top + max(len(rows), 1) * row_h + 8
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="gantt" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" aria-label="timeline">'
    ]
    tick = _tick(total)
    at = 0.0
    while at <= total + 1e-9:
        x = label_w + at / total * span
        label = f"{at:.3f}".rstrip("0").rstrip(".") + "s"
        out.append(
            f'<line x1="{x:.1f}" y1="{top - 4}" x2="{x:.1f}" y2="{height - 6}" stroke="#e3e7ec"/>'
            f'<text x="{x:.1f}" y="{top - 8}" font-size="10" fill="#5b6b7f" '
            f'text-anchor="middle">{label}</text>'
        )
        at += tick
    for i, step in enumerate(rows):
        start = step.start or 0.0
        end = step.end if step.end is not None else total
        x = label_w + start / total * span
        w = max((end - start) / total * span, 2.0)
        y = top + i * row_h
        colour = STATUS_COLOURS.get(step.status, "#c9ced6")
        out.append(
            f'<g class="bar" data-step="{escape(step.id)}" data-status="{escape(step.status)}">'
            f"<title>{escape(step.id)}: {start:.3f}s – {end:.3f}s ({escape(step.status)})</title>"
            f'<text x="{label_w - 8}" y="{y + 15}" font-size="12" fill="#1d2733" '
            f'text-anchor="end">{escape(clip(step.id, 24))}</text>'
            f'<rect x="{x:.1f}" y="{y + 4}" width="{w:.1f}" height="{row_h - 8}" rx="3" '
            f'fill="{colour}"/></g>'
        )
    out.append("</svg>")
    return "".join(out)


def rates(step: StepSummary) -> list[tuple[float, float]]:
    """(seconds since the run began, rows/s) between the step's progress samples, framed by
    its start (0 rows) and, when it succeeded, its end (its final count)."""
    if step.start is None:
        return []
    points = [(step.start, 0)] + [p for p in step.progress if p[0] >= step.start]
    if step.status == "ok" and step.end is not None:
        points.append((step.end, max(step.rows_in, step.rows_out, points[-1][1])))
    found = []
    for (t0, r0), (t1, r1) in pairwise(points):
        if t1 > t0 and r1 >= r0:
            found.append(((t0 + t1) / 2, (r1 - r0) / (t1 - t0)))
    return found


def sparkline_svg(step: StepSummary, width: int = 120, height: int = 26) -> str:
    """The step's rows/s over its run time, with the peak; "" unless progress was sampled at
    least twice while it ran (a step of a few milliseconds has nothing to draw)."""
    found = rates(step)
    if len(step.progress) < 2 or len(found) < 2 or max(r for _, r in found) <= 0:
        return ""
    t0, t1 = found[0][0], found[-1][0]
    peak = max(r for _, r in found)
    points = " ".join(
        f"{(t - t0) / ((t1 - t0) or 1) * (width - 4) + 2:.1f},"
        f"{height - 3 - r / peak * (height - 6):.1f}"
        for t, r in found
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="spark" data-step="{escape(step.id)}" '
        f'data-points="{len(found)}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}"><title>peak {human(peak)} rows/s</title>'
        f'<polyline points="{points}" fill="none" stroke="#3b7dd8" stroke-width="1.6"/></svg>'
    )
