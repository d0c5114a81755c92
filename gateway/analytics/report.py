"""The period report as a PDF (reportlab): totals, spend by model and by day, latency, budgets.

Pure apart from writing the file: it takes store rows and budget status entries.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, BinaryIO

from reportlab.graphics.charts.barcharts import VerticalBarChart
from reportlab.graphics.charts.lineplots import LinePlot
from reportlab.graphics.shapes import Drawing, String
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.lib.units import cm
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from aimm_gateway.analytics.aggregate import Row, aggregate, savings, totals


def _bar_chart(title: str, labels: Sequence[str], values: Sequence[float]) -> Drawing:
    drawing = Drawing(16 * cm, 7 * cm)
    chart = VerticalBarChart()
    chart.x, chart.y, chart.width, chart.height = 1.5 * cm, 1.5 * cm, 13.5 * cm, 4.5 * cm
    chart.data = [list(values) or [0.0]]
    chart.categoryAxis.categoryNames = list(labels) or [""]
    chart.categoryAxis.labels.angle = 30 if len(labels) > 6 else 0
    chart.categoryAxis.labels.fontSize = 6
    chart.valueAxis.valueMin = 0
    chart.bars[0].fillColor = colors.HexColor("#3b6ea5")
    drawing.add(chart)
    drawing.add(String(0.5 * cm, 6.5 * cm, title, fontSize=10))
    return drawing


def _latency_chart(days: Sequence[dict[str, Any]]) -> Drawing:
    drawing = Drawing(16 * cm, 7 * cm)
    plot = LinePlot()
    plot.x, plot.y, plot.width, plot.height = 1.5 * cm, 1.5 * cm, 13.5 * cm, 4.5 * cm
    p50 = [(i, float(d["p50_latency_ms"] or 0)) for i, d in enumerate(days)] or [(0, 0.0)]
    p95 = [(i, float(d["p95_latency_ms"] or 0)) for i, d in enumerate(days)] or [(0, 0.0)]
    plot.data = [p50, p95]
    plot.lines[0].strokeColor = colors.HexColor("#3b6ea5")
    plot.lines[1].strokeColor = colors.HexColor("#c0504d")
    plot.yValueAxis.valueMin = 0
    drawing.add(plot)
    drawing.add(String(0.5 * cm, 6.5 * cm, "Latency per day, ms (blue p50, red p95)", fontSize=10))
    return drawing


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> Table:
    table = Table([list(header), *[[("" if v is None else str(v)) for v in r] for r in rows]], repeatRows=1)
    table.setStyle(
        TableStyle(
            [
                ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#dde6f0")),
                ("FONTSIZE", (0, 0), (-1, -1), 8),
                ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
            ]
        )
    )
    return table


def write_pdf(out: BinaryIO, label: str, rows: Sequence[Row], budgets: Sequence[dict[str, Any]]) -> None:
    styles = getSampleStyleSheet()
    total = totals(rows)
    saved = savings(rows)
    by_model = aggregate(rows, "model")
    by_day = aggregate(rows, "day")
    story: list[Any] = [
        Paragraph(f"AI usage and cost report: {label}", styles["Title"]),
        _table(
            ("requests", "tokens", "cost USD", "saved USD", "error rate", "p50 ms", "p95 ms", "cache hits"),
            [
                [
                    total["requests"],
                    total["total_tokens"],
                    total["cost_usd"],
                    saved["saved_usd"],
                    total["error_rate"],
                    total["p50_latency_ms"],
                    total["p95_latency_ms"],
                    total["cache_hit_rate"],
                ]
            ],
        ),
        Spacer(1, 0.5 * cm),
        _bar_chart("Spend by model, USD", [e["model"] for e in by_model], [float(e["cost_usd"]) for e in by_model]),
        _bar_chart("Spend per day, USD", [e["day"][5:] for e in by_day], [float(e["cost_usd"]) for e in by_day]),
        _latency_chart(by_day),
        Paragraph("Models", styles["Heading2"]),
        _table(
            ("model", "requests", "tokens", "cost USD", "error rate", "p95 ms"),
            [
                [e["model"], e["requests"], e["total_tokens"], e["cost_usd"], e["error_rate"], e["p95_latency_ms"]]
                for e in by_model
            ],
        ),
        Paragraph("Budgets", styles["Heading2"]),
        _table(
            ("budget", "period", "limit USD", "spent USD", "used %", "projected USD", "state", "ends"),
            [
                [
                    b["name"],
                    b["period"],
                    b["limitUsd"],
                    b["costThisPeriod"],
                    b["percentUsed"],
                    b["projectedPeriodCost"],
                    b["state"],
                    b["periodEnds"],
                ]
                for b in budgets
            ],
        ),
    ]
    SimpleDocTemplate(out, pagesize=A4, title=f"aimm report {label}", author="aimm").build(story)
