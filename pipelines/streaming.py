"""Streaming deepfake detection: Pub/Sub upload events -> the detection graph -> warehouse.

    python -m pipelines.streaming --subscription projects/P/subscriptions/S --warehouse DIR|bq://P.D
        --media_root DIR [--model_dir DIR] [--policy FILE] [--stop_after_idle_s 30] [--max_run_s 600]

The same `detect` (pipelines/graph.py) as the batch job, with a streaming source in front and
the streaming forms of the stages that cannot run unbounded as the batch ones do:

* de-duplication: the first event of a content id wins, in keyed state with an expiry timer
  (`DeduplicateEvents(streaming=True)`); a redelivered or re-sent event is skipped and counted;
* strikes: each account's ledger in keyed state, seeded from the warehouse's current ledger at
  start, with event-time timers at expiry (`TrackStrikesInState`); a strike that crosses the
  threshold suspends the account, as in batch;
* transparency cells: hourly event-time windows, fired at the watermark and again for each
  late decision within `--allowed_lateness_s` (accumulating panes: a late firing re-emits the
  window's cells whole, the newest pane standing). The published figures come from
  `pipelines.transparency`, which recounts every decision once, so no pane is ever summed;
* model refresh: every `--model_refresh_s` each worker's RunInference serves the newest version
  in the model directory (`models.handlers`), and each score names the version that produced it.

Every message passes the door first (`transforms.messages`: size, time attribute, delivery
attempts; each delivery recorded in `message_deliveries`); event time is the parsed upload
time. Rows go to the same tables as batch: BigQuery streaming inserts, or a Parquet file per
bundle in the embedded warehouse. A stop signal drains; a crash replays from the last clean
stop (`pipelines.intake`); the summary balances the subscription's history, saying LOST when
a message has no outcome anywhere.

Locally it runs on Beam's DirectRunner in streaming mode against the Pub/Sub emulator
(PUBSUB_EMULATOR_HOST); on Dataflow with `--runner DataflowRunner --streaming`.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import functools
import logging
import os
import re
import secrets
import signal
import sys
import threading
import time

import apache_beam as beam
import duckdb
from apache_beam.metrics import Metrics
from apache_beam.options.pipeline_options import GoogleCloudOptions, PipelineOptions, StandardOptions
from apache_beam.runners.runner import PipelineState
from apache_beam.transforms import trigger, window

from enforcement.policy import load_policy
from models.registry import SERVED_MODEL_DIR, parse_pinned_versions, resolve_model_set
from pipelines.account import account_stage, write_decided, write_review_queue
from pipelines.automation import gate_automation
from pipelines.graph import Detection, detect
from pipelines.intake import PULL_TIMEOUT_S, PULLING, advance, install_local_reader, resume
from pipelines.options import DetectionOptions, load_shadow_policy, review_media_dir
from pipelines.reconcile import (
    format_summary,
    reconcile,
    rows_read,
    stage_of,
    subscription_account,
    unfinished_deliveries,
)
from pipelines.sinks import BigQueryWarehouse, History, LaunchError, Sink, open_warehouse
from schemas.vocabulary import SUSPEND_ACTION
from transforms.dead_letter import DEAD, dead_letter_for
from transforms.hashbank import HashBank
from transforms.health import ExportHealthMetrics
from transforms.inference import JOIN_TIMEOUT_S
from transforms.messages import DEFAULT_MAX_ATTEMPTS, DEFAULT_MAX_MESSAGE_BYTES, ReadMessages, at_event_time
from transforms.parse import DeduplicateEvents, ParseEvents

STREAMING_RUNNER = "DirectRunner"
EVENT_TIME_ATTRIBUTE = "uploaded_at"
APPEAL_TIME_ATTRIBUTE = "decided_at"
CELL_WINDOW_S = 3600
SUBSCRIPTION_PATH = re.compile(r"^projects/[a-z][a-z0-9-]{2,62}/subscriptions/[A-Za-z][A-Za-z0-9._~+%-]{2,254}$")
# What a clean stop waits on: the run's writes to these stop changing.
DRAINED_TABLES = ("message_deliveries", "media_scores", "dead_letter", "enforcement_decisions", "enforcement_events",
                  "statements_of_reasons", "decision_log", "strike_ledger", "appeals", "reviews")  # fmt: skip
DRAIN_TIMEOUT_S, DRAIN_POLL_S = 180.0, 5.0
LATENCY = Metrics.distribution("streaming", "upload_to_decision_ms")


class StreamingOptions(DetectionOptions):
    """`python -m pipelines.streaming`'s own flags, next to the batch job's."""

    @classmethod
    def _add_argparse_args(cls, parser):
        stream = parser.add_argument_group("streaming")
        stream.add_argument("--subscription", help="Upload events: projects/P/subscriptions/S.")
        stream.add_argument(
            "--appeals_subscription",
            default=None,
            help="Appeal outcomes (JSON: decision_id, outcome, decided_at; the decided_at attribute is the event time).",
        )
        stream.add_argument(
            "--reviews_subscription",
            default=None,
            help="Reviewers' verdicts (JSON, as --reviews takes; the decided_at attribute is the event time).",
        )
        stream.add_argument(
            "--allowed_lateness_s",
            type=int,
            default=6 * 3600,
            help="How late (event time) a decision may arrive and still update its window's cells "
            "(default %(default)s).",
        )
        stream.add_argument("--max_run_s", type=float, default=None, help="Stop after this long (local runs).")
        stream.add_argument(
            "--expected_rows",
            type=int,
            default=None,
            help="Stop once this many upload rows are accounted for (scored, dead-lettered or skipped), and "
            "balance the reconciliation against it: what a local run knows it published.",
        )
        stream.add_argument(
            "--expected_appeals",
            type=int,
            default=None,
            help="Stop once this many appeals are accounted for (applied, dead-lettered or skipped).",
        )
        stream.add_argument(
            "--model_refresh_s",
            type=float,
            default=60.0,
            help="Every this many seconds each worker looks in --model_dir for a newer version of each model it "
            "serves and serves it from the next batch on; every score names the version that produced it. "
            "Versions pinned with --model_versions never change; 0 turns refresh off (default %(default)s).",
        )
        stream.add_argument(
            "--max_message_bytes",
            type=int,
            default=DEFAULT_MAX_MESSAGE_BYTES,
            help="A message body over this is dead-lettered message_too_large, never parsed (default %(default)s).",
        )
        stream.add_argument(
            "--max_delivery_attempts",
            type=int,
            default=DEFAULT_MAX_ATTEMPTS,
            help="A message delivered this many times without an outcome (the job stopped with it in flight each "
            "time) is dead-lettered delivery_attempts_exceeded on the next (default %(default)s).",
        )
        stream.add_argument(
            "--stop_after_idle_s",
            type=float,
            default=None,
            help="Stop once no upload event has arrived for this long (local runs).",
        )


@dataclasses.dataclass(frozen=True)
class StreamingJob:
    detection: Detection
    sink: Sink
    subscription: str
    history: History  # the warehouse at start: ledger, decisions and appeals of earlier runs
    appeals_subscription: str | None = None
    min_cell_count: int = 10
    allowed_lateness_s: int = 6 * 3600
    reviews_subscription: str | None = None
    review_media: str | None = None  # where the review queue's contact sheets go
    second_opinion_model: str | None = None
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    max_delivery_attempts: int = DEFAULT_MAX_ATTEMPTS
    attempts_before: dict = dataclasses.field(default_factory=dict)  # upload messages due a replay


def measure_latency(decision):
    """Upload to decision, in milliseconds, as a distribution metric."""
    LATENCY.update(int((decision.decided_at - decision.uploaded_at).total_seconds() * 1000))
    return decision


class EventTooLate(ValueError):
    """An upload older than the allowed lateness: the batch job is for backfills."""

    reason = "later_than_allowed_lateness"


class _AdmitInTime(beam.DoFn):
    """Dead-letters an element older (event time) than now minus the allowed lateness. The
    watermark never runs ahead of the wall clock, so what passes here is never late for the
    windows and timers downstream: nothing is dropped by the runner without a trace."""

    def __init__(self, allowed_lateness_s: int, step: str):
        self._allowed_lateness_s, self._step = allowed_lateness_s, step

    def process(self, element, timestamp=beam.DoFn.TimestampParam):
        if timestamp.micros / 1e6 < time.time() - self._allowed_lateness_s:
            late = EventTooLate(f"event time {timestamp.to_rfc3339()} is more than {self._allowed_lateness_s} s "
                                "before now; apply it with the batch job")  # fmt: skip
            yield beam.pvalue.TaggedOutput(DEAD, dead_letter_for(element, late, self._step))
            return
        yield element


def admit_in_time(elements: beam.PCollection, allowed_lateness_s: int, step: str):
    """(elements within the allowed lateness, dead letters of the others at `step`)."""
    label = "".join(part.capitalize() for part in step.split("_"))
    admitted = elements | label >> beam.ParDo(_AdmitInTime(allowed_lateness_s, step)).with_outputs(
        DEAD, main="admitted"
    )
    return admitted.admitted, admitted[DEAD]


def read_uploads(p: beam.Pipeline, job: StreamingJob):
    """Pub/Sub messages -> parsed, admitted, de-duplicated upload events, and the rows turned
    away; every delivery recorded in `message_deliveries`."""
    rows, deliveries, refused = p | "ReadUploads" >> ReadMessages(
        job.subscription, "read_events", EVENT_TIME_ATTRIBUTE, job.max_message_bytes, job.attempts_before,
        job.max_delivery_attempts,
    )  # fmt: skip
    unrecorded = job.sink.write("message_deliveries", deliveries)
    events, invalid = rows | "ParseEvents" >> ParseEvents(base_uri=None)
    events = events | "AtUploadTime" >> beam.Map(at_event_time, "uploaded_at")
    return admit(events, job.allowed_lateness_s, [refused, unrecorded, invalid])


def admit_decided(elements: beam.PCollection, step: str, allowed_lateness_s: int):
    """Parsed appeal outcomes or verdicts at their `decided_at`, split as `admit_in_time` does."""
    label = "".join(part.capitalize() for part in step.split("_"))
    timed = elements | f"AtDecisionTime{label}" >> beam.Map(at_event_time, "decided_at")
    return admit_in_time(timed, allowed_lateness_s, step)


def admit(events: beam.PCollection, allowed_lateness_s: int, failures: list):
    """Events in time, each content id once (the source-independent front of the streaming job)."""
    events, too_late = admit_in_time(events, allowed_lateness_s, "admit_events")
    events, duplicates = events | "DeduplicateEvents" >> DeduplicateEvents(streaming=True)
    return events, [*failures, too_late, duplicates]


def cell_windowing(allowed_lateness_s: int) -> beam.WindowInto:
    return beam.WindowInto(
        window.FixedWindows(CELL_WINDOW_S),
        trigger=trigger.AfterWatermark(late=trigger.AfterCount(1)),
        accumulation_mode=trigger.AccumulationMode.ACCUMULATING,
        allowed_lateness=allowed_lateness_s,
    )


def add_streaming_job(events: beam.PCollection, job: StreamingJob, failures: list) -> beam.PCollection:
    """`detect` plus the streaming account stage and the sinks, on parsed upload events;
    returns the scores."""
    p, sink, policy = events.pipeline, job.sink, job.detection.policy
    detected = detect(events, job.detection)
    failures += detected.dead_letters
    failures += [sink.write("features", detected.features), sink.write("media_scores", detected.scores)]
    decisions = detected.decisions | "MeasureLatency" >> beam.Map(measure_latency)
    statements, events_out = [detected.statements], list(detected.events.values())
    appeal_rows = read_decided_rows(p, job, job.appeals_subscription, "Appeals", failures)
    review_rows = read_decided_rows(p, job, job.reviews_subscription, "Verdicts", failures)
    account = account_stage(p, decisions, appeal_rows, job.history, policy, sink, streaming=True,
                            admit=functools.partial(admit_decided, allowed_lateness_s=job.allowed_lateness_s),
                            review_rows=review_rows)  # fmt: skip
    failures += account.dead_letters
    # Statements go to the table; the Transparency Database export gathers a whole run's.
    write_decided(p, sink, decisions, statements, events_out, account, job.min_cell_count, failures,
                  export_statements=False, windowing=cell_windowing(job.allowed_lateness_s))  # fmt: skip
    write_review_queue(sink, detected.review_items, job.review_media, job.detection.limits, failures,
                       job.second_opinion_model, policy, job.detection.accelerator)  # fmt: skip
    if detected.shadow_decisions is not None:
        failures.append(sink.write("shadow_decisions", detected.shadow_decisions))
    return detected.scores


def read_decided_rows(p: beam.Pipeline, job: StreamingJob, subscription: str | None, what: str,
                      failures: list) -> beam.PCollection | None:  # fmt: skip
    """Appeal outcomes or verdicts from a subscription, through the door, as input rows (timed
    by their `decided_at` once parsed); the door's dead letters join `failures`."""
    if not subscription:
        return None
    rows, _, refused = p | f"Read{what}" >> ReadMessages(
        subscription, f"read_{what.lower()}", APPEAL_TIME_ATTRIBUTE, job.max_message_bytes
    )
    failures.append(refused)
    return rows


