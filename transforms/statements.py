"""Statements of reasons as Beam transforms: built and validated per decision
(`enforcement.statements`), exported in API batches of at most 100.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path

import apache_beam as beam

from enforcement.statements import StatementOfReasons, batches, restricts, statement_of_reasons, validate_statement
from schemas.records import Decision
from transforms.dead_letter import ParDoOrDeadLetter


class _StatementDoFn(beam.DoFn):
    def __init__(self, categories: Mapping[str, tuple[str, tuple[str, ...]]]):
        self._categories = dict(categories)

    def process(self, decision: Decision):
        if not restricts(decision):
            return
        dsa_category, keywords = self._categories.get(
            decision.category or "", ("STATEMENT_CATEGORY_OTHER_VIOLATION_TC", ())
        )
        statement = statement_of_reasons(decision, dsa_category, keywords)
        validate_statement(statement)
        yield StatementOfReasons(decision.decision_id, statement)


class BuildStatements(beam.PTransform):
    """Decision -> StatementOfReasons for restrictive decisions, each validated.

    `categories` maps a policy category to (DSA statement category, keywords). Returns
    `(statements, dead_letters)`: a statement that fails validation is dead-lettered, never sent.
    """

    def __init__(self, categories: Mapping[str, tuple[str, tuple[str, ...]]]):
        super().__init__()
        self._categories = categories

    def expand(self, decisions):
        return decisions | ParDoOrDeadLetter(_StatementDoFn(self._categories), step="statements_of_reasons")


def _write_batches(records: list[StatementOfReasons], directory: str, run_id: str) -> list[str]:
    statements = [dict(record.statement) for record in records]
    written = []
    for batch in batches(statements):
        digest = hashlib.sha256("".join(s["puid"] for s in batch).encode()).hexdigest()[:12]
        path = Path(directory) / f"{run_id}-{digest}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"statements": batch}, indent=1, sort_keys=True) + "\n")
        written.append(str(path))
    return written


class ExportStatements(beam.PTransform):
    """Writes validated statements as API request bodies, at most 100 a file.

    Statements are gathered in one place to be cut into batches: they are small (about 1 KB
    each), so even a day of decisions fits a worker.
    """

    def __init__(self, directory: str, run_id: str):
        super().__init__()
        self._directory, self._run_id = directory, run_id

    def expand(self, statements):
        return (
            statements
            | "OneGroup" >> beam.combiners.ToList()
            | "WriteBatches" >> beam.FlatMap(_write_batches, directory=self._directory, run_id=self._run_id)
        )
