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
from collections.abc import Iterable

from enforcement.appeals import AppealOutcome
from enforcement.policy import Policy
from schemas.records import Decision

BANKED_ACTION = "remove"
ADD, REMOVE = "add", "remove"
# Why an item entered or left the bank.
AUTOMATED_REMOVAL, REVIEWER_REMOVAL, APPEAL_UPHELD = "automated_removal", "reviewer_removal", "appeal_upheld"
REVIEWER_REVERSAL, APPEAL_OVERTURNED = "reviewer_reversal", "appeal_overturned"


@dataclasses.dataclass(frozen=True)
class BankChange:
    """One item entering or leaving the bank, with the decision that made it so."""

    content_id: str
    change: str  # ADD or REMOVE
    reason: str
    decision_id: str  # the decision banked or reversed
    category: str | None
    at: dt.datetime


def bankable_rules(policy: Policy) -> frozenset[str]:
    return frozenset(rule.rule_id for rule in policy.rules if rule.bank)


def bank_changes(decisions: Iterable[Decision], appeals: Iterable[AppealOutcome],
                 policy: Policy) -> list[BankChange]:  # fmt: skip
    """Every change the decisions and appeal outcomes (each joined to its decision) make to
    the bank, oldest first."""
    banking = bankable_rules(policy)
    changes = []
    for decision in decisions:
        if decision.supersedes is not None:  # a reviewer's verdict on an earlier decision
            removes = decision.action == BANKED_ACTION
            changes.append(BankChange(decision.content_id, ADD if removes else REMOVE,
                                      REVIEWER_REMOVAL if removes else REVIEWER_REVERSAL, decision.decision_id,
                                      decision.category, decision.decided_at))  # fmt: skip
        elif decision.action == BANKED_ACTION and decision.rule_id in banking:
            changes.append(BankChange(decision.content_id, ADD, AUTOMATED_REMOVAL, decision.decision_id,
                                      decision.category, decision.decided_at))  # fmt: skip
    for outcome in appeals:
        appealed = outcome.decision
        if appealed.action != BANKED_ACTION:
            continue  # only removals are banked, so only their appeals change the bank
        upheld = not outcome.overturned
        changes.append(BankChange(appealed.content_id, ADD if upheld else REMOVE,
                                  APPEAL_UPHELD if upheld else APPEAL_OVERTURNED, appealed.decision_id,
                                  appealed.category, outcome.appeal.decided_at))  # fmt: skip
    # On a tie the reversal stands: an appeal decided in the same second as the removal undoes it.
    return sorted(changes, key=lambda c: (c.at, c.change == REMOVE, c.content_id))


def bank_as_of(changes: Iterable[BankChange], moment: dt.datetime | None = None) -> dict[str, BankChange]:
    """The items in the bank at `moment` (default: after every change), each with the change
    that put it there."""
    standing: dict[str, BankChange] = {}
    for change in sorted(changes, key=lambda c: (c.at, c.change == REMOVE)):
        if moment is not None and change.at > moment:
            break
        standing[change.content_id] = change
    return {content_id: change for content_id, change in standing.items() if change.change == ADD}
