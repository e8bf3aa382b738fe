"""The streaming job on this machine, end to end: `make stream-demo`.

    python -m pipelines.stream_demo --manifest MANIFEST.jsonl --warehouse DIR [--rate 2]

Starts the Pub/Sub emulator on 127.0.0.1, creates the upload topic and the job's subscription
and one topic (with a subscription) per enforcement target, starts the streaming job, and
publishes the manifest's uploads as live traffic (`publish_events --as_live`, at `--rate` per
second). The job stops by itself once every published row is accounted for, printing the
batch job's reconciliation and the upload-to-decision latency percentiles; then each target's
subscription is drained to count the events it received.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
from pathlib import Path

from pipelines import publish_events, streaming
from pipelines.local_servers import ServerUnavailable, running, start_pubsub
from pipelines.options import DEFAULT_POLICY

PROJECT = "t-and-s-local"


def _targets(policy_file: str) -> list[str]:
    from enforcement.policy import load_policy
    from schemas.vocabulary import SUSPENSION_TARGET

    policy = load_policy(policy_file)
    return sorted({t for names in policy.targets.values() for t in names} | {SUSPENSION_TARGET})


def _drain(subscriber, subscription: str) -> int:
    received = 0
    while True:
        response = subscriber.pull(subscription=subscription, max_messages=500, timeout=5)
        if not response.received_messages:
            return received
        received += len(response.received_messages)
        subscriber.acknowledge(subscription=subscription, ack_ids=[m.ack_id for m in response.received_messages])


def run(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.stream_demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--manifest", required=True)
    parser.add_argument("--warehouse", required=True)
    parser.add_argument("--rate", type=float, default=2.0, help="Uploads published per second.")
    parser.add_argument("--policy", default=DEFAULT_POLICY)
    args, job_args = parser.parse_known_args(argv)
    manifest = Path(args.manifest)
    lines = [line for line in manifest.read_text(encoding="utf-8", errors="replace").splitlines()]
    try:
        server = start_pubsub(Path(tempfile.mkdtemp(prefix="pubsub-")))
    except ServerUnavailable as exc:
        parser.error(str(exc))
    with running(server):
        os.environ["PUBSUB_EMULATOR_HOST"] = server.address
        from google.cloud import pubsub_v1

        publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
        topic = publisher.create_topic(name=f"projects/{PROJECT}/topics/upload-events").name
        subscription = subscriber.create_subscription(
            name=f"projects/{PROJECT}/subscriptions/upload-events-streaming-job", topic=topic
        ).name
        downstream = {}
        for target in _targets(args.policy):
            target_topic = publisher.create_topic(name=f"projects/{PROJECT}/topics/{target}").name
            downstream[target] = subscriber.create_subscription(
                name=f"projects/{PROJECT}/subscriptions/{target}-downstream", topic=target_topic
            ).name
        messages = publish_events.event_messages(manifest, lines=lines)
        sender = threading.Thread(target=publish_events.publish, args=(topic, messages, args.rate),
                                  kwargs={"live": True}, daemon=True)  # fmt: skip
        sender.start()
        print(f"publishing {len(messages)} uploads to {topic} at {args.rate:g}/s (as live traffic)")
        code = streaming.run(
            [
                "--subscription", subscription, "--warehouse", args.warehouse, "--policy", args.policy,
                "--expected_rows", str(len(messages)), "--events_sink", "pubsub", "--pubsub_project", PROJECT,
                *job_args,
            ]
        )  # fmt: skip
        sender.join()
        for target, target_subscription in sorted(downstream.items()):
            print(f"  topic {target:<22} {_drain(subscriber, target_subscription)} events")
    return code


if __name__ == "__main__":
    sys.exit(run())
