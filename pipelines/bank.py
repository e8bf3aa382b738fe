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

from enforcement.bank import OWN_DECISIONS, BankChange, bank_as_of
from schemas.vocabulary import SUSPEND_ACTION
from transforms.hashbank import HashBank, evasion_label
from warehouse.reader import WarehouseReader


def banked_label(reason: str, decision_id: str) -> str:
    return f"banked:{reason}:{decision_id}"


def read_bank(reader: WarehouseReader, moment: dt.datetime | None = None) -> HashBank | None:
    """The items in the warehouse's bank (`bank_changes`) at `moment` (default: now) with their
    hashes (the warehouse's own items': their features'; imported ones': their own); None
    when it holds none."""
    changes = [BankChange.from_row(row) for row in reader.query("SELECT * FROM bank_changes").to_pylist()]
    standing = bank_as_of(changes, moment)
    if not standing:
        return None
    own = sorted(content_id for content_id, change in standing.items() if change.source == OWN_DECISIONS)
    hashes: dict[str, list[str]] = {}  # a content's features may be in several runs
    prints: dict[str, bytes] = {}
    if own:
        listed = ", ".join("'" + content_id.replace("'", "''") + "'" for content_id in own)
        rows = reader.query("SELECT content_id, pdq_hashes, audio_fingerprint FROM features "
                            f"WHERE content_id IN ({listed})").to_pylist()  # fmt: skip
        for row in rows:
            hashes.setdefault(row["content_id"], []).extend(row["pdq_hashes"] or ())
            if row["audio_fingerprint"]:
                prints.setdefault(row["content_id"], row["audio_fingerprint"])
    labelled: dict[str, str] = {}  # hash -> label
    audio = []
    for content_id, change in sorted(standing.items()):
        label = banked_label(change.reason, change.decision_id)
        for digest in (*change.pdq_hashes, *hashes.get(content_id, ())):
            labelled.setdefault(digest, label)
        packed = change.audio_fingerprint or prints.get(content_id)
        if packed:
            audio.append((label, packed))
    if not labelled and not audio:
        return None
    return HashBank(tuple(labelled), tuple(labelled.values()), audio=tuple(audio))


def read_suspended_media(reader: WarehouseReader) -> HashBank | None:
    """The media of every account suspended under the policy (a suspension no appeal
    overturned), labelled `suspended:<account>:<suspension decision>`: what a ban evasion
    re-uploads. None when no suspended account has media with hashes or sound."""

    def quoted(values) -> str:
        return ", ".join("'" + str(v).replace("'", "''") + "'" for v in sorted(values))

    suspensions = reader.query(
        f"SELECT account_id, decision_id FROM enforcement_decisions WHERE action = '{SUSPEND_ACTION}' "
        "AND decision_id NOT IN (SELECT decision_id FROM appeals WHERE outcome = 'overturned')"
    ).to_pylist()
    by_account = {row["account_id"]: row["decision_id"] for row in sorted(suspensions, key=lambda r: r["decision_id"])}
    if not by_account:
        return None
    rows = reader.query(
        "SELECT d.account_id, f.pdq_hashes, f.audio_fingerprint FROM features f JOIN "
        f"(SELECT DISTINCT content_id, account_id FROM enforcement_decisions WHERE account_id IN ({quoted(by_account)}) "
        f"AND action <> '{SUSPEND_ACTION}') d USING (content_id) ORDER BY f.content_id"
    ).to_pylist()
    hashes: dict[str, str] = {}
    audio = []
    for row in rows:
        label = evasion_label(row["account_id"], by_account[row["account_id"]])
        for digest in row["pdq_hashes"] or ():
            hashes.setdefault(digest, label)
        if row["audio_fingerprint"]:
            audio.append((label, row["audio_fingerprint"]))
    if not hashes and not audio:
        return None
    return HashBank(tuple(hashes), tuple(hashes.values()), audio=tuple(audio))


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
