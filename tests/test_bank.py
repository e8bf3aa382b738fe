"""What enters the bank of confirmed violations and what takes it out (enforcement/bank.py)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
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
    return Decision(f"d-{content}-{hours}", content, "a1", action, "synthetic_media", rule, "synthetic-media", "2.2.0",
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


def test_the_bank_goes_out_as_exchange_rows_and_comes_back_in_as_another_platforms_entries(policy, tmp_path):
    from pipelines.bank import read_bank
    from tools import bank as exchange
    from warehouse.embedded import write_catalog
    from warehouse.reader import open_reader

    from .conftest import seed_table

    kept, reversed_ = decision("c1", "human_review", "review", 1), decision("c2", "remove", "known-deepfake-remove", 2)
    changes = bank_changes([kept, dataclasses.replace(kept, decision_id="v1", action="remove", supersedes=kept.decision_id,
                                                      decided_at=T0 + dt.timedelta(hours=3)),
                            reversed_, dataclasses.replace(reversed_, decision_id="v2", action="label",
                                                           supersedes=reversed_.decision_id,
                                                           decided_at=T0 + dt.timedelta(hours=5))], [], policy)  # fmt: skip
    ours = tmp_path / "ours"
    seed_table(ours, "bank_changes", [{**c.to_row(), "run_id": "r1"} for c in changes])
    pictures = {"c1": ["1" * 64, "2" * 64], "c2": ["3" * 64]}
    seed_table(
        ours, "features", [{"content_id": c, "media_type": "video", "pdq_hashes": h} for c, h in pictures.items()]
    )
    write_catalog(str(ours))

    out = tmp_path / "shared.jsonl"
    assert exchange.run(["export", "--warehouse", str(ours), "--out", str(out), "--since", T0.isoformat()]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert {(r["signal"], r["status"]) for r in rows} == {("1" * 64, "active"), ("2" * 64, "active"),
                                                         ("3" * 64, "withdrawn")}  # fmt: skip
    assert {tuple(r["labels"]) for r in rows if r["status"] == "active"} == {("synthetic_media", REVIEWER_REMOVAL)}
    ours_named = {"c1", "c2", "a1", kept.decision_id, "v1", "v2"}
    assert not any(set(map(str, r.values())) & ours_named for r in rows)  # no id of this platform goes out
    # Before the reviewer's removal and the reversal, only the automated removal was banked.
    earlier = exchange.export_rows(open_reader(str(ours)), as_of=T0 + dt.timedelta(hours=2))
    assert [(r["signal"], r["status"], r["labels"]) for r in earlier] == [("3" * 64, "active",
                                                                         ["synthetic_media", AUTOMATED_REMOVAL])]  # fmt: skip

    theirs = tmp_path / "theirs"
    write_catalog(str(theirs))
    assert exchange.run(["import", "--warehouse", str(theirs), "--input", str(out), "--exchange", "partner"]) == 0
    bank = read_bank(open_reader(str(theirs)))
    (entry,) = {r["entry_id"] for r in rows if r["status"] == "active"}
    assert bank.match(("1" * 64,)) == (f"banked:imported:{entry}", 0)
    assert bank.match(("3" * 64,)) == (None, None)  # withdrawn: never entered
    # Importing it again adds nothing (same change ids); the partner's withdrawal takes it out.
    assert exchange.run(["import", "--warehouse", str(theirs), "--input", str(out), "--exchange", "partner"]) == 0
    assert len(open_reader(str(theirs)).query("select * from bank_changes")) == 2  # the active entry, the withdrawn one
    withdrawal = {**rows[0], "status": "withdrawn", "updated_at": (T0 + dt.timedelta(days=2)).isoformat()}
    (tmp_path / "withdrawn.jsonl").write_text(json.dumps(withdrawal) + "\n")
    assert exchange.run(["import", "--warehouse", str(theirs), "--input", str(tmp_path / "withdrawn.jsonl"),
                         "--exchange", "partner"]) == 0  # fmt: skip
    assert read_bank(open_reader(str(theirs))) is None


@pytest.mark.parametrize(("row", "message"), [
    ({"signal_type": "md5", "signal": "1" * 64, "entry_id": "e"}, "signal_type: expected one of"),
    ({"signal_type": "pdq", "signal": "xyz", "entry_id": "e"}, "signal: expected 64 hex digits"),
    ({"signal_type": "pdq", "signal": "1" * 64, "entry_id": "e", "lables": []}, "lables: unknown field (did you mean 'labels'?)"),
    ({"signal_type": "pdq", "signal": "1" * 64, "entry_id": "e", "status": "gone"}, "status: expected active or withdrawn"),
    ({"signal_type": "pdq", "signal": "1" * 64}, "entry_id: required"),
])  # fmt: skip
def test_an_exchange_row_that_is_not_one_is_refused_with_its_line(tmp_path, row, message):
    from tools import bank as exchange

    ok = {"signal_type": "pdq", "signal": "2" * 64, "entry_id": "ok", "updated_at": T0.isoformat()}
    with pytest.raises(ValueError, match=r"rows.jsonl:2: " + re.escape(message)):
        exchange.parse_rows([json.dumps(ok), json.dumps({"updated_at": T0.isoformat(), **row})], "rows.jsonl")
