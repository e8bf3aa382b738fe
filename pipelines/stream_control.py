"""Running the streaming job until it should stop, then stopping it cleanly.

A streaming job never ends by itself: the launcher waits on it (`wait`) until a stop signal
(SIGINT/SIGTERM), `--max_run_s`, every expected message accounted for (`--expected_rows`,
`--expected_appeals`) or `--stop_after_idle_s` without anything new; progress is read from
what the job wrote, since the local runner's metrics lag. On the local runner `drain` then
stops the reader pulling and waits until everything read has an outcome.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

import duckdb
from apache_beam.runners.runner import PipelineState

from pipelines.intake import PULL_TIMEOUT_S, PULLING
from pipelines.reconcile import stage_of, subscription_account
from schemas.vocabulary import SUSPEND_ACTION
from warehouse.sinks import BigQueryWarehouse, Sink

# What a clean stop waits on: the run's writes to these stop changing.
DRAINED_TABLES = ("message_deliveries", "media_scores", "dead_letter", "enforcement_decisions", "enforcement_events",
                  "statements_of_reasons", "decision_log", "strike_ledger", "appeals", "reviews")  # fmt: skip
# Drained: every message read has an outcome and the writes have not changed for DRAIN_STABLE_S.
DRAIN_TIMEOUT_S, DRAIN_POLL_S, DRAIN_STABLE_S = 180.0, 2.0, 5.0
WAIT_POLL_S = 2.0  # how often `wait` reads the job's progress


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
        for _ in range(round(WAIT_POLL_S / 0.5)):  # a signal is seen within half a second
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
    last, since = None, time.monotonic()
    while time.monotonic() - stopped < timeout_s:
        try:
            written = _written(sink)
            settled = subscription_account(sink, subscription).lost == 0
        except duckdb.Error:
            written, settled = None, False
        if written != last or not settled:
            last, since = written, time.monotonic()
        elif time.monotonic() - since >= DRAIN_STABLE_S:
            return True
        time.sleep(DRAIN_POLL_S)
    return False
