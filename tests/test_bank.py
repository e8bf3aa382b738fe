"""What enters the bank of confirmed violations and what takes it out (enforcement/bank.py)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pytest
import yaml

from enforcement.appeals import Appeal, AppealOutcome
from enforcement.bank import (
    ADD,
    APPEAL_OVERTURNED,
    APPEAL_UPHELD,
    AUTOMATED_REMOVAL,
    REMOVE,
    REVIEWER_REMOVAL,
    REVIEWER_REVERSAL,
    bank_as_of,
    bank_changes,
    bankable_rules,
)
from enforcement.policy import PolicyError, load_policy
from schemas.records import Decision

ROOT = Path(__file__).resolve().parents[1]
T0 = dt.datetime(2026, 11, 2, 12, tzinfo=dt.UTC)


@pytest.fixture
def policy(tmp_path):
    """The shipped policy with its hash-match removal rule banking."""
    document = yaml.safe_load((ROOT / "policies" / "synthetic_media_v1.yaml").read_text())
    for rule in document["rules"]:
        if rule["id"] == "known-deepfake-remove":
            rule["bank"] = True
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(document))
    return load_policy(path)


def decision(content: str, action: str, rule: str, hours: float, supersedes: str | None = None) -> Decision:
    at = T0 + dt.timedelta(hours=hours)
    return Decision(f"d-{content}-{hours}", content, "a1", action, "synthetic_media", rule, "synthetic-media", "2.1.0",
                    0.99, "automated", "fully", "video", None, None, T0, at, (), supersedes=supersedes)  # fmt: skip


def appeal(of: Decision, outcome: str, hours: float) -> AppealOutcome:
    return AppealOutcome(Appeal(of.decision_id, outcome, T0 + dt.timedelta(hours=hours)), of)


def test_only_the_rules_the_policy_lets_bank_bank_their_removals(policy):
    assert bankable_rules(policy) == {"known-deepfake-remove"}
    removed = decision("c1", "remove", "known-deepfake-remove", 1)
    other_rule = decision("c2", "remove", "remove-content-certain", 1)
    labelled = decision("c3", "label", "declared-ai-label", 1)
    changes = bank_changes([removed, other_rule, labelled], [], policy)
    assert [(c.content_id, c.change, c.reason, c.decision_id) for c in changes] == [
        ("c1", ADD, AUTOMATED_REMOVAL, removed.decision_id)
    ]


def test_a_reviewer_banks_what_the_detectors_let_through_and_reverses_what_they_removed(policy):
    queued = decision("c1", "human_review", "review-content", 1)
    confirmed = decision("c1", "remove", "reviewer", 3, supersedes=queued.decision_id)
    auto = decision("c2", "remove", "known-deepfake-remove", 1)
    disagreed = decision("c2", "none", "reviewer", 4, supersedes=auto.decision_id)
    changes = bank_changes([queued, confirmed, auto, disagreed], [], policy)
    assert [(c.content_id, c.change, c.reason) for c in changes] == [
        ("c2", ADD, AUTOMATED_REMOVAL), ("c1", ADD, REVIEWER_REMOVAL), ("c2", REMOVE, REVIEWER_REVERSAL),
    ]  # fmt: skip
    assert set(bank_as_of(changes)) == {"c1"}
    assert set(bank_as_of(changes, T0 + dt.timedelta(hours=3, minutes=30))) == {"c1", "c2"}
    assert set(bank_as_of(changes, T0)) == set()


def test_appeals_confirm_or_reverse_removals_only(policy):
    removed = decision("c1", "remove", "remove-content-certain", 1)  # not banked by itself
    also = decision("c2", "remove", "known-deepfake-remove", 1)
    labelled = decision("c3", "label", "declared-ai-label", 1)
    outcomes = [appeal(removed, "upheld", 5), appeal(also, "overturned", 6), appeal(labelled, "overturned", 6)]
    changes = bank_changes([removed, also, labelled], outcomes, policy)
    assert [(c.content_id, c.change, c.reason) for c in changes] == [
        ("c2", ADD, AUTOMATED_REMOVAL), ("c1", ADD, APPEAL_UPHELD), ("c2", REMOVE, APPEAL_OVERTURNED),
    ]  # fmt: skip
    assert {content: change.reason for content, change in bank_as_of(changes).items()} == {"c1": APPEAL_UPHELD}


def test_a_reversal_in_the_same_second_stands(policy):
    auto = decision("c1", "remove", "known-deepfake-remove", 1)
    same_time = dataclasses.replace(decision("c1", "none", "reviewer", 1, supersedes=auto.decision_id),
                                    decision_id="verdict")  # fmt: skip
    assert bank_as_of(bank_changes([same_time, auto], [], policy)) == {}


def test_the_policy_refuses_a_bank_key_it_cannot_honour(tmp_path):
    document = yaml.safe_load((ROOT / "policies" / "synthetic_media_v1.yaml").read_text())
    document["rules"][0]["bank"] = "yes"
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(document))
    with pytest.raises(PolicyError, match=r"rules\[0\]\.bank: expected true or false"):
        load_policy(tmp_path / "p.yaml")
    labelling = next(i for i, rule in enumerate(document["rules"]) if rule["action"] == "label")
    document["rules"][0].pop("bank")
    document["rules"][labelling]["bank"] = True
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(document))
    with pytest.raises(PolicyError, match=rf"rules\[{labelling}\]\.bank: only a remove rule"):
        load_policy(tmp_path / "p.yaml")
