"""Batch deepfake detection: manifest -> features -> scores -> decisions -> warehouse.

    python -m pipelines.batch --input MANIFEST --warehouse DIR [--model_dir DIR] [--policy FILE]
    python -m pipelines.batch --appeals APPEALS --warehouse DIR        # appeals only, no uploads

Beam's own options (--runner, --direct_num_workers, --direct_running_mode, ...) pass through.
"""

from __future__ import annotations

import argparse
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
from enforcement.events import suspension_event
from enforcement.policy import Policy, load_policy
from enforcement.strikes import Standing
from models.registry import SERVED_MODEL_DIR, ModelSet, parse_pinned_versions, resolve_model_set
from pipelines.options import DetectionOptions, check_options
from pipelines.reconcile import format_summary, reconcile, rows_read
from transforms.appeals import ApplyAppeals, SkipRecordedAppeals, parse_appeal
from transforms.dead_letter import ParDoOrDeadLetter
from transforms.features import ExtractFeatures
from transforms.fetch import FetchMedia
from transforms.hashbank import HashBank, MatchHashBank
from transforms.inference import ScoreMedia
from transforms.parse import DeduplicateEvents, ParseEvents, ReadManifest, check_manifest
from transforms.policy import ApplyPolicy, FanOutEnforcement
from transforms.statements import BuildStatements, ExportStatements
from transforms.strikes import ReadStrikeLedger, UpdateStrikeLedger
from transforms.transparency import AggregateTransparency
from transforms.warehouse import (
    STATEMENT_BATCH_DIR,
    ReadTableRows,
    WriteTable,
    WriteTrainingExamples,
    clear_tables,
    latest_run_files,
    table_files,
    write_catalog,
)

LOCAL_RUNNER = "apache_beam.runners.portability.fn_api_runner.FnApiRunner"


class _ParseAppealDoFn(beam.DoFn):
    def process(self, row):
        yield parse_appeal(row)


def _suspension_event(status: Standing, policy: Policy):
    return suspension_event(status.account_id, status.active_points, status.as_of, (policy.policy_id, policy.version))


def score_uploads(
    p: beam.Pipeline,
    options: DetectionOptions,
    policy: Policy,
    model_set: ModelSet,
    run_id: str,
    hash_bank: HashBank | None,
) -> tuple[beam.PCollection, list[beam.PCollection]]:
    """Manifest -> features -> scores -> decisions (each table written); returns the decisions
    and every dead-letter output of the way."""
    warehouse, limits = options.warehouse, options.media_limits()
    rows = p | "ReadManifest" >> ReadManifest(options.input, options.input_format)
    events, invalid = rows | "ParseEvents" >> ParseEvents(base_uri=posixpath.dirname(options.input))
    events, duplicates = events | "DeduplicateEvents" >> DeduplicateEvents()
    blobs, unfetched = events | "FetchMedia" >> FetchMedia(limits)
    features, unextracted = blobs | "ExtractFeatures" >> ExtractFeatures(limits)
    if hash_bank is not None:
        features = features | "MatchHashBank" >> MatchHashBank(hash_bank)
    _ = features | "WriteFeatures" >> WriteTable(warehouse, "features", run_id)
    _ = features | "WriteTrainingExamples" >> WriteTrainingExamples(warehouse, run_id)

    scored, unscored = features | "ScoreMedia" >> ScoreMedia(
        model_set.models, options.min_batch_size, options.max_batch_size, fusion=model_set.fusion
    )
    _ = scored | "WriteScores" >> WriteTable(warehouse, "media_scores", run_id)

    decisions = scored | "ApplyPolicy" >> ApplyPolicy(policy)
    _ = decisions | "WriteDecisions" >> WriteTable(warehouse, "enforcement_decisions", run_id)
    return decisions, [invalid, duplicates, unfetched, unextracted, unscored]


