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

import dataclasses
import functools
import sys
import time

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.runners.runner import PipelineState
from apache_beam.transforms import trigger, window

from pipelines.account import account_stage, write_campaigns, write_decided, write_evasion_links, write_review_queue
from pipelines.graph import Detection, detect
from pipelines.intake import PULLING, advance, install_local_reader, resume
from pipelines.launch import main, prepare
from pipelines.reconcile import format_summary, reconcile, rows_read, subscription_account, unfinished_deliveries
from pipelines.stream_control import StopRequest, drain, latency_percentiles, wait
from transforms.dead_letter import DEAD, dead_letter_for
from transforms.hashbank import LiveBank
from transforms.health import ExportHealthMetrics
from transforms.messages import DEFAULT_MAX_ATTEMPTS, DEFAULT_MAX_MESSAGE_BYTES, ReadMessages, at_event_time
from transforms.parse import DeduplicateEvents, ParseEvents
from transforms.progress import ReportProgress
from transforms.review import CAMPAIGN_MEMBER_VERDICTS
from warehouse.sinks import History, Sink

EVENT_TIME_ATTRIBUTE = "uploaded_at"
APPEAL_TIME_ATTRIBUTE = "decided_at"
CELL_WINDOW_S = 3600
LATENCY = Metrics.distribution("streaming", "upload_to_decision_ms")


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
    _ = rows | "ProgressRead" >> ReportProgress(job.sink.run_id, "read")
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
    campaigns = write_campaigns(sink, detected.features, policy, failures, job.allowed_lateness_s)
    account = account_stage(p, decisions, appeal_rows, job.history, policy, sink, streaming=True,
                            admit=functools.partial(admit_decided, allowed_lateness_s=job.allowed_lateness_s),
                            review_rows=review_rows, campaigns=campaigns)  # fmt: skip
    failures += account.dead_letters
    # Statements go to the table; the Transparency Database export gathers a whole run's.
    write_decided(p, sink, decisions, statements, events_out, account, job.min_cell_count, failures,
                  export_statements=False, windowing=cell_windowing(job.allowed_lateness_s))  # fmt: skip
    write_review_queue(sink, detected.review_items, job.review_media, job.detection.limits, failures,
                       job.second_opinion_model, policy, job.detection.accelerator, campaigns)  # fmt: skip
    if detected.shadow_decisions is not None:
        failures.append(sink.write("shadow_decisions", detected.shadow_decisions))
    if detected.shadow_scores is not None:
        failures.append(sink.write("shadow_scores", detected.shadow_scores))
    write_evasion_links(sink, detected.scores, failures)
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
    _ = scores | "ProgressScored" >> ReportProgress(job.sink.run_id, "scored")
    _ = dead_letters | "ProgressDeadLettered" >> ReportProgress(job.sink.run_id, "dead-lettered")
    {"scores": scores, "dead_letters": dead_letters} | "SignalHealthMetrics" >> ExportHealthMetrics()


def run(argv: list[str] | None = None) -> int:
    """Launches the job (`pipelines.launch`), runs it until it should stop (`pipelines.stream_control`),
    prints the reconciliation over the subscription's history; returns an exit code."""
    launch = prepare("streaming", argv)
    options, sink = launch.options, launch.sink
    sink.prepare(truncate=False)
    sink.finish()  # the catalog exists while the job runs
    subscriptions = [s for s in (options.subscription, options.appeals_subscription, options.reviews_subscription) if s]
    if launch.local:  # see pipelines.intake: bounded pulls, a stop switch, replay since the last clean stop
        install_local_reader()
        PULLING.set()
        for name in subscriptions:
            print(resume(name), file=sys.stderr)
    job = StreamingJob(launch.detection(), sink, options.subscription, launch.history, options.appeals_subscription,
                       options.min_cell_count, options.allowed_lateness_s, options.reviews_subscription,
                       launch.review_media, options.second_opinion_model, options.max_message_bytes,
                       options.max_delivery_attempts, unfinished_deliveries(sink, options.subscription))  # fmt: skip
    stop = StopRequest()
    stop.install()
    p = beam.Pipeline(options=launch.pipeline_options)
    build_pipeline(p, job)
    result = p.run()
    expected = (options.expected_rows, options.expected_appeals)
    why = wait(result, sink, options.subscription, stop, options.max_run_s, options.stop_after_idle_s, expected)
    running = result.state == PipelineState.RUNNING
    drained = drain(sink, options.subscription) if launch.local and running else True
    if result.state == PipelineState.RUNNING:
        result.cancel()
    LiveBank.stop_all()  # the local runner does not always tear its DoFns down on a cancel
    where = sink.finish()
    if launch.local and drained:
        for name in subscriptions:
            advance(name)
    # This run's own account (messages it read, replays included), then the subscription's.
    read = sum(n for sub, n in sink.run_counts("message_deliveries", "subscription") if sub == options.subscription)
    summary = reconcile(read, sink, rows_read(result, "verdict_rows_read"), rows_read(result, CAMPAIGN_MEMBER_VERDICTS))
    account = subscription_account(sink, options.subscription)
    print(f"streaming job {launch.run_id} stopped: {why}" + ("" if drained else
          "; NOT drained in time: what was in flight comes again on the next start"))  # fmt: skip
    print(format_summary(summary, where, launch.model_set))
    print(account.line(options.expected_rows))
    percentiles = latency_percentiles(sink)
    if percentiles:
        print("upload to decision, seconds: " + "  ".join(f"p{q} {v:.1f}" for q, v in percentiles.items()))
    return launch.exit_status(summary, summary.balanced and "[balanced]" in account.line(options.expected_rows))


if __name__ == "__main__":
    sys.exit(main("streaming", run))
