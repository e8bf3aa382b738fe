"""Streaming deepfake detection: Pub/Sub upload events -> the detection graph -> warehouse.

    python -m pipelines.streaming --subscription projects/P/subscriptions/S --warehouse DIR|bq://P.D
        [--model_dir DIR] [--policy FILE] [--stop_after_idle_s 30] [--max_run_s 600]

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

Event time is the upload time: the publisher sets the `uploaded_at` attribute (RFC 3339;
`python -m pipelines.publish_events` does). Rows go to the same tables as batch: BigQuery
streaming inserts, or a Parquet file per bundle in the embedded warehouse.

Locally it runs on Beam's DirectRunner in streaming mode against the Pub/Sub emulator
(PUBSUB_EMULATOR_HOST); on Dataflow with `--runner DataflowRunner --streaming`.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import functools
import logging
import secrets
import sys
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
from pipelines.options import DetectionOptions, load_shadow_policy, review_media_dir
from pipelines.reconcile import format_summary, reconcile, rows_read, stage_of
from pipelines.sinks import BigQueryWarehouse, History, LaunchError, Sink, open_warehouse
from schemas.vocabulary import SUSPEND_ACTION
from transforms.dead_letter import DEAD, dead_letter_for
from transforms.hashbank import HashBank
from transforms.health import ExportHealthMetrics
from transforms.inference import JOIN_TIMEOUT_S
from transforms.parse import DeduplicateEvents, ParseEvents, RawRow

STREAMING_RUNNER = "DirectRunner"
EVENT_TIME_ATTRIBUTE = "uploaded_at"
APPEAL_TIME_ATTRIBUTE = "decided_at"
CELL_WINDOW_S = 3600
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


def message_row(message, subscription: str) -> RawRow:
    """A Pub/Sub message as an input row: its body, decoded like a manifest line."""
    data = message.data if hasattr(message, "data") else message
    try:
        return RawRow(source=subscription, text=data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        text = data.decode("utf-8", errors="replace")
        return RawRow(source=subscription, text=text, read_error=f"not valid UTF-8 at offset {exc.start}")


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


def read_uploads(p: beam.Pipeline, subscription: str, allowed_lateness_s: int):
    """Pub/Sub messages -> parsed, admitted, de-duplicated upload events, and the rows turned away."""
    messages = p | "ReadPubSub" >> beam.io.ReadFromPubSub(
        subscription=subscription, with_attributes=True, timestamp_attribute=EVENT_TIME_ATTRIBUTE
    )
    rows = messages | "AsRawRows" >> beam.Map(message_row, subscription=subscription)
    events, invalid = rows | "ParseEvents" >> ParseEvents(base_uri=None)
    return admit(events, allowed_lateness_s, [invalid])


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
    appeal_rows = read_decided_rows(p, job.appeals_subscription, "Appeals")
    review_rows = read_decided_rows(p, job.reviews_subscription, "Reviews")
    account = account_stage(p, decisions, appeal_rows, job.history, policy, sink, streaming=True,
                            admit=functools.partial(admit_in_time, allowed_lateness_s=job.allowed_lateness_s),
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


def read_decided_rows(p: beam.Pipeline, subscription: str | None, what: str) -> beam.PCollection | None:
    """Appeal outcomes or verdicts from a subscription, as input rows timed by `decided_at`."""
    if not subscription:
        return None
    return (
        p
        | f"Read{what}"
        >> beam.io.ReadFromPubSub(
            subscription=subscription, with_attributes=True, timestamp_attribute=APPEAL_TIME_ATTRIBUTE
        )
        | f"{what[:-1]}Rows" >> beam.Map(message_row, subscription=subscription)
    )


def build_pipeline(p: beam.Pipeline, job: StreamingJob) -> None:
    events, failures = read_uploads(p, job.subscription, job.allowed_lateness_s)
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


def accounted(sink: Sink) -> tuple[int, int]:
    """(upload rows, appeals) the run has written an outcome for: a score or an applied appeal,
    or a dead letter (or skip) of its stage."""
    scored = sum(n for *_, n in sink.run_counts("media_scores", "media_type"))
    applied = sum(n for *_, n in sink.run_counts("appeals", "outcome"))
    turned_away = {"uploads": 0, "appeals": 0, "after scoring": 0}
    for _, step, n in sink.run_counts("dead_letter", "disposition, step"):
        turned_away[stage_of(step)] += n
    return scored + turned_away["uploads"], applied + turned_away["appeals"]


def wait(result, sink: Sink, max_run_s: float | None, stop_after_idle_s: float | None,
         expected: tuple[int | None, int | None], settle_s: float) -> str:  # fmt: skip
    """Waits until the job ends, `max_run_s` passes, every expected upload row and appeal is
    accounted for, or nothing new has been accounted for in `stop_after_idle_s`; then waits
    `settle_s` for the last bundles and cancels it. Progress is read from what the run wrote:
    the local runner's metrics stop updating after its first bundle. Returns why it stopped."""
    started, last_count, last_change = time.monotonic(), None, time.monotonic()
    while True:
        time.sleep(5.0)  # the local runner takes no wait timeout: poll
        state = result.state
        if state in (PipelineState.DONE, PipelineState.FAILED, PipelineState.CANCELLED):
            result.wait_until_finish()  # raises the pipeline's error, if it failed
            return str(state)
        now = time.monotonic()
        try:
            counts = accounted(sink)
        except duckdb.Error:  # a file still being written: count on the next poll
            continue
        if counts != last_count:
            last_count, last_change = counts, now
        said = f"{counts[0]} upload rows and {counts[1]} appeals accounted for"
        if max_run_s is not None and now - started >= max_run_s:
            reason = f"ran {max_run_s:g} s, {said}"
            break
        if any(e is not None for e in expected) and all(e is None or c >= e for c, e in zip(counts, expected)):
            reason = f"all expected: {said}"
            break
        if stop_after_idle_s is not None and any(counts) and now - last_change >= stop_after_idle_s:
            reason = f"nothing new in {stop_after_idle_s:g} s, {said}"
            break
    time.sleep(settle_s)
    result.cancel()
    return reason


