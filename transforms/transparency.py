"""Transparency aggregates as a Beam transform: cell keys per decision and appeal, grouped,
made into cells and suppressed per month (`enforcement.transparency` holds the rules).
"""

from __future__ import annotations

import apache_beam as beam

from enforcement.transparency import appeal_cell_keys, cell_keys, complementary_suppression, make_cell, newest_cells
from schemas.records import TransparencyCell
from transforms.dead_letter import FlatMapOrDeadLetter, MapOrDeadLetter


def _make_cell(keyed, min_cell_count: int) -> TransparencyCell:
    key, hours = keyed
    return make_cell(key, hours, min_cell_count)


def _suppression_scope(cell: TransparencyCell) -> tuple[tuple[str, str, str], TransparencyCell]:
    return (cell.measure, cell.policy_version, cell.period_start.replace(day=1).isoformat()), cell


def _suppress_complements(keyed) -> list[TransparencyCell]:
    _, cells = keyed
    return complementary_suppression(newest_cells(cells))


class AggregateTransparency(beam.PTransform):
    """Decision (and optionally AppealOutcome) -> TransparencyCell per (measure, period,
    breakdown). Returns `(cells, dead_letters)`."""

    def __init__(self, min_cell_count: int, appeal_outcomes=None, windowing: beam.WindowInto | None = None):
        super().__init__()
        self._min_cell_count = min_cell_count
        self._appeal_outcomes = appeal_outcomes
        # Streaming: the event-time windows (with their trigger and allowed lateness) the cells
        # are counted in; batch counts the whole input at once.
        self._windowing = windowing

    def expand(self, decisions):
        step = "aggregate_transparency"
        keyed, failures = [], []
        for label, pcoll, to_keys in (
            ("Cell", decisions, cell_keys),
            ("AppealCell", self._appeal_outcomes, appeal_cell_keys),
        ):
            if pcoll is None:
                continue
            keys, unkeyed = pcoll | f"{label}Keys" >> FlatMapOrDeadLetter(to_keys, step)
            keyed.append(keys)
            failures.append(unkeyed)
        keys = keyed | "AllCellKeys" >> beam.Flatten(pipeline=decisions.pipeline)
        if self._windowing is not None:
            keys = keys | "Window" >> self._windowing
        cells, unmade = (
            keys
            | "GroupCells" >> beam.GroupByKey()
            | "MakeCells" >> MapOrDeadLetter(_make_cell, step, min_cell_count=self._min_cell_count)
        )
        published, unsuppressed = (
            cells
            | "ByMonth" >> beam.Map(_suppression_scope)
            | "GroupMonths" >> beam.GroupByKey()
            | "SuppressComplements" >> FlatMapOrDeadLetter(_suppress_complements, step)
        )
        return published, (*failures, unmade, unsuppressed) | "MergeFailures" >> beam.Flatten()
