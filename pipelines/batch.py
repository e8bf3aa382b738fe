"""Batch deepfake detection: manifest -> the detection graph (pipelines/graph.py) -> warehouse.

    python -m pipelines.batch --input MANIFEST --warehouse DIR [--model_dir DIR] [--policy FILE]
    python -m pipelines.batch --appeals APPEALS --warehouse DIR        # appeals only, no uploads

Beam's own options (--runner, --direct_num_workers, --direct_running_mode, ...) pass through.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import logging
import posixpath
import secrets
import sys

import apache_beam as beam
from apache_beam.options.pipeline_options import GoogleCloudOptions, PipelineOptions, StandardOptions
from apache_beam.runners.runner import PipelineState

from enforcement.policy import load_policy
from models.registry import SERVED_MODEL_DIR, ModelSet, parse_pinned_versions, resolve_model_set
from pipelines.account import account_stage, write_decided, write_review_queue
from pipelines.automation import gate_automation
from pipelines.graph import Detection, detect
from pipelines.options import DetectionOptions, check_options, load_shadow_policy, review_media_dir
from pipelines.reconcile import format_summary, reconcile, rows_read
from pipelines.sinks import History, LaunchError, Sink, open_warehouse
from transforms.bigquery import BigQueryLocation, BigQuerySource, ReadBigQueryRows, is_bigquery_uri
from transforms.hashbank import HashBank
from transforms.parse import DeduplicateEvents, ParseEvents, ReadManifest, check_manifest

LOCAL_RUNNER = "apache_beam.runners.portability.fn_api_runner.FnApiRunner"


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


def read_rows(p: beam.Pipeline, source: str | BigQuerySource, input_format: str | None, label: str) -> beam.PCollection:
    """The rows of a manifest file or of a BigQuery table or query, as `RawRow`s."""
    if isinstance(source, BigQuerySource):
        return p | label >> ReadBigQueryRows(source)
    return p | label >> ReadManifest(source, input_format)


def read_uploads(p: beam.Pipeline, job: BatchJob) -> tuple[beam.PCollection, list[beam.PCollection]]:
    """The manifest's rows as parsed, de-duplicated upload events, and the rows turned away."""
    rows = read_rows(p, job.input, job.input_format, "ReadManifest")
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
    if job.input:
        uploads, turned_away = read_uploads(p, job)
        detected = detect(uploads, job.detection)
        failures += turned_away + detected.dead_letters
        failures += [
            sink.write("features", detected.features),
            sink.write_training_examples(detected.features),
            sink.write("media_scores", detected.scores),
        ]
        decisions, statements = detected.decisions, [detected.statements]
        events += list(detected.events.values())
        write_review_queue(sink, detected.review_items, job.review_media, job.detection.limits, failures,
                           job.second_opinion_model, job.detection.policy, job.detection.accelerator)  # fmt: skip
        if detected.shadow_decisions is not None:
            failures.append(sink.write("shadow_decisions", detected.shadow_decisions))
    else:
        decisions, statements = p | "NoUploads" >> beam.Create([]), []
    appeal_rows = read_rows(p, job.appeals, None, "ReadAppeals") if job.appeals else None
    review_rows = read_rows(p, job.reviews, None, "ReadReviews") if job.reviews else None
    policy = job.detection.policy
    account = account_stage(p, decisions, appeal_rows, job.history, policy, sink, review_rows=review_rows)
    failures += account.dead_letters
    # An appeals-only run decides nothing new (and no new decision can suspend).
    write_decided(p, sink, decisions, statements, events, account, job.min_cell_count, failures,
                  new_decisions=bool(job.input))  # fmt: skip
    sink.write_dead_letters(failures, p)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.batch",
        description="Score uploads for synthetic media, decide under a policy, write the warehouse.",
        epilog="Beam options such as --runner, --direct_num_workers and --direct_running_mode pass through.",
    )
    DetectionOptions._add_argparse_args(parser)
    return parser


def _source(flag: str, value: str | None, query: str | None, input_format: str | None,
            options: DetectionOptions, parser_error) -> str | BigQuerySource | None:  # fmt: skip
    """A manifest file, or a BigQuery table or query, checked before the job starts."""
    try:
        if query:
            project = options.bigquery_project or BigQueryLocation.parse(options.warehouse).project
            return BigQuerySource.query(query, project, options.bigquery_endpoint)
        if is_bigquery_uri(value):
            return BigQuerySource.table(value, options.bigquery_endpoint)
        if value:
            check_manifest(value, input_format)
        return value
    except ValueError as exc:
        parser_error(f"--{flag}: {exc}")


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


