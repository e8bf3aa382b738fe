"""Publish a manifest's upload events to a Pub/Sub topic, in event-time order, for the
streaming job (and a data engineer feeding a local one).

    python -m tools.publish_events --input MANIFEST.jsonl --topic projects/P/topics/T
        [--rate 50] [--shift_to_now]

Each line's JSON is the message body; the `uploaded_at` attribute carries the event time the
streaming job windows by (a row without a readable `uploaded_at` is still published, and the
job dead-letters it, as the batch job would). PUBSUB_EMULATOR_HOST points it at the emulator.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import sys
import time
from pathlib import Path

from pipelines.options import StrictParser
from schemas.records import format_timestamp, parse_timestamp

# The times an event carries; shifting an event moves them together, so an account's age at
# upload and the time from notice to action stay what they were.
_TIMES = (("uploaded_at",), ("account", "created_at"), ("notice", "received_at"))


def shifted(row: dict, delta: dt.timedelta) -> dict:
    """The event with every time it carries moved by `delta` (unreadable ones left as they are)."""
    row = json.loads(json.dumps(row))
    for path in _TIMES:
        holder = row
        for key in path[:-1]:
            holder = holder.get(key) if isinstance(holder, dict) else None
        if isinstance(holder, dict) and isinstance(holder.get(path[-1]), str):
            with contextlib.suppress(ValueError):
                holder[path[-1]] = format_timestamp(parse_timestamp(holder[path[-1]], path[-1]) + delta)
    return row


def _not_after(row: dict, now: dt.datetime) -> dict:
    """A replayed notice that would arrive after now (a report comes hours after its upload)
    arrives now instead: the jobs refuse a time that cannot be yet."""
    notice = row.get("notice")
    if isinstance(notice, dict) and isinstance(notice.get("received_at"), str):
        with contextlib.suppress(ValueError):
            if parse_timestamp(notice["received_at"], "received_at") > now:
                notice["received_at"] = format_timestamp(now)
    return row


def _upload_time(line: str) -> dt.datetime | None:
    try:
        return parse_timestamp(json.loads(line)["uploaded_at"], "uploaded_at")
    except (ValueError, KeyError, TypeError):
        return None


def shift_to_now(lines: list[str], span_s: float | None = None, now: dt.datetime | None = None) -> list[str]:
    """Manifest lines replayed as live traffic: the newest upload moved to `now`, the others
    before it with their spacing kept, or (`span_s`) spread in order over the last `span_s`
    seconds. Each event's own times move with its upload time, so an account's age at upload
    and the time from notice to action stay what they were (a notice that would then arrive
    after now arrives now). Lines without a readable upload time stay as they are."""
    times = [t for t in map(_upload_time, lines) if t is not None]
    if not times:
        return list(lines)
    now = (now or dt.datetime.now(dt.UTC)).replace(microsecond=0)
    first, last = min(times), max(times)
    out = []
    for line in lines:
        uploaded = _upload_time(line)
        if uploaded is None:
            out.append(line)
            continue
        if span_s is None:
            moved = now - (last - uploaded)
        else:
            share = (uploaded - first) / (last - first) if last > first else 1.0
            moved = now - dt.timedelta(seconds=span_s * (1.0 - share))
        out.append(json.dumps(_not_after(shifted(json.loads(line), moved.replace(microsecond=0) - uploaded), now)))
    return out


def event_messages(manifest: Path, absolute_media_uris: bool = True,
                   lines: list[str] | None = None) -> list[tuple[bytes, dict[str, str]]]:  # fmt: skip
    """(body, attributes) per manifest line (or per given line), in event-time order
    (unreadable times last)."""
    messages = []
    if lines is None:
        lines = manifest.read_text(encoding="utf-8", errors="replace").splitlines()
    for line in lines:
        attributes, order = {}, None
        try:
            row = json.loads(line)
            uploaded_at = parse_timestamp(row["uploaded_at"], "uploaded_at")
            attributes["uploaded_at"] = format_timestamp(uploaded_at)
            order = uploaded_at.timestamp()
            if absolute_media_uris and isinstance(row.get("media_uri"), str) and "://" not in row["media_uri"]:
                row["media_uri"] = str((manifest.parent / row["media_uri"]).resolve())
            line = json.dumps(row)
        except (ValueError, KeyError, TypeError, AttributeError):
            pass  # published as it is: the job's dead letter says what is wrong with it
        messages.append((order is None, order or 0.0, line.encode("utf-8"), attributes))
    return [(body, attributes) for _, _, body, attributes in sorted(messages, key=lambda m: (m[0], m[1]))]


def as_live(body: bytes, attributes: dict[str, str]) -> tuple[bytes, dict[str, str]]:
    """The event as if uploaded this instant: its times moved so `uploaded_at` is now (a notice
    that would then arrive after now arrives now)."""
    try:
        row = json.loads(body)
        now = dt.datetime.now(dt.UTC)
        row = _not_after(shifted(row, now - parse_timestamp(row["uploaded_at"], "uploaded_at")), now)
    except (ValueError, KeyError, TypeError):
        return body, attributes
    return json.dumps(row).encode("utf-8"), {**attributes, "uploaded_at": row["uploaded_at"]}


def publish(topic: str, messages: list[tuple[bytes, dict[str, str]]], rate: float | None = None,
            live: bool = False) -> int:  # fmt: skip
    """Publishes every message (at `rate` per second, or at once); `live` stamps each with
    the moment it is published (`as_live`). Returns how many were published."""
    from google.cloud import pubsub_v1

    publisher = pubsub_v1.PublisherClient()
    futures = []
    for body, attributes in messages:
        if live:
            body, attributes = as_live(body, attributes)
        futures.append(publisher.publish(topic, body, **attributes))
        if rate:
            time.sleep(1.0 / rate)
    for future in futures:
        future.result(timeout=60)
    return len(futures)


def run(argv: list[str] | None = None) -> int:
    parser = StrictParser(prog="python -m tools.publish_events", description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", required=True, help="JSON Lines manifest of upload events.")
    parser.add_argument("--topic", required=True, help="projects/P/topics/T")
    parser.add_argument("--rate", type=float, default=None, help="Events per second (default: as fast as it can).")
    parser.add_argument(
        "--keep_relative_media_uris",
        action="store_true",
        help="Publish media_uri as written (default: resolved against the manifest's directory, "
        "since a message has no directory).",
    )
    parser.add_argument(
        "--shift_to_now",
        action="store_true",
        help="Move every event's times so the newest upload is now (spacing kept): recorded traffic replayed "
        "as live, within the streaming job's allowed lateness.",
    )
    parser.add_argument(
        "--as_live",
        action="store_true",
        help="Stamp each event with the moment it is published (its other times moved with it): uploads "
        "happening now, at --rate, so the job's upload-to-decision latency is what a live upload would see.",
    )
    parser.add_argument(
        "--span_s",
        type=float,
        default=None,
        help="With --shift_to_now: spread the uploads, in their order, over the last this many seconds.",
    )
    args = parser.parse_args(argv)
    manifest = Path(args.input)
    if not manifest.exists():
        parser.error(f"--input: {manifest} not found")
    lines = manifest.read_text(encoding="utf-8", errors="replace").splitlines()
    if args.shift_to_now:
        lines = shift_to_now(lines, args.span_s)
    messages = event_messages(manifest, absolute_media_uris=not args.keep_relative_media_uris, lines=lines)
    count = publish(args.topic, messages, args.rate, live=args.as_live)
    where = os.environ.get("PUBSUB_EMULATOR_HOST", "Google")
    print(f"published {count} events to {args.topic} ({where})")
    return 0


if __name__ == "__main__":
    sys.exit(run())
