"""Transparency aggregates: decisions and appeals counted per period and breakdown, small
cells withheld.

Cells follow the breakdowns the EU DSA reports ask for (category, action, detection method,
automated or not, content type, country) per day and per calendar month. Two measures share
the table:

* `decisions`: decisions that act (label, reduce reach, remove) or refer the item to human
  review, made in the period, with the median hours from upload
  (or from the notice, when someone reported the upload) to the decision;
* `appeals`: appeals decided in the period against earlier decisions, with how many were
  overturned, the overturn rate (for `automated_decision = fully` cells, the accuracy
  indicator of the automated means) and the median hours from decision to appeal outcome.

Each decision (appeal) counts once in each of four breakdowns (`breakdown`), as DSA reports
tabulate each dimension on its own rather than their full product:

* `overall`: category, action, detection method, automated decision;
* `content_type`: content type, action, detection method;
* `country`: country, action;
* `detail`: every dimension at once (small platforms will see most of these suppressed).

Dimensions a breakdown rolls up read `all`. A cell under the minimum count keeps its place in
the table but not its numbers (`suppressed = true`), so no cell can single out a person.
Because cells overlap (each breakdown of an action adds up to the same total, a month's day
cells add up to its month cell), a lone suppressed cell could be recovered by subtraction;
`complementary_suppression` therefore also withholds the smallest shown sibling wherever a
group of siblings would otherwise have exactly one suppressed cell.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import statistics
from collections import defaultdict
from collections.abc import Iterable

from schemas.records import Decision, TransparencyCell

MEASURES = ("decisions", "appeals")
ALL = "all"
# The dimensions each breakdown keeps; the others are rolled up to ALL.
BREAKDOWNS: dict[str, frozenset[str]] = {
    "overall": frozenset({"category", "action", "detection_method", "automated_decision"}),
    "content_type": frozenset({"content_type", "action", "detection_method"}),
    "country": frozenset({"country", "action"}),
    "detail": frozenset({"category", "action", "detection_method", "automated_decision", "content_type", "country"}),
}
# (measure, breakdown, period type, ISO period start, category, action, detection method,
# automated decision, content type, country, policy version): strings only, so the key
# encodes deterministically.
CellKey = tuple[str, str, str, str, str | None, str, str, str, str, str | None, str]


def period_start(moment: dt.datetime, period_type: str) -> dt.date:
    day = moment.astimezone(dt.UTC).date()
    return day if period_type == "day" else day.replace(day=1)


def _keys(measure: str, decision: Decision, moment: dt.datetime) -> Iterable[CellKey]:
    dimensions = {
        "category": decision.category,
        "action": decision.action,
        "detection_method": decision.detection_method,
        "automated_decision": decision.automated_decision,
        "content_type": decision.media_type,
        "country": decision.country,
    }
    for breakdown, kept in BREAKDOWNS.items():
        values = {name: value if name in kept else ALL for name, value in dimensions.items()}
        for period_type in ("day", "month"):
            yield (
                measure,
                breakdown,
                period_type,
                period_start(moment, period_type).isoformat(),
                values["category"],
                values["action"],
                values["detection_method"],
                values["automated_decision"],
                values["content_type"],
                values["country"],
                decision.policy_version,
            )


def hours_between(start: dt.datetime, end: dt.datetime) -> float:
    """Hours from `start` to `end`, never negative (clocks of different systems)."""
    return max((end - start).total_seconds() / 3600.0, 0.0)


def cell_keys(decision: Decision) -> Iterable[tuple[CellKey, tuple[float, bool]]]:
    """The (day and month) cells a restrictive decision counts in, with its hours to action."""
    if decision.action == "none":
        return
    hours = hours_between(decision.action_clock_start, decision.decided_at)
    for key in _keys("decisions", decision, decision.decided_at):
        yield key, (hours, False)


def appeal_cell_keys(outcome) -> Iterable[tuple[CellKey, tuple[float, bool]]]:
    """The cells an appeal outcome (`transforms.appeals.AppealOutcome`) counts in: the period
    the appeal was decided, the appealed decision's breakdown; hours from decision to outcome
    and whether it was overturned."""
    decision, decided = outcome.decision, outcome.appeal.decided_at
    for key in _keys("appeals", decision, decided):
        yield key, (hours_between(decision.decided_at, decided), outcome.overturned)


def newest_cells(cells: Iterable[TransparencyCell]) -> list[TransparencyCell]:
    """One copy per cell, the newest: the streaming job's accumulating panes re-emit a window's
    cells, and a cell's count only grows from pane to pane (a withheld copy counting least)."""
    newest: dict[TransparencyCell, TransparencyCell] = {}
    for cell in cells:
        key = _withheld(cell)
        held = newest.get(key)
        if held is None or (cell.item_count or -1) > (held.item_count or -1):
            newest[key] = cell
    return list(newest.values())


