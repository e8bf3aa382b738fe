"""Batch deepfake detection: manifest -> the detection graph (pipelines/graph.py) -> warehouse.

    python -m pipelines.batch --input MANIFEST --warehouse DIR [--model_dir DIR] [--policy FILE]
    python -m pipelines.batch --appeals APPEALS --warehouse DIR        # appeals only, no uploads

Beam's own options (--runner, --direct_num_workers, --direct_running_mode, ...) pass through.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import glob
import logging
import posixpath
import secrets
import sys
from pathlib import Path

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from enforcement.appeals import decision_from_row
from enforcement.events import enforcement_events
from enforcement.policy import load_policy
from enforcement.strikes import suspension_decision
from models.registry import SERVED_MODEL_DIR, ModelSet, parse_pinned_versions, resolve_model_set
from pipelines.graph import Detection, detect
from pipelines.options import DetectionOptions, check_options
from pipelines.reconcile import format_summary, reconcile, rows_read
from pipelines.sinks import EmbeddedWarehouse, Sink
from transforms.appeals import ApplyAppeals, SkipRecordedAppeals, parse_appeal
from transforms.dead_letter import FlatMapOrDeadLetter, MapOrDeadLetter
from transforms.hashbank import HashBank
from transforms.parse import DeduplicateEvents, ParseEvents, ReadManifest, check_manifest
from transforms.statements import BuildStatements
from transforms.strikes import ReadStrikeLedger, UpdateStrikeLedger
from transforms.transparency import AggregateTransparency
from transforms.warehouse import ReadTableRows, clear_tables, latest_run_files, table_files

LOCAL_RUNNER = "apache_beam.runners.portability.fn_api_runner.FnApiRunner"


@dataclasses.dataclass(frozen=True)
class History:
    """What the batch job's account stage starts from: files of earlier runs, resolved at
    launch (before a truncating run clears them)."""

    ledger: tuple[str, ...] = ()
    decisions: tuple[str, ...] = ()
    appeals: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class BatchJob:
    """One batch run: where uploads and appeals come from, how to decide, where it all goes."""

    detection: Detection
    sink: Sink
    input: str | None = None
    input_format: str | None = None
    appeals: str | None = None
    history: History = History()
    min_cell_count: int = 10


def read_uploads(p: beam.Pipeline, job: BatchJob) -> tuple[beam.PCollection, list[beam.PCollection]]:
    """The manifest's rows as parsed, de-duplicated upload events, and the rows turned away."""
    rows = p | "ReadManifest" >> ReadManifest(job.input, job.input_format)
    events, invalid = rows | "ParseEvents" >> ParseEvents(base_uri=posixpath.dirname(job.input))
    events, duplicates = events | "DeduplicateEvents" >> DeduplicateEvents()
    return events, [invalid, duplicates]


@dataclasses.dataclass(frozen=True)
class AccountOutputs:
    decisions: beam.PCollection | None  # account suspensions, decisions of their own
    events: list[beam.PCollection]  # reversals
    appeal_outcomes: beam.PCollection | None
    dead_letters: list[beam.PCollection]


def account_stage(p: beam.Pipeline, decisions: beam.PCollection, job: BatchJob) -> AccountOutputs:
    """Appeals and strikes, batch-only: they start from the warehouse's earlier decisions,
    appeals and strike ledger (`job.history`)."""
    policy, sink = job.detection.policy, job.sink
    events, failures, strike_inputs, outcomes, suspended = [], [], {"decisions": decisions}, None, None
    if job.appeals:
        raw_appeals = p | "ReadAppeals" >> ReadManifest(job.appeals)
        parsed, invalid = raw_appeals | "ParseAppeals" >> MapOrDeadLetter(parse_appeal, "parse_appeals")
        appeals, repeated = {
            "appeals": parsed,
            "recorded": p | "ReadAppealHistory" >> ReadTableRows(job.history.appeals),
        } | "SkipRecordedAppeals" >> SkipRecordedAppeals()
        earlier, unreadable = (
            p
            | "ReadDecisionHistory" >> ReadTableRows(job.history.decisions)
            | "ToDecisions" >> MapOrDeadLetter(decision_from_row, "read_decision_history")
        )
        history = (earlier, decisions) | "DecisionHistory" >> beam.Flatten()
        applied = {"appeals": appeals, "decisions": history} | "ApplyAppeals" >> ApplyAppeals()
        outcomes = applied["outcomes"]
        failures += [invalid, repeated, unreadable, applied["dead_letters"]]
        failures += [sink.write("appeals", outcomes), sink.write("retraining_labels", applied["labels"])]
        events.append(applied["reversals"])
        strike_inputs["reversals"] = applied["strike_reversals"]
    if policy.strikes is not None:
        strike_inputs["prior"] = p | "ReadStrikeLedger" >> ReadStrikeLedger(job.history.ledger)
        ledger, suspensions, unupdated = strike_inputs | "UpdateStrikes" >> UpdateStrikeLedger(policy.strikes)
        failures += [unupdated, sink.write("strike_ledger", ledger)]
        suspended, undecided = suspensions | "SuspendAccounts" >> MapOrDeadLetter(
            suspension_decision, "suspend_account", policy=policy
        )
        failures.append(undecided)
    return AccountOutputs(suspended, events, outcomes, failures)


