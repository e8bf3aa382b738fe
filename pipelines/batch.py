"""Batch deepfake detection: manifest -> the detection graph (pipelines/graph.py) -> warehouse.

    python -m pipelines.batch --input MANIFEST --warehouse DIR [--model_dir DIR] [--policy FILE]
    python -m pipelines.batch --appeals APPEALS --warehouse DIR        # appeals only, no uploads

Launched through `pipelines.launch` (the flags it takes: `--help`); Beam's own options
(--runner, --direct_num_workers, --direct_running_mode, ...) pass through.
"""

from __future__ import annotations

import dataclasses
import posixpath
import sys

import apache_beam as beam
from apache_beam.runners.runner import PipelineState

from pipelines.account import account_stage, write_campaigns, write_decided, write_evasion_links, write_review_queue
from pipelines.graph import Detection, detect, extract
from pipelines.launch import LOCAL_RUNNER, Launch, main, prepare
from pipelines.reconcile import format_summary, reconcile, rows_read
from transforms.parse import DeduplicateEvents, ParseEvents, ReadManifest, check_manifest
from transforms.progress import ReportProgress
from transforms.review import CAMPAIGN_MEMBER_VERDICTS
from warehouse.bigquery import BigQueryLocation, BigQuerySource, ReadBigQueryRows, is_bigquery_uri
from warehouse.sinks import History, Sink

__all__ = ["LOCAL_RUNNER", "BatchJob", "build_pipeline", "run"]


@dataclasses.dataclass(frozen=True)
class BatchJob:
    """One batch run: where uploads and appeals come from, how to decide, where it all goes."""

    detection: Detection
    sink: Sink
    input: str | BigQuerySource | None = None
    input_format: str | None = None
    appeals: str | BigQuerySource | None = None
    reviews: str | BigQuerySource | None = None
    history: History = dataclasses.field(default_factory=History)
    min_cell_count: int = 10
    review_media: str | None = None  # where the review queue's contact sheets go
    second_opinion_model: str | None = None
    # Features for training only (--features_only): no scores, no decisions, nothing enforced or
    # counted in the transparency figures (a curated corpus is not anyone's upload).
    features_only: bool = False


def read_rows(p: beam.Pipeline, source: str | BigQuerySource, input_format: str | None, label: str) -> beam.PCollection:
    """The rows of a manifest file or of a BigQuery table or query, as `RawRow`s."""
    if isinstance(source, BigQuerySource):
        return p | label >> ReadBigQueryRows(source)
    return p | label >> ReadManifest(source, input_format)


def read_uploads(p: beam.Pipeline, job: BatchJob) -> tuple[beam.PCollection, list[beam.PCollection]]:
    """The manifest's rows as parsed, de-duplicated upload events, and the rows turned away."""
    rows = read_rows(p, job.input, job.input_format, "ReadManifest")
    _ = rows | "ProgressRead" >> ReportProgress(job.sink.run_id, "read")
    base_uri = "" if isinstance(job.input, BigQuerySource) else posixpath.dirname(job.input)
    events, invalid = rows | "ParseEvents" >> ParseEvents(base_uri=base_uri)
    events, duplicates = events | "DeduplicateEvents" >> DeduplicateEvents()
    return events, [invalid, duplicates]


def build_pipeline(p: beam.Pipeline, job: BatchJob) -> None:
    """Adds the batch job to `p`: manifest -> `detect` (pipelines/graph.py) -> sink, then the
    account stage. Without an input it is an appeals- or reviews-only run: no uploads, only
    what the appeals and verdicts change, the ledger and the aggregates."""
    sink, failures = job.sink, []
    events: list[beam.PCollection] = []
    if job.features_only:
        build_features_only(p, job)
        return
    if job.input:
        uploads, turned_away = read_uploads(p, job)
        detected = detect(uploads, job.detection)
        _ = detected.scores | "ProgressScored" >> ReportProgress(sink.run_id, "scored")
        failures += turned_away + detected.dead_letters
        failures += [
            sink.write("features", detected.features),
            sink.write_training_examples(detected.features),
            sink.write("media_scores", detected.scores),
        ]
        decisions, statements = detected.decisions, [detected.statements]
        events += list(detected.events.values())
        campaigns = write_campaigns(sink, detected.features, job.detection.policy, failures)
        write_review_queue(sink, detected.review_items, job.review_media, job.detection.limits, failures,
                           job.second_opinion_model, job.detection.policy, job.detection.accelerator,
                           campaigns)  # fmt: skip
        if detected.shadow_decisions is not None:
            failures.append(sink.write("shadow_decisions", detected.shadow_decisions))
        if detected.shadow_scores is not None:
            failures.append(sink.write("shadow_scores", detected.shadow_scores))
        write_evasion_links(sink, detected.scores, failures)
    else:
        decisions, statements, campaigns = p | "NoUploads" >> beam.Create([]), [], None
    appeal_rows = read_rows(p, job.appeals, None, "ReadAppeals") if job.appeals else None
    review_rows = read_rows(p, job.reviews, None, "ReadReviews") if job.reviews else None
    policy = job.detection.policy
    account = account_stage(p, decisions, appeal_rows, job.history, policy, sink, review_rows=review_rows,
                            campaigns=campaigns)  # fmt: skip
    failures += account.dead_letters
    # An appeals-only run decides nothing new (and no new decision can suspend).
    write_decided(p, sink, decisions, statements, events, account, job.min_cell_count, failures,
                  new_decisions=bool(job.input))  # fmt: skip
    dead_letters = sink.write_dead_letters(failures, p)
    _ = dead_letters | "ProgressDeadLettered" >> ReportProgress(sink.run_id, "dead-lettered")


