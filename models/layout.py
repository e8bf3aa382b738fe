"""A feature vector's layout, declared once as a table of named fields (name, width, meaning).

Offsets, the length, one name per slot (for model cards, drift monitoring and retraining)
and the documentation table are derived from the declaration; `pack` assembles a vector from
named runs of fields and raises on any mismatch, so no code indexes a vector by a bare number.
The visual, audio and metadata layouts (`models/*_layout.py`) are tables of this kind.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np


class LayoutError(ValueError):
    """Signals that do not fit their declared layout (a wrong width, a missing run)."""


@dataclasses.dataclass(frozen=True)
class Field:
    name: str
    width: int
    meaning: str


class Layout:
    """The fields of one vector, in order."""

    def __init__(self, name: str, fields: Sequence[Field]):
        self.name, self.fields = name, tuple(fields)
        self.slots: dict[str, slice] = {}
        start = 0
        for field in self.fields:
            if field.name in self.slots:
                raise LayoutError(f"{name}: field {field.name!r} declared twice")
            if field.width < 1:
                raise LayoutError(f"{name}: field {field.name!r} has width {field.width}")
            self.slots[field.name] = slice(start, start + field.width)
            start += field.width
        self.dim = start

    def slot(self, name: str) -> int:
        """The index of a one-wide field."""
        where = self.slots[name]
        if where.stop - where.start != 1:
            raise LayoutError(f"{self.name}: field {name!r} is {where.stop - where.start} wide; use slots")
        return where.start

    def span(self, first: str, last: str) -> slice:
        """The slots from field `first` through field `last`."""
        return slice(self.slots[first].start, self.slots[last].stop)

    def signal_names(self) -> tuple[str, ...]:
        """One name per slot: a field's name, with [k] for each slot of a wider field."""
        return tuple(f.name if f.width == 1 else f"{f.name}[{k}]" for f in self.fields for k in range(f.width))

    def describe(self) -> str:
        """The layout as a table (offsets derived), for documentation and model cards."""
        lines = []
        for field in self.fields:
            where = self.slots[field.name]
            span = f"{where.start}" if field.width == 1 else f"{where.start}-{where.stop - 1}"
            lines.append(f"{span:>7}  {field.name:<26} {field.meaning}")
        return "\n".join(lines)

    def pack(self, runs: Mapping[str, Sequence[float] | np.ndarray]) -> np.ndarray:
        """The vector from runs of fields: each key names the field a run starts at, and the run
        covers it and the fields after it up to the next key's field (the last, to the end).

        Raises:
            LayoutError: a run starts elsewhere than the previous one ended, has the wrong
                number of values, or the runs do not cover the whole vector; or a signal is NaN
                or infinite (a model would score it NaN, and act on nothing).
        """
        starts = sorted(runs, key=lambda name: self.slots[name].start)
        if list(runs) != starts:
            raise LayoutError(f"{self.name}: runs out of order: {list(runs)}")
        parts, expected = [], 0
        for index, name in enumerate(starts):
            start = self.slots[name].start
            if start != expected:
                raise LayoutError(f"{self.name}: run {name!r} starts at {start}, the vector so far ends at {expected}")
            stop = self.slots[starts[index + 1]].start if index + 1 < len(starts) else self.dim
            values = np.asarray(runs[name], dtype=np.float32).ravel()
            if values.size != stop - start:
                raise LayoutError(f"{self.name}: run {name!r} has {values.size} values, the layout {stop - start}")
            parts.append(values)
            expected = stop
        if expected != self.dim:
            raise LayoutError(f"{self.name}: runs cover {expected} of {self.dim} slots")
        vector = np.concatenate(parts).astype(np.float32)
        not_finite = np.flatnonzero(~np.isfinite(vector))
        if not_finite.size:
            names = self.signal_names()
            raise LayoutError(f"{self.name}: signals not finite: {', '.join(names[i] for i in not_finite[:8])}")
        return vector
