"""The bank of confirmed violations as a job reads it at launch: the warehouse's decisions and
appeal outcomes folded into the items standing in the bank (`enforcement.bank`), each with the
PDQ hashes its features recorded, as a `HashBank` the graph matches uploads against.

A match's label names why the item is banked and the decision that banked it
(`banked:reviewer_removal:<decision_id>`), so the score row, the decision and its statement of
reasons can cite the original decision.
"""

from __future__ import annotations

import datetime as dt

from enforcement.appeals import Appeal, AppealOutcome, decision_from_row
from enforcement.bank import BANKED_ACTION, bank_as_of, bank_changes
from enforcement.policy import Policy
from schemas.records import parse_timestamp
from transforms.hashbank import HashBank
from warehouse.reader import WarehouseReader


def banked_label(reason: str, decision_id: str) -> str:
    return f"banked:{reason}:{decision_id}"


def read_bank(reader: WarehouseReader, policy: Policy, moment: dt.datetime | None = None) -> HashBank | None:
    """The items in the warehouse's bank at `moment` (default: now) with their hashes; None
    when it holds none."""
    # Only removals and reviewers' verdicts can change the bank (`bank_changes`): the rest of
    # the warehouse's decisions and appeals stay where they are.
    rows = reader.query("SELECT * FROM enforcement_decisions "
                        f"WHERE supersedes IS NOT NULL OR action = '{BANKED_ACTION}'").to_pylist()  # fmt: skip
    decisions = [decision_from_row(row) for row in rows]
    by_id = {decision.decision_id: decision for decision in decisions}
    appeals = [
        AppealOutcome(Appeal(row["decision_id"], row["outcome"], parse_timestamp(row["appeal_decided_at"],
                                                                                "appeal_decided_at")),
                      by_id[row["decision_id"]])
        for row in reader.query("SELECT decision_id, outcome, appeal_decided_at FROM appeals "
                                f"WHERE action = '{BANKED_ACTION}'").to_pylist()
        if row["decision_id"] in by_id
    ]  # fmt: skip
    standing = bank_as_of(bank_changes(decisions, appeals, policy), moment)
    if not standing:
        return None
    listed = ", ".join("'" + content_id.replace("'", "''") + "'" for content_id in sorted(standing))
    rows = reader.query(f"SELECT content_id, pdq_hashes FROM features WHERE content_id IN ({listed})").to_pylist()
    labelled: dict[str, str] = {}  # hash -> label; a content's features may be in several runs
    for row in rows:
        change = standing[row["content_id"]]
        for digest in row["pdq_hashes"] or ():
            labelled.setdefault(digest, banked_label(change.reason, change.decision_id))
    return HashBank(tuple(labelled), tuple(labelled.values())) if labelled else None


def warehouse_bank(warehouse: str, bigquery_endpoint: str | None, policy: Policy) -> HashBank | None:
    """`read_bank` of the warehouse a job writes; None for one with no tables yet."""
    from warehouse.reader import open_reader

    try:
        reader = open_reader(warehouse, bigquery_endpoint)
    except FileNotFoundError:  # an embedded warehouse no job has written yet
        return None
    from google.api_core.exceptions import NotFound

    try:
        return read_bank(reader, policy)
    except NotFound:  # a BigQuery dataset whose tables no job has created yet
        return None
