#!/usr/bin/env python3
"""Render a Grafana dashboard of ELS as a PNG from a running Prometheus, without Grafana.

Reads a dashboard JSON (default: deploy/grafana/dashboards/els-overview.json), runs every
panel's PromQL through Prometheus' /api/v1/query_range over the last N minutes, and draws the
panels on the dashboard's own 24-column grid: time series as lines, stat panels as their last
value with a sparkline, text panels as text. `$__rate_interval` is replaced the way Grafana
computes it: max(step + scrape interval, 4 x scrape interval).

    pip install matplotlib
    deploy/scripts/plot-dashboard.py --prometheus http://127.0.0.1:9090 --minutes 15 \
        --output docs/dashboard.png

Only the standard library and matplotlib; not run by the tests.
"""

import argparse
import json
import math
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates  # noqa: E402
import matplotlib.patches  # noqa: E402
import matplotlib.ticker  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
GRID_COLUMNS = 24
# Grafana-like dark theme.
BACKGROUND = "#111217"
PANEL = "#181b1f"
TEXT = "#ccccdc"
MUTED = "#8e8e9e"
PALETTE = ["#73bf69", "#f2cc0c", "#8ab8ff", "#ff780a", "#f2495c", "#5794f2", "#b877d9",
           "#705da0", "#37872d", "#fade2a"]
THRESHOLD_COLORS = {"green": "#73bf69", "orange": "#ff9830", "red": "#f2495c",
                    "yellow": "#fade2a"}


def fetch(prometheus, path, params):
    url = f"{prometheus.rstrip('/')}{path}?{urllib.parse.urlencode(params)}"
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            body = json.load(r)
    except urllib.error.HTTPError as e:
        body = json.load(e)
    if body.get("status") != "success":
        raise RuntimeError(f"{body.get('errorType')}: {body.get('error')}")
    return body["data"]


def query_range(prometheus, expr, start, end, step):
    """[(labels, [(datetime, value)])] of a range query; NaN and Inf points dropped."""
    data = fetch(prometheus, "/api/v1/query_range",
                 {"query": expr, "start": start, "end": end, "step": step})
    out = []
    for s in data["result"]:
        points = [(datetime.fromtimestamp(float(t)), float(v)) for t, v in s["values"]]
        points = [(t, v) for t, v in points if math.isfinite(v)]
        out.append((s["metric"], points))
    return out


def legend(fmt, labels):
    if not fmt:
        return ", ".join(f"{k}={v}" for k, v in sorted(labels.items())) or "value"
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), fmt).strip()


def human(value, unit):
    """A number the way Grafana's units print it (roughly)."""
    if value is None or not math.isfinite(value):
        return "–"
    if value == 0:
        return "0"
    if unit == "percentunit":
        return f"{value * 100:.1f}%"
    if unit == "s":
        if value < 1:
            return f"{value * 1000:.0f} ms"
        return f"{value:.1f} s" if value < 60 else f"{value / 60:.1f} min"
    suffix = {"reqps": " req/s"}.get(unit, "")
    for div, letter in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= div:
            return f"{value / div:.1f}{letter}{suffix}"
    if value == int(value) or abs(value) >= 100:
        return f"{value:.0f}{suffix}"
    return f"{value:.1f}{suffix}" if abs(value) >= 10 else f"{value:.2f}{suffix}"


def threshold_color(value, panel):
    steps = (panel.get("fieldConfig", {}).get("defaults", {})
             .get("thresholds", {}).get("steps", []))
    color = "green"
    for step in steps:
        if step.get("value") is None or (value is not None and value >= step["value"]):
            color = step.get("color", color)
    return THRESHOLD_COLORS.get(color, color)


def style_axes(ax):
    ax.set_facecolor(PANEL)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.tick_params(colors=MUTED, labelsize=7, length=0)
    ax.grid(True, color="#2c3235", linewidth=0.6)


def draw_timeseries(ax, panel, results, span):
    unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit", "short")
    style_axes(ax)
    n, top = 0, 0.0
    for target, series in results:
        for labels, points in series:
            if not points:
                continue
            t, v = zip(*points)
            top = max(top, *v)
            ax.plot(t, v, linewidth=1.2, color=PALETTE[n % len(PALETTE)],
                    label=legend(target.get("legendFormat", ""), labels))
            n += 1
    if n == 0:
        ax.text(0.5, 0.5, "No data", transform=ax.transAxes, ha="center", va="center",
                color=MUTED)
    # Headroom above the highest line for the legend, as Grafana keeps it below the graph.
    ax.set_ylim(0, top * 1.35 if top > 0 else 1)
    ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda y, _: human(y, unit)))
    ax.set_xlim(*span)
    ax.xaxis.set_major_locator(mdates.AutoDateLocator(minticks=3, maxticks=7))
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M"))
    if n:
        ax.legend(loc="upper left", fontsize=7, frameon=False, labelcolor=TEXT,
                  ncol=min(n, 3), borderaxespad=0.2)