def build_pipeline(p: beam.Pipeline, job: StreamingJob) -> None:
    events, failures = read_uploads(p, job)
    scores = add_streaming_job(events, job, failures)
    dead_letters = job.sink.write_dead_letters(failures, p)
    {"scores": scores, "dead_letters": dead_letters} | "SignalHealthMetrics" >> ExportHealthMetrics()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.streaming",
        description="Score uploads from Pub/Sub as they arrive, decide under a policy, write the warehouse.",
        epilog="Beam options such as --runner pass through.",
    )
    StreamingOptions._add_argparse_args(parser)
    return parser


def latency_percentiles(sink: Sink, quantiles: tuple[int, ...] = (50, 95, 99)) -> dict[int, float]:
    """p50/p95/p99 of upload-to-decision seconds over this run's content decisions, from the
    rows (`decided_at - uploaded_at`; suspensions, decided at their event time, left out)."""
    seconds = (
        "TIMESTAMP_DIFF(decided_at, uploaded_at, MILLISECOND)"
        if isinstance(sink, BigQueryWarehouse)
        else "date_diff('millisecond', uploaded_at, decided_at)"
    )
    rows = sink.run_counts("enforcement_decisions", f"action, {seconds}")
    values = sorted(ms / 1000 for action, ms, n in rows if action != SUSPEND_ACTION for _ in range(n))
    if not values:
        return {}
    return {q: values[min(len(values) - 1, round(q / 100 * (len(values) - 1)))] for q in quantiles}