def _sink(options: DetectionOptions, pipeline_options: PipelineOptions, run_id: str) -> Sink:
    pubsub = options.events_sink == "pubsub"
    return open_warehouse(
        options.warehouse,
        run_id,
        bigquery_endpoint=options.bigquery_endpoint,
        write_method=options.bigquery_write_method,
        temp_location=pipeline_options.view_as(GoogleCloudOptions).temp_location,
        statements_dir=options.statements_dir,
        pubsub_project=options.pubsub_project if pubsub else None,
        topic_prefix=options.pubsub_topic_prefix,
    )


def run(argv: list[str] | None = None) -> int:
    """Parses flags, runs the job to completion, prints the reconciliation; returns an exit code."""
    parser = _parser()
    parser.parse_known_args(argv)  # --help and unknown values of our own flags end here
    pipeline_options = PipelineOptions(argv)
    options = pipeline_options.view_as(DetectionOptions)
    check_options(options, parser.error)
    standard = pipeline_options.view_as(StandardOptions)
    # Unless told otherwise, run on the in-process portable runner: DirectRunner would first
    # try to download the Prism runner, which must not happen on an offline machine.
    standard.runner = standard.runner or LOCAL_RUNNER
    if options.accelerator and options.gpu_workers == "all":  # one pool: every worker gets the GPU
        google = pipeline_options.view_as(GoogleCloudOptions)
        google.dataflow_service_options = [*(google.dataflow_service_options or []),
                                           f"worker_accelerator={options.accelerator}"]  # fmt: skip

    uploads = _source("input", options.input, options.input_query, options.input_format, options, parser.error)
    appeals = _source("appeals", options.appeals, options.appeals_query, None, options, parser.error)
    reviews = _source("reviews", options.reviews, None, None, options, parser.error)
    try:
        policy = load_policy(options.policy)
    except (OSError, ValueError) as exc:
        parser.error(f"--policy: {exc}")
    shadow_policy = load_shadow_policy(options, policy, parser.error)
    model_set = ModelSet({})
    if not options.features_only:
        model_dir = options.model_dir or str(SERVED_MODEL_DIR)
        try:
            model_set = resolve_model_set(model_dir, parse_pinned_versions(options.model_versions))
        except (OSError, ValueError) as exc:
            parser.error(f"--model_dir: {exc}")
        if not model_set.models:
            parser.error(f"--model_dir: no model versions found under {model_dir} (--features_only extracts "
                         "features without models)")  # fmt: skip
    hash_bank = None
    if options.hash_bank:
        try:
            hash_bank = HashBank.load(options.hash_bank)
        except (OSError, ValueError) as exc:
            parser.error(f"--hash_bank: {exc}")

    run_id = options.run_id or dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ-") + secrets.token_hex(3)
    try:
        sink = _sink(options, pipeline_options, run_id)
    except ValueError as exc:
        parser.error(f"--warehouse: {exc}")
    truncate = options.write_disposition == "truncate"
    # Appeals refer to decisions of earlier runs (and may repeat appeals already applied): the
    # history is settled before a truncating run clears the tables.
    try:
        history = sink.history(options.strike_ledger, truncate)
    except LaunchError as exc:
        parser.error(str(exc))
    policy = gate_automation(policy, sink, options.warehouse, options.bigquery_endpoint)
    for flag, given in (("--appeals", appeals), ("--reviews", reviews)):
        if given and truncate and sink.has_rows("enforcement_decisions"):
            parser.error(f"{flag} with --write_disposition truncate would drop the decisions they refer to")
    sink.prepare(truncate)

    media_limits = options.media_limits(default_roots=manifest_folder(uploads if isinstance(uploads, str) else None))
    detection = Detection(policy, model_set, media_limits, hash_bank, options.min_batch_size,
                          options.max_batch_size, options.accelerator if options.gpu_workers == "inference" else None,
                          shadow_policy=shadow_policy)  # fmt: skip
    job = BatchJob(
        detection=detection,
        sink=sink,
        input=uploads,
        input_format=options.input_format,
        appeals=appeals,
        reviews=reviews,
        history=history,
        min_cell_count=options.min_cell_count,
        review_media=review_media_dir(options),
        second_opinion_model=options.second_opinion_model,
    )
    with beam.Pipeline(options=pipeline_options) as p:
        build_pipeline(p, job)
    result = p.result
    if result.state != PipelineState.DONE:  # submitted, not waited for (a template launch)
        print(
            f"job {getattr(result, 'job_id', lambda: '')()} is {result.state}: run {run_id} writes {options.warehouse}"
        )
        return 0

    where = sink.finish()
    summary = reconcile(rows_read(result), sink, rows_read(result, "verdict_rows_read"))
    print(format_summary(summary, where, model_set, uploads=bool(uploads)))
    return 0 if summary.balanced else 3


if __name__ == "__main__":
    logging.getLogger().setLevel(logging.WARNING)
    # Multi-process workers relay their start-up notes (options only the launcher parses)
    # through the job service at WARNING; errors still come through.
    logging.getLogger("apache_beam.runners.portability.local_job_service").setLevel(logging.ERROR)
    sys.exit(run())
