"""The bank of confirmed violations: which decisions put an item in, which take it out.

Meta's Hasher-Matcher-Actioner keeps banks fed by a platform's own confirmed decisions; here
the decisions already in the warehouse say what is confirmed:

* an automated removal by a rule the policy lets bank (`bank: true` on the rule: one whose
  removals reviewers uphold);
* a reviewer's verdict that removes (a decision that `supersedes` the one it reviewed);
* an appeal upheld against a removal;

and what is reversed, which takes the item out again:

* a reviewer's verdict that does not remove (the reviewer disagreed with an automated removal,
  or found a queued item not violating);
* an appeal overturned.

Every change is kept with the decision that made it, so the bank as of any moment is the fold
of the changes up to it, the newest per item standing (`bank_as_of`). A near-duplicate of a
reversed item matches nothing, since the item is no longer in the bank.

Plain Python on the decision records: no Beam, no media, no hashes here (the entries' hashes
come from the `features` rows of the same content).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

from enforcement.appeals import AppealOutcome
from enforcement.policy import Policy
from schemas.records import Decision, parse_timestamp
from schemas.version import PIPELINE_VERSION

BANKED_ACTION = "remove"
ADD, REMOVE = "add", "remove"
# Why an item entered or left the bank.
AUTOMATED_REMOVAL, REVIEWER_REMOVAL, APPEAL_UPHELD = "automated_removal", "reviewer_removal", "appeal_upheld"
REVIEWER_REVERSAL, APPEAL_OVERTURNED = "reviewer_reversal", "appeal_overturned"


# Where a change comes from: the warehouse's own decisions, or an exchange it imported.
OWN_DECISIONS = "decisions"
IMPORTED, IMPORT_WITHDRAWN = "imported", "import_withdrawn"


@dataclasses.dataclass(frozen=True)
class BankChange:
    """One item entering or leaving the bank, with the decision that made it so: a row of
    the `bank_changes` table. The warehouse's own entries take their hashes from the item's
    features; an imported one carries them (`pdq_hashes`, `audio_fingerprint`)."""

    content_id: str
    change: str  # ADD or REMOVE
    reason: str
    decision_id: str  # the decision banked or reversed
    category: str | None
    at: dt.datetime
    account_id: str | None = None
    source: str = OWN_DECISIONS
    pdq_hashes: tuple[str, ...] = ()
    audio_fingerprint: bytes | None = None

    @property
    def change_id(self) -> str:
        key = f"{self.source}:{self.content_id}:{self.change}:{self.reason}:{self.decision_id}"
        return hashlib.sha256(key.encode()).hexdigest()[:32]

    def to_row(self) -> dict[str, Any]:
        return {
            "change_id": self.change_id,
            "content_id": self.content_id,
            "account_id": self.account_id,
            "change": self.change,
            "reason": self.reason,
            "decision_id": self.decision_id,
            "category": self.category,
            "changed_at": self.at,
            "source": self.source,
            "pdq_hashes": list(self.pdq_hashes),
            "audio_fingerprint": self.audio_fingerprint,
            "pipeline_version": PIPELINE_VERSION,
        }

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> BankChange:
        return cls(row["content_id"], row["change"], row["reason"], row["decision_id"], row.get("category"),
                   parse_timestamp(row["changed_at"], "changed_at"), row.get("account_id"),
                   row.get("source") or OWN_DECISIONS, tuple(row.get("pdq_hashes") or ()),
                   row.get("audio_fingerprint"))  # fmt: skip


def bankable_rules(policy: Policy) -> frozenset[str]:
    return frozenset(rule.rule_id for rule in policy.rules if rule.bank)


def decision_change(decision: Decision, banking: frozenset[str]) -> BankChange | None:
    """What a decision does to the bank: a reviewer's verdict adds its item (removed) or takes
    it out (anything else); an automated removal by a rule in `banking` adds it."""
    if decision.supersedes is not None:  # a reviewer's verdict on an earlier decision
        removes = decision.action == BANKED_ACTION
        return BankChange(decision.content_id, ADD if removes else REMOVE,
                          REVIEWER_REMOVAL if removes else REVIEWER_REVERSAL, decision.decision_id,
                          decision.category, decision.decided_at, decision.account_id)  # fmt: skip
    if decision.action == BANKED_ACTION and decision.rule_id in banking:
        return BankChange(decision.content_id, ADD, AUTOMATED_REMOVAL, decision.decision_id, decision.category,
                          decision.decided_at, decision.account_id)  # fmt: skip
    return None


def appeal_change(outcome: AppealOutcome) -> BankChange | None:
    """What an appeal outcome does to the bank: only removals are banked, so only their
    appeals change it (upheld adds, overturned takes out)."""
    appealed = outcome.decision
    if appealed.action != BANKED_ACTION:
        return None
    upheld = not outcome.overturned
    return BankChange(appealed.content_id, ADD if upheld else REMOVE, APPEAL_UPHELD if upheld else APPEAL_OVERTURNED,
                      appealed.decision_id, appealed.category, outcome.appeal.decided_at,
                      appealed.account_id)  # fmt: skip


def bank_changes(decisions: Iterable[Decision], appeals: Iterable[AppealOutcome],
                 policy: Policy) -> list[BankChange]:  # fmt: skip
    """Every change the decisions and appeal outcomes (each joined to its decision) make to
    the bank, oldest first."""
    banking = bankable_rules(policy)
    changes = [decision_change(d, banking) for d in decisions] + [appeal_change(o) for o in appeals]
    return sorted((c for c in changes if c is not None), key=_fold_order)


def _fold_order(change: BankChange) -> tuple:
    # On a tie the reversal stands: an appeal decided in the same second as the removal undoes it.
    return change.at, change.change == REMOVE, change.content_id


def bank_as_of(changes: Iterable[BankChange], moment: dt.datetime | None = None) -> dict[str, BankChange]:
    """The items in the bank at `moment` (default: after every change), each with the change
    that put it there."""
    standing: dict[str, BankChange] = {}
    for change in sorted(changes, key=_fold_order):
        if moment is not None and change.at > moment:
            break
        standing[change.content_id] = change
    return {content_id: change for content_id, change in standing.items() if change.change == ADD}
