"""Disclosure control over a whole set of published figures: no withheld count can be worked out
from the counts and shares that are published beside it.

Every count is the number of items in a set (ids of measures, notices, appeals, reviews), every
share the size of one set over another. Items that belong to exactly the same sets are one atom,
and a published figure is a linear equation on the atoms' sizes: a count says that the sizes of
its atoms add up to its value, a share `s = hits / base` that `hits - s * base = 0`. A withheld
count can be worked out exactly when its own equation is a combination of the published ones,
whatever identity links them (totals and their rows, restrictions and measures, the same
quantity in two parts, a share and its base). Cells are withheld, smallest first, until none
can; a count of zero has no atoms and gives nothing away.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Hashable, Mapping

import numpy as np

_TOLERANCE = 1e-8


@dataclasses.dataclass(frozen=True)
class Figure:
    """A published or withheld figure: a count of `items`, or a share `len(hits) / len(base)`."""

    withheld: bool
    items: frozenset[str] | None = None
    share_of: tuple[frozenset[str], frozenset[str]] | None = None

    @property
    def size(self) -> int:
        return len(self.items) if self.items is not None else len(self.share_of[1])


def _atoms(figures: Mapping[Hashable, Figure]) -> dict[str, int]:
    """Atom index of every item: items in exactly the same sets share one."""
    memberships: dict[str, list[tuple[Hashable, int]]] = defaultdict(list)
    for ref, figure in figures.items():
        sets = [figure.items] if figure.items is not None else list(figure.share_of)
        for role, members in enumerate(sets):
            for item in members:
                memberships[item].append((repr(ref), role))
    signatures: dict[tuple, int] = {}
    return {item: signatures.setdefault(tuple(sorted(m)), len(signatures)) for item, m in memberships.items()}


def _equation(figure: Figure, atoms: Mapping[str, int], width: int) -> np.ndarray:
    """The figure's equation on the atoms' sizes (items of one atom are all in a set or all out)."""
    row = np.zeros(width)
    if figure.items is not None:
        for item in figure.items:
            row[atoms[item]] = 1.0
        return row
    hits, base = figure.share_of
    share = len(hits) / len(base)
    for item in hits | base:
        row[atoms[item]] = (item in hits) - share * (item in base)
    return row


def _solves(equations: np.ndarray, target: np.ndarray) -> np.ndarray | None:
    """Coefficients that combine `equations` (rows) into `target`, or None when none do."""
    if not len(equations):
        return None
    coefficients, *_ = np.linalg.lstsq(equations.T, target, rcond=None)
    return coefficients if np.abs(equations.T @ coefficients - target).max() < _TOLERANCE else None


def recoverable(figures: Mapping[Hashable, Figure]) -> dict[Hashable, np.ndarray]:
    """The withheld counts that the published figures determine, each with the coefficients (one
    per published figure, in `figures` order) that work it out."""
    atoms = _atoms(figures)
    width = max(atoms.values(), default=-1) + 1
    published = [ref for ref, f in figures.items() if not f.withheld]
    equations = np.array([_equation(figures[ref], atoms, width) for ref in published]).reshape(len(published), width)
    found = {}
    for ref, figure in figures.items():
        if figure.withheld and figure.items:
            coefficients = _solves(equations, _equation(figure, atoms, width))
            if coefficients is not None:
                found[ref] = coefficients
    return found


def complementary_suppression(figures: Mapping[Hashable, Figure]) -> list[Hashable]:
    """The published figures to withhold as well, so that no withheld count can be worked out:
    while one can, the smallest published figure its working-out uses is withheld."""
    figures = dict(figures)
    added: list[Hashable] = []
    while found := recoverable(figures):
        published = [ref for ref, f in figures.items() if not f.withheld]
        coefficients = min(found.items(), key=lambda item: repr(item[0]))[1]
        used = [published[i] for i in np.flatnonzero(np.abs(coefficients) > _TOLERANCE)]
        chosen = min(used, key=lambda r: (figures[r].size, repr(r)))
        figures[chosen] = dataclasses.replace(figures[chosen], withheld=True)
        added.append(chosen)
    return added