def appeals_accounted(sink: Sink) -> int:
    """Appeals this run applied, dead-lettered or skipped."""
    applied = sum(n for *_, n in sink.run_counts("appeals", "outcome"))
    turned_away = sum(n for _, step, n in sink.run_counts("dead_letter", "disposition, step")
                      if stage_of(step) == "appeals")  # fmt: skip
    return applied + turned_away


def _written(sink: Sink) -> tuple:
    """What this run has written so far, table by table: settled when it stops changing."""
    return tuple(sum(n for *_, n in sink.run_counts(table, "run_id")) for table in DRAINED_TABLES)


class StopRequest:
    """SIGINT or SIGTERM: the first asks for a clean stop (stop pulling, write what is in
    flight, then stop); a second exits at once."""

    def __init__(self):
        self.signal: str | None = None

    def __call__(self, signum, frame) -> None:
        if self.signal is not None:
            os._exit(128 + signum)
        self.signal = signal.Signals(signum).name
        print(f"{self.signal}: stopping cleanly (pulling stopped; in-flight uploads are being written; "
              "signal again to exit at once)", file=sys.stderr, flush=True)  # fmt: skip

    def install(self) -> None:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                signal.signal(signum, self)


def wait(result, sink: Sink, subscription: str, stop: StopRequest, max_run_s: float | None,
         stop_after_idle_s: float | None, expected: tuple[int | None, int | None]) -> str:  # fmt: skip
    """Waits until the job ends, a stop signal comes, `max_run_s` passes, every expected upload
    message (over the subscription's history) and appeal is accounted for, or nothing new has
    been accounted for in `stop_after_idle_s` (from the start, when nothing comes at all).
    Progress is read from what the job wrote: the local runner's metrics lag. Returns why."""
    started = last_change = time.monotonic()
    last_count = None
    while True:
        for _ in range(10):  # a signal is seen within half a second
            time.sleep(0.5)
            if stop.signal:
                return f"{stop.signal} received"
        state = result.state
        if state in (PipelineState.DONE, PipelineState.FAILED, PipelineState.CANCELLED):
            result.wait_until_finish()  # raises the pipeline's error, if it failed
            return str(state)
        now = time.monotonic()
        try:
            account = subscription_account(sink, subscription)
            counts = (account.messages() - account.lost, appeals_accounted(sink))
        except duckdb.Error:  # a file still being written: count on the next poll
            continue
        if counts != last_count:
            last_count, last_change = counts, now
        said = f"{counts[0]} upload messages and {counts[1]} appeals accounted for"
        if max_run_s is not None and now - started >= max_run_s:
            return f"ran {max_run_s:g} s, {said}"
        if any(e is not None for e in expected) and all(e is None or c >= e for c, e in zip(counts, expected)):
            return f"all expected: {said}"
        if stop_after_idle_s is not None and now - last_change >= stop_after_idle_s:
            return f"nothing new in {stop_after_idle_s:g} s, {said}"