def build_features_only(p: beam.Pipeline, job: BatchJob) -> None:
    """Adds a features-only run to `p`: manifest -> media features (and training examples) and
    the dead letters of the rows that gave none; nothing is scored or decided."""
    sink = job.sink
    uploads, turned_away = read_uploads(p, job)
    features, unextracted = extract(uploads, job.detection)
    _ = features | "ProgressExtracted" >> ReportProgress(sink.run_id, "extracted")
    failures = [*turned_away, *unextracted, sink.write("features", features), sink.write_training_examples(features)]
    dead_letters = sink.write_dead_letters(failures, p)
    _ = dead_letters | "ProgressDeadLettered" >> ReportProgress(sink.run_id, "dead-lettered")


def _source(flag: str, value: str | None, query: str | None, launch: Launch) -> str | BigQuerySource | None:
    """A manifest file, or a BigQuery table or query, checked before the job starts."""
    options = launch.options
    try:
        if query:
            project = options.bigquery_project or BigQueryLocation.parse(options.warehouse).project
            return BigQuerySource.query(query, project, options.bigquery_endpoint)
        if is_bigquery_uri(value):
            return BigQuerySource.table(value, options.bigquery_endpoint)
        if value:
            check_manifest(value, options.input_format if flag == "input" else None)
        return value
    except ValueError as exc:
        launch.error(f"--{flag}: {exc}")


def manifest_folder(pattern: str | None) -> tuple[str, ...]:
    """The local folder a manifest (file or glob) lies in: where its media may be read from
    unless --media_root says otherwise; none for a BigQuery or gs:// source."""
    if not pattern or "://" in pattern:
        return ()
    folder = posixpath.dirname(pattern)
    parts = folder.split("/")
    for index, part in enumerate(parts):
        if any(c in part for c in "*?["):
            folder = "/".join(parts[:index])
            break
    return (folder or ".",)


def run(argv: list[str] | None = None) -> int:
    """Launches the job (`pipelines.launch`), runs it to completion, prints the reconciliation;
    returns an exit code."""
    launch = prepare("batch", argv)
    options, sink = launch.options, launch.sink
    uploads = _source("input", options.input, options.input_query, launch)
    appeals = _source("appeals", options.appeals, options.appeals_query, launch)
    reviews = _source("reviews", options.reviews, None, launch)
    truncate = options.write_disposition == "truncate"
    for flag, given in (("--appeals", appeals), ("--reviews", reviews)):
        if given and truncate and sink.has_rows("enforcement_decisions"):
            launch.error(f"{flag} with --write_disposition truncate would drop the decisions they refer to")
    sink.prepare(truncate)

    job = BatchJob(
        detection=launch.detection(manifest_folder(uploads if isinstance(uploads, str) else None)),
        sink=sink,
        input=uploads,
        input_format=options.input_format,
        appeals=appeals,
        reviews=reviews,
        history=launch.history,
        min_cell_count=options.min_cell_count,
        review_media=launch.review_media,
        second_opinion_model=options.second_opinion_model,
        features_only=options.features_only,
    )
    with beam.Pipeline(options=launch.pipeline_options) as p:
        build_pipeline(p, job)
    result = p.result
    if result.state != PipelineState.DONE:  # submitted, not waited for (a template launch)
        print(f"job {getattr(result, 'job_id', lambda: '')()} is {result.state}: run {launch.run_id} writes "
              f"{options.warehouse}")  # fmt: skip
        return 0

    where = sink.finish()
    summary = reconcile(rows_read(result), sink, rows_read(result, "verdict_rows_read"),
                        rows_read(result, CAMPAIGN_MEMBER_VERDICTS), features_only=options.features_only)  # fmt: skip
    print(format_summary(summary, where, launch.model_set, uploads=bool(uploads)))
    return launch.exit_status(summary)


if __name__ == "__main__":
    sys.exit(main("batch", run))
