"""Where a job's outputs go, behind one interface.

A sink adds write steps to a pipeline: `write(table, records)` for every warehouse table,
`write_training_examples` for the retraining features, `export_statements` for the statements
of reasons in the Transparency Database's API batches, `publish_events` for the enforcement
events of each downstream target; each returns the dead letters of the records it could not
write (a row that breaks its table's schema), so nothing is dropped. `finish()` runs after the
pipeline (the embedded warehouse writes its DuckDB catalog there).

`EmbeddedWarehouse` is the default: Parquet per table and a DuckDB catalog, no cloud needed.
A BigQuery sink (tables) with Pub/Sub topics (events) implements the same methods.
"""

from __future__ import annotations

import abc
from pathlib import Path

import apache_beam as beam

from transforms.pubsub import PublishEvents
from transforms.statements import ExportStatements
from transforms.warehouse import STATEMENT_BATCH_DIR, WriteTable, WriteTrainingExamples, write_catalog


class Sink(abc.ABC):
    """The write side of a job run."""

    @abc.abstractmethod
    def write(self, table: str, records: beam.PCollection) -> beam.PCollection | None:
        """Writes records (each with `to_row()`) to `table`; returns the dead letters."""

    @abc.abstractmethod
    def write_training_examples(self, features: beam.PCollection) -> beam.PCollection | None:
        """Writes MediaFeatures in the models' input layout; returns the dead letters."""

    @abc.abstractmethod
    def export_statements(self, statements: beam.PCollection) -> None:
        """Hands validated statements of reasons to the Transparency Database's submission."""

    @abc.abstractmethod
    def publish_events(self, events: list[beam.PCollection], pipeline: beam.Pipeline) -> beam.PCollection | None:
        """Sends enforcement events (each naming its `target`) where that target listens;
        returns the dead letters."""

    def finish(self) -> str:
        """After the pipeline ran: what a reader opens to query the output."""
        return ""


class EmbeddedWarehouse(Sink):
    """Parquet files per table under `directory` (one file set per run) and a DuckDB catalog.

    Every target's events land in the one `enforcement_events` table (`target` names it) and,
    with `pubsub_project`, are also published to one Pub/Sub topic per target
    (`transforms.pubsub`), where the downstream systems subscribe.
    """

    def __init__(self, directory: str, run_id: str, pubsub_project: str | None = None, topic_prefix: str = ""):
        self.directory, self.run_id = directory, run_id
        self.pubsub_project, self.topic_prefix = pubsub_project, topic_prefix

    def write(self, table, records):
        return records | f"Write_{table}" >> WriteTable(self.directory, table, self.run_id)

    def write_training_examples(self, features):
        return features | "WriteTrainingExamples" >> WriteTrainingExamples(self.directory, self.run_id)

    def export_statements(self, statements):
        directory = str(Path(self.directory) / STATEMENT_BATCH_DIR)
        _ = statements | "ExportStatements" >> ExportStatements(directory, self.run_id)

    def publish_events(self, events, pipeline):
        merged = tuple(events) | "MergeTargets" >> beam.Flatten(pipeline=pipeline)
        unwritten = self.write("enforcement_events", merged)
        if self.pubsub_project is None:
            return unwritten
        _, unpublished = merged | "PublishEvents" >> PublishEvents(self.pubsub_project, self.topic_prefix)
        return (unwritten, unpublished) | "EventFailures" >> beam.Flatten()

    def finish(self) -> str:
        return str(write_catalog(self.directory))