def drain(sink: Sink, subscription: str, timeout_s: float = DRAIN_TIMEOUT_S) -> bool:
    """Stops the local reader pulling, then waits until every message read has an outcome and
    the run's writes have stopped changing (decisions' events, statements, log and strikes come
    a few bundles after the decision). True when drained, False on timeout."""
    PULLING.clear()
    stopped = time.monotonic()
    time.sleep(PULL_TIMEOUT_S)  # a pull under way returns (and is not acknowledged)
    last = None
    while time.monotonic() - stopped < timeout_s:
        try:
            written = _written(sink)
            settled = subscription_account(sink, subscription).lost == 0
        except duckdb.Error:
            written, settled = None, False
        if settled and written == last:
            return True
        last = written
        time.sleep(DRAIN_POLL_S)
    return False


def run(argv: list[str] | None = None) -> int:
    parser = _parser()
    parser.parse_known_args(argv)
    pipeline_options = PipelineOptions(argv)
    options = pipeline_options.view_as(StreamingOptions)
    if not options.subscription:
        parser.error("--subscription is required")
    subscriptions = [s for s in (options.subscription, options.appeals_subscription, options.reviews_subscription) if s]
    for name in subscriptions:
        if not SUBSCRIPTION_PATH.match(name):
            parser.error(f"{name!r} is not a subscription path (projects/PROJECT/subscriptions/NAME)")
    if not options.warehouse:
        parser.error("--warehouse is required")
    if not 0 < options.allowed_lateness_s < JOIN_TIMEOUT_S:
        parser.error(f"--allowed_lateness_s must be positive and under {JOIN_TIMEOUT_S} s (the scoring join's wait)")
    if options.max_message_bytes <= 0 or options.max_delivery_attempts < 1:
        parser.error("--max_message_bytes must be positive and --max_delivery_attempts at least 1")
    standard = pipeline_options.view_as(StandardOptions)
    standard.streaming = True
    standard.runner = standard.runner or STREAMING_RUNNER
    local = standard.runner in (STREAMING_RUNNER, "BundleBasedDirectRunner")
    try:
        policy = load_policy(options.policy)
    except (OSError, ValueError) as exc:
        parser.error(f"--policy: {exc}")
    try:
        pinned = parse_pinned_versions(options.model_versions)
        model_set = resolve_model_set(options.model_dir or str(SERVED_MODEL_DIR), pinned)
    except (OSError, ValueError) as exc:
        parser.error(f"--model_dir: {exc}")
    if not model_set.models:
        parser.error("--model_dir: no model versions found")
    if options.model_refresh_s < 0:
        parser.error("--model_refresh_s must be 0 (off) or positive")
    refresh_s = {m: options.model_refresh_s for m in model_set.models if m not in pinned and options.model_refresh_s}
    hash_bank = HashBank.load(options.hash_bank) if options.hash_bank else None
    run_id = options.run_id or dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ-stream-") + secrets.token_hex(3)
    try:
        sink = open_warehouse(
            options.warehouse,
            run_id,
            bigquery_endpoint=options.bigquery_endpoint,
            write_method="streaming_inserts",
            temp_location=pipeline_options.view_as(GoogleCloudOptions).temp_location,
            pubsub_project=options.pubsub_project if options.events_sink == "pubsub" else None,
            topic_prefix=options.pubsub_topic_prefix,
            streaming=True,
        )
        history = sink.history(options.strike_ledger, truncate=False)
    except (LaunchError, ValueError) as exc:
        parser.error(str(exc))
    policy = gate_automation(policy, sink, options.warehouse, options.bigquery_endpoint)
    sink.prepare(truncate=False)
    sink.finish()  # the catalog exists while the job runs
    if local:  # see pipelines.intake: bounded pulls, a stop switch, replay since the last clean stop
        install_local_reader()
        PULLING.set()
        for name in subscriptions:
            print(resume(name), file=sys.stderr)
    detection = Detection(policy, model_set, options.media_limits(), hash_bank, options.min_batch_size,
                          options.max_batch_size, options.accelerator, streaming=True,
                          model_refresh_s=refresh_s,
                          shadow_policy=load_shadow_policy(options, policy, parser.error))  # fmt: skip
    job = StreamingJob(detection, sink, options.subscription, history, options.appeals_subscription,
                       options.min_cell_count, options.allowed_lateness_s, options.reviews_subscription,
                       review_media_dir(options), options.second_opinion_model, options.max_message_bytes,
                       options.max_delivery_attempts, unfinished_deliveries(sink, options.subscription))  # fmt: skip
    stop = StopRequest()
    stop.install()
    p = beam.Pipeline(options=pipeline_options)
    build_pipeline(p, job)
    result = p.run()
    expected = (options.expected_rows, options.expected_appeals)
    why = wait(result, sink, options.subscription, stop, options.max_run_s, options.stop_after_idle_s, expected)
    drained = drain(sink, options.subscription) if local and result.state == PipelineState.RUNNING else True
    if result.state == PipelineState.RUNNING:
        result.cancel()
    where = sink.finish()
    if local and drained:
        for name in subscriptions:
            advance(name)
    # This run's own account (messages it read, replays included), then the subscription's.
    read = sum(n for sub, n in sink.run_counts("message_deliveries", "subscription") if sub == options.subscription)
    summary = reconcile(read, sink, rows_read(result, "verdict_rows_read"))
    account = subscription_account(sink, options.subscription)
    print(f"streaming job {run_id} stopped: {why}" + ("" if drained else
          "; NOT drained in time: what was in flight comes again on the next start"))  # fmt: skip
    print(format_summary(summary, where, model_set))
    print(account.line(options.expected_rows))
    percentiles = latency_percentiles(sink)
    if percentiles:
        print("upload to decision, seconds: " + "  ".join(f"p{q} {v:.1f}" for q, v in percentiles.items()))
    balanced = summary.balanced and "[balanced]" in account.line(options.expected_rows)
    return 0 if balanced else 3


if __name__ == "__main__":
    logging.getLogger().setLevel(logging.WARNING)
    sys.exit(run())