def build_pipeline(
    p: beam.Pipeline,
    options: DetectionOptions,
    policy: Policy,
    model_set: ModelSet,
    run_id: str,
    prior_ledger: tuple[str, ...] = (),
    prior_decisions: tuple[str, ...] = (),
    hash_bank: HashBank | None = None,
    prior_appeals: tuple[str, ...] = (),
) -> None:
    """Adds the batch job's graph to `p` (see the picture in DESIGN.md). Without `--input` it
    is an appeals-only run: no uploads, only the appeals' reversals, ledger and aggregates."""
    warehouse = options.warehouse
    if options.input:
        decisions, failures = score_uploads(p, options, policy, model_set, run_id, hash_bank)
    else:
        decisions, failures = p | "NoUploads" >> beam.Create([]), []
    events_by_target = decisions | "FanOutEnforcement" >> FanOutEnforcement(policy)
    account_events, strike_inputs = [], {"decisions": decisions}
    appeal_outcomes = None
    if options.appeals:
        raw_appeals = p | "ReadAppeals" >> ReadManifest(options.appeals)
        parsed_appeals, invalid_appeals = raw_appeals | "ParseAppeals" >> ParDoOrDeadLetter(
            _ParseAppealDoFn(), step="parse_appeals"
        )
        appeals, repeated_appeals = {
            "appeals": parsed_appeals,
            "recorded": p | "ReadAppealHistory" >> ReadTableRows(prior_appeals),
        } | "SkipRecordedAppeals" >> SkipRecordedAppeals()
        history = (
            p | "ReadDecisionHistory" >> ReadTableRows(prior_decisions) | "ToDecisions" >> beam.Map(decision_from_row),
            decisions,
        ) | "AllDecisions" >> beam.Flatten()
        applied = {"appeals": appeals, "decisions": history} | "ApplyAppeals" >> ApplyAppeals()
        appeal_outcomes = applied["outcomes"]
        _ = appeal_outcomes | "WriteAppeals" >> WriteTable(warehouse, "appeals", run_id)
        _ = applied["labels"] | "WriteRetrainingLabels" >> WriteTable(warehouse, "retraining_labels", run_id)
        account_events.append(applied["reversals"])
        failures += [invalid_appeals, repeated_appeals, applied["dead_letters"]]
        strike_inputs["reversals"] = applied["strike_reversals"]
    if policy.strikes is not None:
        strike_inputs["prior"] = p | "ReadStrikeLedger" >> ReadStrikeLedger(prior_ledger)
        ledger, suspensions = strike_inputs | "UpdateStrikes" >> UpdateStrikeLedger(policy.strikes)
        _ = ledger | "WriteStrikeLedger" >> WriteTable(warehouse, "strike_ledger", run_id)
        account_events.append(suspensions | "SuspendAccounts" >> beam.Map(_suspension_event, policy=policy))
    _ = (
        (*events_by_target.values(), *account_events)
        | "MergeTargets" >> beam.Flatten(pipeline=p)
        | "WriteEvents" >> WriteTable(warehouse, "enforcement_events", run_id)
    )
    statements, invalid_statements = decisions | "BuildStatements" >> BuildStatements(policy.categories)
    _ = statements | "WriteStatements" >> WriteTable(warehouse, "statements_of_reasons", run_id)
    _ = statements | "ExportStatements" >> ExportStatements(str(Path(warehouse) / STATEMENT_BATCH_DIR), run_id)
    _ = (
        decisions
        | "AggregateTransparency" >> AggregateTransparency(options.min_cell_count, appeal_outcomes)
        | "WriteAggregates" >> WriteTable(warehouse, "transparency_aggregates", run_id)
    )
    _ = (
        (*failures, invalid_statements)
        | "MergeDeadLetters" >> beam.Flatten(pipeline=p)
        | "WriteDeadLetters" >> WriteTable(warehouse, "dead_letter", run_id)
    )


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

    with beam.Pipeline(options=pipeline_options) as p:
        build_pipeline(p, options, policy, model_set, run_id, prior_ledger, prior_decisions, hash_bank, prior_appeals)
    result = p.result

    catalog = write_catalog(options.warehouse)
    summary = reconcile(rows_read(result), options.warehouse, run_id)
    print(format_summary(summary, catalog, model_set, uploads=bool(options.input)))
    return 0 if summary.balanced else 3


if __name__ == "__main__":
    logging.getLogger().setLevel(logging.WARNING)
    # Multi-process workers relay their start-up notes (options only the launcher parses)
    # through the job service at WARNING; errors still come through.
    logging.getLogger("apache_beam.runners.portability.local_job_service").setLevel(logging.ERROR)
    sys.exit(run())