def draw_stat(ax, panel, results):
    unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit", "short")
    style_axes(ax)
    ax.grid(False)
    ax.set_xticks([])
    ax.set_yticks([])
    points = next((p for _, series in results for _, p in series if p), [])
    last = points[-1][1] if points else None
    color = threshold_color(last, panel)
    if points:
        t, v = zip(*points)
        ax.fill_between(t, v, color=color, alpha=0.15, linewidth=0)
        ax.plot(t, v, color=color, alpha=0.6, linewidth=1)
        top = max(v)
        ax.set_ylim(0, top * 2.2 if top > 0 else 1)
    ax.text(0.5, 0.45, human(last, unit), transform=ax.transAxes, ha="center",
            va="center", fontsize=20, color=color, fontweight="bold")


def draw_text(ax, panel):
    style_axes(ax)
    ax.grid(False)
    ax.set_xticks([])
    ax.set_yticks([])
    content = panel.get("options", {}).get("content", "")
    plain = re.sub(r"[*`]", "", content)
    ax.text(0.01, 0.9, plain, transform=ax.transAxes, ha="left", va="top", fontsize=8,
            color=TEXT, wrap=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prometheus", default="http://127.0.0.1:9090")
    parser.add_argument("--dashboard", type=Path,
                        default=REPO / "deploy/grafana/dashboards/els-overview.json")
    parser.add_argument("--minutes", type=float, default=15, help="time range, ending now")
    parser.add_argument("--scrape-interval", type=float, default=5,
                        help="seconds; Prometheus' scrape interval, for $__rate_interval")
    parser.add_argument("--points", type=int, default=240, help="points per series")
    parser.add_argument("--output", type=Path, default=REPO / "docs/dashboard.png")
    args = parser.parse_args()

    dashboard = json.loads(args.dashboard.read_text())
    end = time.time()
    start = end - args.minutes * 60
    step = max(args.scrape_interval, round((end - start) / args.points))
    rate_interval = f"{int(max(step + args.scrape_interval, 4 * args.scrape_interval))}s"

    panels = [p for p in dashboard["panels"] if p.get("type") != "row"]
    rows = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels)
    # Grafana's grid: 24 columns across the page, 30 px per row; here 0.32 in per row.
    width, row, header, margin, gap = 19.2, 0.32, 0.7, 0.15, 0.06
    height = header + rows * row + margin
    fig = plt.figure(figsize=(width, height), dpi=100, facecolor=BACKGROUND)
    column = (width - 2 * margin) / GRID_COLUMNS

    def box(g):
        """The panel's rectangle in inches: left, bottom, width, height."""
        left = margin + g["x"] * column + gap
        top = height - header - g["y"] * row - gap
        w, h = g["w"] * column - 2 * gap, g["h"] * row - 2 * gap
        return left, top - h, w, h

    failures = 0
    for panel in panels:
        left, bottom, w, h = box(panel["gridPos"])
        fig.patches.append(matplotlib.patches.FancyBboxPatch(
            (left / width, bottom / height), w / width, h / height,
            boxstyle="round,pad=0,rounding_size=0.004", transform=fig.transFigure,
            facecolor=PANEL, edgecolor="#2c3235", linewidth=0.8, zorder=-1))
        fig.text((left + 0.1) / width, (bottom + h - 0.08) / height, panel["title"],
                 ha="left", va="top", color=TEXT, fontsize=10, fontweight="bold")
        # Room for the title above, tick labels left and below (none on stat/text panels).
        graph = panel["type"] == "timeseries"
        pad_left, pad_bottom = (0.62, 0.28) if graph else (0.1, 0.08)
        ax = fig.add_axes([(left + pad_left) / width, (bottom + pad_bottom) / height,
                           (w - pad_left - 0.12) / width, (h - pad_bottom - 0.34) / height])
        if panel["type"] == "text":
            draw_text(ax, panel)
            continue
        results = []
        for target in panel.get("targets", []):
            expr = target["expr"].replace("$__rate_interval", rate_interval)
            try:
                results.append((target, query_range(args.prometheus, expr, start, end, step)))
            except (RuntimeError, urllib.error.URLError) as e:
                failures += 1
                print(f"query failed: {expr}: {e}", file=sys.stderr)
        if panel["type"] == "stat":
            draw_stat(ax, panel, results)
        else:
            draw_timeseries(ax, panel, results,
                            (datetime.fromtimestamp(start), datetime.fromtimestamp(end)))

    fig.suptitle(
        f"{dashboard['title']}   ·   last {args.minutes:g} min to "
        f"{datetime.fromtimestamp(end).astimezone():%Y-%m-%d %H:%M %Z}   ·   drawn from Prometheus "
        f"query_range by deploy/scripts/plot-dashboard.py ($__rate_interval = {rate_interval})",
        x=margin / width, y=1 - 0.2 / height, ha="left", va="top", color=TEXT, fontsize=13)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.output, facecolor=BACKGROUND)
    print(f"wrote {args.output} ({len(panels)} panels, step {step}s, "
          f"rate interval {rate_interval}, {failures} failed queries)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
