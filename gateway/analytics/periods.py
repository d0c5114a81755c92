"""Report periods: a label a user types (`YYYY-MM`, `YYYY-MM-DD`) as a UTC range.

Apart from the PDF writer (`report.py`) so that parsing a period does not load reportlab.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta


def period_range(period: str) -> tuple[datetime, datetime, str]:
    """`YYYY-MM` (a month) or `YYYY-MM-DD` (a day) → UTC [start, end) and a label."""
    try:
        if len(period) == 7:
            start = datetime.strptime(period, "%Y-%m").replace(tzinfo=UTC)
            end = (start.replace(day=28) + timedelta(days=4)).replace(day=1)
            return start, end, start.strftime("%B %Y")
        day = date.fromisoformat(period)
    except ValueError:
        raise ValueError(f"period {period!r}: expected YYYY-MM or YYYY-MM-DD") from None
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return start, start + timedelta(days=1), day.isoformat()