def run(argv: list[str] | None = None) -> int:
    parser = _parser()
    parser.parse_known_args(argv)
    pipeline_options = PipelineOptions(argv)
    options = pipeline_options.view_as(StreamingOptions)
    if not options.subscription:
        parser.error("--subscription is required")
    if not options.warehouse:
        parser.error("--warehouse is required")
    if not 0 < options.allowed_lateness_s < JOIN_TIMEOUT_S:
        parser.error(f"--allowed_lateness_s must be positive and under {JOIN_TIMEOUT_S} s (the scoring join's wait)")
    settle_s = 35.0  # the last bundles finish, and the next pull returns
    standard = pipeline_options.view_as(StandardOptions)
    standard.streaming = True
    standard.runner = standard.runner or STREAMING_RUNNER
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
    detection = Detection(policy, model_set, options.media_limits(), hash_bank, options.min_batch_size,
                          options.max_batch_size, options.accelerator, streaming=True,
                          model_refresh_s=refresh_s,
                          shadow_policy=load_shadow_policy(options, policy, parser.error))  # fmt: skip
    job = StreamingJob(detection, sink, options.subscription, history, options.appeals_subscription,
                       options.min_cell_count, options.allowed_lateness_s, options.reviews_subscription,
                       review_media_dir(options), options.second_opinion_model)  # fmt: skip
    p = beam.Pipeline(options=pipeline_options)
    build_pipeline(p, job)
    result = p.run()
    expected = (options.expected_rows, options.expected_appeals)
    why = wait(result, sink, options.max_run_s, options.stop_after_idle_s, expected, settle_s)
    where = sink.finish()
    # What the runner counted, or what the caller published when the local runner's metrics lag.
    summary = reconcile(
        max(rows_read(result), options.expected_rows or 0), sink, rows_read(result, "verdict_rows_read")
    )
    print(f"streaming job {run_id} stopped: {why}")
    print(format_summary(summary, where, model_set))
    percentiles = latency_percentiles(sink)
    if percentiles:
        print("upload to decision, seconds: " + "  ".join(f"p{q} {v:.1f}" for q, v in percentiles.items()))
    return 0 if summary.balanced else 3


if __name__ == "__main__":
    logging.getLogger().setLevel(logging.WARNING)
    sys.exit(run())
