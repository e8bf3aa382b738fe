"""The streaming job on this machine, end to end: `make stream-demo`.

    python -m tools.stream_demo --input MANIFEST.jsonl --warehouse DIR [--rate 2]

Starts the Pub/Sub emulator on 127.0.0.1, creates the upload topic and the job's subscription
and one topic (with a subscription) per enforcement target, starts the streaming job, and
publishes the manifest's uploads as live traffic (`publish_events --as_live`, at `--rate` per
second). The job stops by itself once every published row is accounted for, printing the
batch job's reconciliation and the upload-to-decision latency percentiles; then each target's
subscription is drained to count the events it received. With the corpus's labels beside
the manifest, it then samples appeals against half the restrictive decisions, restarts the job
(its state rebuilt from the warehouse) on an appeals subscription as well, and publishes them.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import tempfile
import threading
from pathlib import Path

from pipelines import streaming
from pipelines.options import StrictParser, add_flags
from schemas.records import format_timestamp
from tools import publish_events, sample_appeals
from tools.local_servers import ServerUnavailable, running, start_pubsub

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


def live_appeal(line: str) -> tuple[bytes, dict[str, str]]:
    """An appeal outcome decided this instant, as a message (`decided_at` also the event time)."""
    row = json.loads(line)
    row["decided_at"] = format_timestamp(dt.datetime.now(dt.UTC))
    return json.dumps(row).encode("utf-8"), {"decided_at": row["decided_at"]}


def run(argv: list[str] | None = None) -> int:
    parser = StrictParser(prog="python -m tools.stream_demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", required=True)
    add_flags(parser, "warehouse", "policy", required=("warehouse",))
    parser.add_argument("--rate", type=float, default=2.0, help="Uploads published per second.")
    args, job_args = parser.parse_known_args(argv)
    manifest = Path(args.input)
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
        common = ["--subscription", subscription, "--warehouse", args.warehouse, "--policy", args.policy,
                  "--events_sink", "pubsub", "--pubsub_project", PROJECT, "--media_root", str(manifest.parent),
                  *job_args]  # fmt: skip
        code = streaming.run([*common, "--expected_rows", str(len(messages))])
        sender.join()
        labels = manifest.parent / "labels.jsonl"
        if code == 0 and labels.exists():
            # Uploaders appeal half the restrictive decisions (an appeal is overturned when the
            # item was real). A restarted job takes them: it rebuilds its state (strike ledger,
            # decisions, appeal ids) from the warehouse the first run wrote.
            appeals_topic = publisher.create_topic(name=f"projects/{PROJECT}/topics/appeal-outcomes").name
            appeals_subscription = subscriber.create_subscription(
                name=f"projects/{PROJECT}/subscriptions/appeal-outcomes-streaming-job", topic=appeals_topic
            ).name
            appeals_file = Path(args.warehouse) / "appeals.jsonl"
            sample_appeals.run(["--warehouse", args.warehouse, "--labels", str(labels), "--out", str(appeals_file),
                                "--seed", "3"])  # fmt: skip
            appeals = [live_appeal(line) for line in appeals_file.read_text().splitlines() if line.strip()]
            print(f"restarting the job; publishing {len(appeals)} appeals to {appeals_topic}")
            sender = threading.Thread(target=publish_events.publish, args=(appeals_topic, appeals, args.rate),
                                      daemon=True)  # fmt: skip
            sender.start()
            code = streaming.run([*common, "--appeals_subscription", appeals_subscription, "--expected_rows", "0",
                                  "--expected_appeals", str(len(appeals))])  # fmt: skip
            sender.join()
        for target, target_subscription in sorted(downstream.items()):
            print(f"  topic {target:<22} {_drain(subscriber, target_subscription)} events")
    return code


if __name__ == "__main__":
    sys.exit(run())