def build_pipeline(p: beam.Pipeline, job: BatchJob) -> None:
    """Adds the batch job to `p`: manifest -> `detect` (pipelines/graph.py) -> sink, then the
    account stage. Without an input it is an appeals-only run: no uploads, only the appeals'
    reversals, ledger and aggregates."""
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
    else:
        decisions, statements = p | "NoUploads" >> beam.Create([]), []
    account = account_stage(p, decisions, job)
    failures += account.dead_letters
    all_decisions = [decisions]
    if account.decisions is not None:  # suspensions: decisions with their events and statements
        all_decisions.append(account.decisions)
        suspension_events, unrouted = account.decisions | "SuspensionEvents" >> FlatMapOrDeadLetter(
            enforcement_events, "fan_out_enforcement"
        )
        events.append(suspension_events)
        failures.append(unrouted)
        account_statements, unstated = account.decisions | "AccountStatements" >> BuildStatements(
            job.detection.policy.categories
        )
        statements.append(account_statements)
        failures.append(unstated)
    decisions = tuple(all_decisions) | "ContentAndAccountDecisions" >> beam.Flatten(pipeline=p)
    statements = tuple(statements) | "AllStatements" >> beam.Flatten(pipeline=p)
    if job.input:  # an appeals-only run decides nothing new (and no new decision can suspend)
        failures.append(sink.write("enforcement_decisions", decisions))
        failures.append(sink.write("statements_of_reasons", statements))
        sink.export_statements(statements)
    failures.append(sink.publish_events(events + account.events, p))
    cells, unaggregated = decisions | "AggregateTransparency" >> AggregateTransparency(
        job.min_cell_count, account.appeal_outcomes
    )
    failures += [unaggregated, sink.write("transparency_aggregates", cells)]
    dead_letters = tuple(f for f in failures if f is not None) | "MergeDeadLetters" >> beam.Flatten(pipeline=p)
    sink.write("dead_letter", dead_letters)


def _prior_ledger(options: DetectionOptions, parser_error) -> tuple[str, ...]:
    """The ledger files this run starts from (resolved before a truncating run clears them)."""
    if options.strike_ledger:
        files = tuple(sorted(glob.glob(options.strike_ledger)))
        if not files:
            parser_error(f"--strike_ledger: no files match {options.strike_ledger}")
        inside = Path(options.warehouse).resolve() in Path(files[0]).resolve().parents
        if inside and options.write_disposition == "truncate":
            parser_error("--strike_ledger lies in --warehouse, which --write_disposition truncate would empty")
        return files
    if options.write_disposition == "truncate":
        return ()
    return tuple(latest_run_files(options.warehouse, "strike_ledger"))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.batch",
        description="Score uploads for synthetic media, decide under a policy, write the warehouse.",
        epilog="Beam options such as --runner, --direct_num_workers and --direct_running_mode pass through.",
    )
    DetectionOptions._add_argparse_args(parser)
    return parser


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

    for flag, pattern, input_format in (
        ("input", options.input, options.input_format),
        ("appeals", options.appeals, None),
    ):
        try:
            if pattern:
                check_manifest(pattern, input_format)
        except ValueError as exc:
            parser.error(f"--{flag}: {exc}")
    try:
        policy = load_policy(options.policy)
    except (OSError, ValueError) as exc:
        parser.error(f"--policy: {exc}")
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

    prior_ledger = _prior_ledger(options, parser.error)
    hash_bank = None
    if options.hash_bank:
        try:
            hash_bank = HashBank.load(options.hash_bank)
        except (OSError, ValueError) as exc:
            parser.error(f"--hash_bank: {exc}")
    # Appeals refer to decisions of earlier runs (and may repeat appeals already applied): read
    # both tables' files before a truncating run clears them.
    prior_decisions, prior_appeals = (table_files(options.warehouse, t) for t in ("enforcement_decisions", "appeals"))
    if options.appeals and options.write_disposition == "truncate" and prior_decisions:
        parser.error("--appeals with --write_disposition truncate would drop the decisions the appeals refer to")
    run_id = options.run_id or dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ-") + secrets.token_hex(3)
    if options.write_disposition == "truncate":
        clear_tables(options.warehouse)

    detection = Detection(policy, model_set, options.media_limits(), hash_bank, options.min_batch_size,
                          options.max_batch_size, options.inference_accelerator)  # fmt: skip
    job = BatchJob(
        detection=detection,
        sink=EmbeddedWarehouse(
            options.warehouse,
            run_id,
            pubsub_project=options.pubsub_project if options.events_sink == "pubsub" else None,
            topic_prefix=options.pubsub_topic_prefix,
        ),
        input=options.input,
        input_format=options.input_format,
        appeals=options.appeals,
        history=History(prior_ledger, prior_decisions, prior_appeals),
        min_cell_count=options.min_cell_count,
    )
    with beam.Pipeline(options=pipeline_options) as p:
        build_pipeline(p, job)
    result = p.result

    catalog = Path(job.sink.finish())
    summary = reconcile(rows_read(result), options.warehouse, run_id)
    print(format_summary(summary, catalog, model_set, uploads=bool(options.input)))
    return 0 if summary.balanced else 3


if __name__ == "__main__":
    logging.getLogger().setLevel(logging.WARNING)
    # Multi-process workers relay their start-up notes (options only the launcher parses)
    # through the job service at WARNING; errors still come through.
    logging.getLogger("apache_beam.runners.portability.local_job_service").setLevel(logging.ERROR)
    sys.exit(run())
