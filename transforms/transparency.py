"""Transparency aggregates: decisions counted per period and breakdown, small cells withheld.

Cells follow the breakdowns the EU DSA reports ask for (category, action, detection method,
automated or not, content type, country) per day and per calendar month, with the median
time from upload to action. A cell under the minimum count keeps its place in the table
but not its numbers (`suppressed = true`), so no cell can single out a person.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections.abc import Iterable

import apache_beam as beam

from schemas.records import Decision, TransparencyCell

# (period type, ISO period start, category, action, detection method, automated decision,
# content type, country, policy version): strings only, so the key encodes deterministically.
CellKey = tuple[str, str, str | None, str, str, str, str, str | None, str]


def period_start(moment: dt.datetime, period_type: str) -> dt.date:
    day = moment.astimezone(dt.UTC).date()
    return day if period_type == "day" else day.replace(day=1)


def cell_keys(decision: Decision) -> Iterable[tuple[CellKey, float]]:
    """The (day and month) cells a restrictive decision counts in, with its hours to action."""
    if decision.action == "none":
        return
    hours = max((decision.decided_at - decision.uploaded_at).total_seconds() / 3600.0, 0.0)
    for period_type in ("day", "month"):
        key = (
            period_type,
            period_start(decision.decided_at, period_type).isoformat(),
            decision.category,
            decision.action,
            decision.detection_method,
            decision.automated_decision,
            decision.media_type,
            decision.country,
            decision.policy_version,
        )
        yield key, hours


def make_cell(key: CellKey, hours_to_action: Iterable[float], min_cell_count: int) -> TransparencyCell:
    """One aggregate row; counts under `min_cell_count` are withheld."""
    hours = list(hours_to_action)
    suppressed = len(hours) < min_cell_count
    period_type, start, category, action, method, automated, content_type, country, policy_version = key
    return TransparencyCell(
        period_type=period_type,
        period_start=dt.date.fromisoformat(start),
        category=category,
        action=action,
        detection_method=method,
        automated_decision=automated,
        content_type=content_type,
        country=country,
        item_count=None if suppressed else len(hours),
        suppressed=suppressed,
        median_hours_to_action=None if suppressed else float(statistics.median(hours)),
        policy_version=policy_version,
    )


def _make_cell(keyed, min_cell_count: int) -> TransparencyCell:
    key, hours = keyed
    return make_cell(key, hours, min_cell_count)


class AggregateTransparency(beam.PTransform):
    """Decision -> TransparencyCell per (period, breakdown)."""

    def __init__(self, min_cell_count: int):
        super().__init__()
        self._min_cell_count = min_cell_count

    def expand(self, decisions):
        return (
            decisions
            | "CellKeys" >> beam.FlatMap(cell_keys)
            | "GroupCells" >> beam.GroupByKey()
            | "MakeCells" >> beam.Map(_make_cell, min_cell_count=self._min_cell_count)
        )
