"""Draw a Grafana dashboard (its JSON) as a PNG from a real Prometheus, without Grafana.

Each panel's PromQL runs as a range query; panels sit where the dashboard's grid puts them (24
columns, rows of 30 px). Time series are lines, `stat` the last value, `bargauge` a bar per series,
with Grafana's units for the axes and numbers. What it draws is the data the panel would show;
the look is only close to Grafana's. Used by test_prometheus_e2e.py (docs/observability.md).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: files only
import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.ticker import FuncFormatter

COLUMNS = 24
ROW_PX = 30
DPI = 100
WIDTH_PX = 1600
COLOURS = ("#7eb26d", "#eab839", "#6ed0e0", "#ef843c", "#e24d42", "#1f78c1", "#ba43a9", "#705da0", "#508642")
BACKGROUND, PANEL, TEXT, MUTED = "#111217", "#181b1f", "#ccccdc", "#8e8e9e"

# A range query: PromQL -> [(labels, [(unix time, value)])].
RangeQuery = Callable[[str], list[tuple[dict[str, str], list[tuple[float, float]]]]]


@dataclass
class Series:
    name: str
    points: list[tuple[float, float]]

    @property
    def last(self) -> float | None:
        finite = [v for _, v in self.points if math.isfinite(v)]
        return finite[-1] if finite else None


def fmt(value: float | None, unit: str | None) -> str:
    """A number the way the panel's Grafana unit shows it."""
    if value is None or not math.isfinite(value):
        return "No data"
    if unit == "percentunit":
        return f"{value * 100:.1f}%"
    if unit == "currencyUSD":
        return f"${value:.3g}" if abs(value) < 1 else f"${value:,.2f}"
    if unit == "s":
        return f"{value * 1000:.0f} ms" if abs(value) < 1 else f"{value:.2f} s"
    if unit == "reqps":
        return f"{value:.2f} req/s"
    if unit in ("bool", "bool_on_off"):
        return ("On" if unit == "bool_on_off" else "True") if value else ("Off" if unit == "bool_on_off" else "False")
    return f"{value:,.3g}" if abs(value) < 1000 else f"{value:,.0f}"


def legend(template: str, labels: dict[str, str]) -> str:
    name = re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), template).strip()
    return name or ",".join(f"{k}={v}" for k, v in sorted(labels.items())) or "value"


def panel_series(panel: dict[str, Any], query: RangeQuery) -> list[Series]:
    out = []
    for target in panel.get("targets", []):
        for labels, points in query(target["expr"]):
            out.append(Series(legend(target.get("legendFormat", ""), labels), points))
    return out


def _style(ax: Axes, title: str) -> None:
    ax.set_facecolor(PANEL)
    for spine in ax.spines.values():
        spine.set_color("#2c3235")
    ax.tick_params(colors=MUTED, labelsize=8)
    ax.set_title(title, color=TEXT, fontsize=10, loc="left", pad=6)


def _timeseries(ax: Axes, series: list[Series], unit: str | None, start: float) -> None:
    for i, s in enumerate(series):
        xs = [t - start for t, v in s.points if math.isfinite(v)]
        ys = [v for _, v in s.points if math.isfinite(v)]
        ax.plot(xs, ys, color=COLOURS[i % len(COLOURS)], linewidth=1.4, label=s.name)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: fmt(v, unit)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"+{v:.0f}s"))  # since the load began
    ax.grid(color="#2c3235", linewidth=0.6)
    if series:
        ax.legend(fontsize=7, loc="upper left", facecolor=PANEL, edgecolor=PANEL, labelcolor=TEXT, ncol=3)


def _stat(ax: Axes, series: list[Series], unit: str | None) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    value = series[0].last if series else None
    colour = COLOURS[0] if value is not None else MUTED
    ax.text(0.5, 0.42, fmt(value, unit), color=colour, fontsize=24, ha="center", va="center", transform=ax.transAxes)


def _bargauge(ax: Axes, series: list[Series], unit: str | None) -> None:
    rows = [(s.name, s.last or 0.0) for s in series][:12]
    names = [n for n, _ in rows]
    values = [v for _, v in rows]
    ax.barh(range(len(rows)), values, color=[COLOURS[i % len(COLOURS)] for i in range(len(rows))], height=0.6)
    ax.set_yticks(range(len(rows)), names, color=TEXT, fontsize=8)
    ax.invert_yaxis()
    ax.set_xticks([])
    top = max(values, default=0) or 1.0
    ax.set_xlim(0, top * 1.35)
    for i, v in enumerate(values):
        ax.text(v + top * 0.02, i, fmt(v, unit), color=TEXT, fontsize=8, va="center")


def compact(panels: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, int]]]:
    """Each panel with its grid place after Grafana's vertical compaction (panels float up)."""
    placed: list[dict[str, int]] = []
    out = []
    for panel in sorted(panels, key=lambda p: (p["gridPos"]["y"], p["gridPos"]["x"])):
        g = dict(panel["gridPos"])
        below = [q["y"] + q["h"] for q in placed if q["x"] < g["x"] + g["w"] and g["x"] < q["x"] + q["w"]]
        g["y"] = max(below, default=0)
        placed.append(g)
        out.append((panel, g))
    return out


def draw(dashboard: dict[str, Any], query: RangeQuery, start: float, out: Path) -> dict[str, int]:
    """Render `dashboard` to `out`; returns each panel's number of series with data (0: empty)."""
    panels = compact(dashboard["panels"])
    rows = max(g["y"] + g["h"] for _, g in panels)
    height_px = rows * ROW_PX + 50
    fig = plt.figure(figsize=(WIDTH_PX / DPI, height_px / DPI), dpi=DPI, facecolor=BACKGROUND)
    fig.text(0.01, 1 - 18 / height_px, dashboard["title"], color=TEXT, fontsize=14, va="center", weight="bold")
    drawn: dict[str, int] = {}
    for panel, g in panels:
        # Grid units to figure fractions, with a gutter and room for titles and tick labels.
        left = g["x"] / COLUMNS + 80 / WIDTH_PX
        width = g["w"] / COLUMNS - 95 / WIDTH_PX
        top_px = 40 + g["y"] * ROW_PX + 26
        bottom_px = 40 + (g["y"] + g["h"]) * ROW_PX - 22
        ax = fig.add_axes((left, 1 - bottom_px / height_px, width, (bottom_px - top_px) / height_px))
        _style(ax, panel["title"])
        series = panel_series(panel, query)
        unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit")
        if panel["type"] == "stat":
            _stat(ax, series, unit)
        elif panel["type"] == "bargauge":
            _bargauge(ax, series, unit)
        else:
            _timeseries(ax, series, unit, start)
        drawn[panel["title"]] = sum(1 for s in series if s.last is not None)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, facecolor=BACKGROUND)
    plt.close(fig)
    return drawn