def _withheld(cell: TransparencyCell) -> TransparencyCell:
    return dataclasses.replace(
        cell, item_count=None, suppressed=True, median_hours_to_action=None, overturned_count=None, overturn_rate=None
    )


def make_cell(key: CellKey, values: Iterable[tuple[float, bool]], min_cell_count: int) -> TransparencyCell:
    """One aggregate row from (hours, overturned) pairs; cells under `min_cell_count` withheld."""
    values = list(values)
    hours = [h for h, _ in values]
    (measure, breakdown, period_type, start, category, action, method, automated, content_type, country,
     policy_version) = key  # fmt: skip
    overturned = sum(1 for _, o in values if o) if measure == "appeals" else None
    cell = TransparencyCell(
        measure=measure,
        breakdown=breakdown,
        period_type=period_type,
        period_start=dt.date.fromisoformat(start),
        category=category,
        action=action,
        detection_method=method,
        automated_decision=automated,
        content_type=content_type,
        country=country,
        item_count=len(values),
        suppressed=False,
        median_hours_to_action=float(statistics.median(hours)),
        overturned_count=overturned,
        overturn_rate=None if overturned is None else overturned / len(values),
        policy_version=policy_version,
    )
    return _withheld(cell) if len(values) < min_cell_count else cell


def _dimensions(cell: TransparencyCell) -> tuple:
    return (cell.category, cell.detection_method, cell.automated_decision, cell.content_type, cell.country)


def _sibling_groups(cell: TransparencyCell) -> list[tuple]:
    """Groups of cells whose counts add up to a figure a reader can learn from other cells:
    one breakdown's cells of an action in a period (they partition the action's total), and a
    month's day cells of the same breakdown and dimensions (they add up to the month cell)."""
    groups = [("partition", cell.period_type, cell.period_start, cell.breakdown, cell.action)]
    if cell.period_type == "day":
        groups.append(("days", cell.period_start.replace(day=1), cell.breakdown, cell.action, _dimensions(cell)))
    return groups


def complementary_suppression(cells: Iterable[TransparencyCell]) -> list[TransparencyCell]:
    """Withholds the smallest shown sibling wherever a sibling group has exactly one suppressed
    cell, until no group does (cells of one measure, policy version and calendar month)."""
    cells = list(cells)
    changed = True
    while changed:
        changed = False
        members: dict[tuple, list[int]] = defaultdict(list)
        for index, cell in enumerate(cells):
            for group in _sibling_groups(cell):
                members[group].append(index)
        for indices in members.values():
            hidden = [i for i in indices if cells[i].suppressed]
            shown = [i for i in indices if not cells[i].suppressed]
            if len(hidden) == 1 and shown:
                smallest = min(shown, key=lambda i: (cells[i].item_count, repr(_dimensions(cells[i])),
                                                     cells[i].period_type, cells[i].period_start))  # fmt: skip
                cells[smallest] = _withheld(cells[smallest])
                changed = True
    return cells
