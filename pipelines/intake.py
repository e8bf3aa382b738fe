"""How the streaming job takes messages from its subscriptions without losing one.

At least once into the warehouse: a message must not be gone from the subscription before
everything it produced is written. Two runners, two mechanisms:

* **Dataflow.** The service's Pub/Sub source acknowledges a message only after the first
  stage's output is committed to the job's durable state; from there every step is retried
  until it succeeds (the job's own errors are dead letters, so retries are for crashes and
  preemptions) and a drain finishes what was read before stopping. The job relies on this, on
  the ids that make every row idempotent (decisions, events, statements, log, strikes carry
  ids derived from the upload; BigQuery streaming inserts carry insert ids) and on state
  rebuilt from the warehouse's history when it is launched again.
* **The local DirectRunner.** Beam's local reader acknowledges each message when it pulls it,
  so a crash loses what is in flight. Here the job keeps a Pub/Sub snapshot per subscription,
  `<subscription>-resume`, taken only when everything read before it is written: created on
  the first run, taken again at each clean stop (after the drain). A run that starts seeks
  its subscriptions to their snapshots: after a clean stop that replays nothing; after a
  crash it replays every message since the last clean stop, and the idempotent ids make the
  replay write nothing twice that a reader sees. The local reader is also given a bounded
  pull (the emulator's client refuses a response over 4 MiB: ten 1 MiB messages would jam the
  subscription) and a switch that stops it pulling, so a stop signal drains what was read.

`LocalReader` is installed into Beam's DirectRunner in place of its Pub/Sub read evaluator
(`install_local_reader`): with `pipelines.local_runner`'s memo, the places this project
reaches into a runner's internals, and only for the local runners.
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import ClassVar

from google.api_core import exceptions as google_exceptions

# Pub/Sub's own bound on one message; a pull of N messages needs N times it on the channel.
PUBSUB_MAX_MESSAGE_BYTES = 10 * 1024 * 1024
PULL_MESSAGES = 10
# A pull returns as soon as messages come; an idle one after this long (what a stop waits on).
PULL_TIMEOUT_S = 2.0
SNAPSHOT_SUFFIX = "-resume"


# Whether the local reader pulls at all: set while a job runs, cleared by a stop so that what
# was read can be written before the job ends. Shared with the launcher in the same process.
PULLING = threading.Event()


def subscriber_client():
    """A Pub/Sub subscriber whose channel takes a whole pull of the largest messages Pub/Sub
    accepts (against the emulator the client's own channel takes 4 MiB)."""
    import os

    import grpc
    from google.cloud import pubsub_v1
    from google.pubsub_v1.services.subscriber.transports.grpc import SubscriberGrpcTransport

    emulator = os.environ.get("PUBSUB_EMULATOR_HOST")
    if not emulator:
        return pubsub_v1.SubscriberClient()  # Google's endpoint: no receive limit on the channel
    limit = PULL_MESSAGES * PUBSUB_MAX_MESSAGE_BYTES + 1024 * 1024
    channel = grpc.insecure_channel(emulator, options=[("grpc.max_receive_message_length", limit)])
    return pubsub_v1.SubscriberClient(transport=SubscriberGrpcTransport(channel=channel))


def snapshot_path(subscription: str) -> str:
    project, _, name = subscription.removeprefix("projects/").partition("/subscriptions/")
    return f"projects/{project}/snapshots/{name}{SNAPSHOT_SUFFIX}"


def resume(subscription: str, client=None) -> str:
    """Seeks `subscription` to its resume snapshot (what was read since the last clean stop is
    delivered again), or takes the first snapshot. Returns what it did, for the log."""
    client = client or subscriber_client()
    snapshot = snapshot_path(subscription)
    try:
        client.seek(request={"subscription": subscription, "snapshot": snapshot})
        return f"{subscription}: resumed from {snapshot} (messages read since the last clean stop come again)"
    except google_exceptions.NotFound:
        client.create_snapshot(name=snapshot, subscription=subscription)
        return f"{subscription}: first run, snapshot {snapshot} taken"


def advance(subscription: str, client=None) -> None:
    """After a clean stop (everything read is written): the snapshot moves to now."""
    client = client or subscriber_client()
    snapshot = snapshot_path(subscription)
    with contextlib.suppress(google_exceptions.NotFound):
        client.delete_snapshot(snapshot=snapshot)
    client.create_snapshot(name=snapshot, subscription=subscription)


_installed = False


def install_local_reader() -> None:
    """Makes the DirectRunner read Pub/Sub with `LocalReader` (idempotent)."""
    global _installed
    if _installed:
        return
    from apache_beam.runners.direct.direct_runner import _DirectReadFromPubSub
    from apache_beam.runners.direct.transform_evaluator import TransformEvaluatorRegistry

    TransformEvaluatorRegistry._test_evaluators_overrides[_DirectReadFromPubSub] = _local_reader_class()
    _installed = True


def _local_reader_class():
    from apache_beam.io.gcp.pubsub import PubsubMessage
    from apache_beam.runners.direct.transform_evaluator import _PubSubReadEvaluator
    from apache_beam.utils.timestamp import Timestamp

    class LocalReader(_PubSubReadEvaluator):
        """Beam's local Pub/Sub read, with a bounded pull that stops when the job is asked to.
        Elements carry the publish time; the job stamps each with its event time once parsed."""

        _clients: ClassVar[dict[str, object]] = {}

        def _read_from_pubsub(self, timestamp_attribute):
            if not PULLING.is_set():
                time.sleep(1.0)
                return []
            client = self._clients.get(self._sub_name)
            if client is None:
                client = self._clients[self._sub_name] = subscriber_client()
            try:
                response = client.pull(subscription=self._sub_name, max_messages=PULL_MESSAGES,
                                       timeout=PULL_TIMEOUT_S)  # fmt: skip
            except google_exceptions.DeadlineExceeded:
                return []
            received = list(response.received_messages)
            if not received or not PULLING.is_set():
                # Asked to stop while pulling: these are not acknowledged and come again.
                return []
            client.acknowledge(subscription=self._sub_name, ack_ids=[m.ack_id for m in received])
            return [
                (Timestamp.from_utc_datetime(m.message.publish_time), PubsubMessage._from_message(m.message))
                for m in received
            ]

    return LocalReader
