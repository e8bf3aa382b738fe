"""The bank of confirmed violations as a job reads it at launch: the warehouse's `bank_changes`
(written by the jobs from their decisions and appeal outcomes, and by imports) folded into the
items standing in the bank (`enforcement.bank`), each with its PDQ hashes and audio
fingerprint, as a `HashBank` the graph matches uploads against.

A match's label names why the item is banked and the decision that banked it
(`banked:reviewer_removal:<decision_id>`), so the score row, the decision and its statement of
reasons can cite the original decision.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from enforcement.bank import OWN_DECISIONS, BankChange, bank_as_of
from enforcement.simulation import sql_literal
from schemas.vocabulary import SUSPEND_ACTION
from transforms.hashbank import HashBank, evasion_label, hash_frames
from warehouse.reader import WarehouseReader


def banked_label(reason: str, decision_id: str) -> str:
    return f"banked:{reason}:{decision_id}"


def bank_changes_of(reader: WarehouseReader) -> list[BankChange]:
    """Every row of the warehouse's `bank_changes`."""
    return [BankChange.from_row(row) for row in reader.query("SELECT * FROM bank_changes").to_pylist()]


def own_media(
    reader: WarehouseReader, content_ids: Iterable[str]
) -> dict[str, tuple[list[str], list[int], bytes | None]]:
    """Each upload's PDQ hashes (distinct, in order) with the frame each came from, and its
    first audio fingerprint, from its features (which may be in several runs)."""
    listed = ", ".join(sql_literal(content_id) for content_id in sorted(set(content_ids)))
    if not listed:
        return {}
    media: dict[str, tuple[list[str], list[int], bytes | None]] = {}
    rows = reader.query("SELECT content_id, pdq_hashes, pdq_frames, audio_fingerprint FROM features "
                        f"WHERE content_id IN ({listed})").to_pylist()  # fmt: skip
    for row in rows:
        hashes, frames, packed = media.get(row["content_id"], ([], [], None))
        for digest, frame in zip(row["pdq_hashes"] or (), _frames_of(row)):
            if digest not in hashes:
                hashes.append(digest)
                frames.append(frame)
        media[row["content_id"]] = hashes, frames, packed or row["audio_fingerprint"]
    return media


def _frames_of(row: dict) -> tuple[int, ...]:
    return hash_frames(row["pdq_hashes"] or (), row.get("pdq_frames"))


def read_bank(reader: WarehouseReader, moment: dt.datetime | None = None) -> HashBank | None:
    """The items in the warehouse's bank (`bank_changes`) at `moment` (default: now) with their
    hashes (the warehouse's own items': their features'; imported ones': their own); None
    when it holds none."""
    standing = bank_as_of(bank_changes_of(reader), moment)
    media = own_media(reader, (c for c, change in standing.items() if change.source == OWN_DECISIONS))
    entries = []
    for content_id, change in sorted(standing.items()):
        hashes, frames, packed = media.get(content_id, ([], [], None))
        entries.append((banked_label(change.reason, change.decision_id), (*change.pdq_hashes, *hashes),
                        change.audio_fingerprint or packed, (*[0] * len(change.pdq_hashes), *frames)))  # fmt: skip
    return HashBank.of(entries)


def read_suspended_media(reader: WarehouseReader) -> HashBank | None:
    """The media of every account suspended under the policy (a suspension no appeal
    overturned), labelled `suspended:<account>:<suspension decision>`: what a ban evasion
    re-uploads. None when no suspended account has media with hashes or sound."""
    suspensions = reader.query(
        f"SELECT account_id, decision_id FROM enforcement_decisions WHERE action = '{SUSPEND_ACTION}' "
        "AND decision_id NOT IN (SELECT decision_id FROM appeals WHERE outcome = 'overturned')"
    ).to_pylist()
    by_account = {row["account_id"]: row["decision_id"] for row in sorted(suspensions, key=lambda r: r["decision_id"])}
    if not by_account:
        return None
    accounts = ", ".join(sql_literal(account) for account in sorted(by_account))
    rows = reader.query(
        "SELECT d.account_id, f.pdq_hashes, f.pdq_frames, f.audio_fingerprint FROM features f JOIN "
        f"(SELECT DISTINCT content_id, account_id FROM enforcement_decisions WHERE account_id IN ({accounts}) "
        f"AND action <> '{SUSPEND_ACTION}') d USING (content_id) ORDER BY f.content_id"
    ).to_pylist()
    return HashBank.of((evasion_label(row["account_id"], by_account[row["account_id"]]), row["pdq_hashes"] or (),
                        row["audio_fingerprint"], _frames_of(row)) for row in rows)  # fmt: skip


def _warehouse_read(warehouse: str, bigquery_endpoint: str | None, read) -> HashBank | None:
    from warehouse.reader import open_reader

    try:
        reader = open_reader(warehouse, bigquery_endpoint, live=True)
    except FileNotFoundError:  # an embedded warehouse no job has written yet
        return None
    from google.api_core.exceptions import NotFound

    try:
        return read(reader)
    except NotFound:  # a BigQuery dataset whose tables no job has created yet
        return None


def warehouse_suspended_media(warehouse: str, bigquery_endpoint: str | None) -> HashBank | None:
    """`read_suspended_media` of the warehouse a job writes."""
    return _warehouse_read(warehouse, bigquery_endpoint, read_suspended_media)


def warehouse_bank(warehouse: str, bigquery_endpoint: str | None) -> HashBank | None:
    """`read_bank` of the warehouse a job writes; None for one with no tables yet."""
    return _warehouse_read(warehouse, bigquery_endpoint, read_bank)
