"""Appeals: overturned decisions are reversed downstream, lose their strike, relabel the item."""

from __future__ import annotations

import datetime as dt
import json

import apache_beam as beam
import pytest
from apache_beam.testing.util import assert_that, equal_to

from enforcement.appeals import Appeal, AppealOutcome, InvalidAppeal, decision_from_row
from schemas import validate_row
from schemas.records import FutureTimestamp, format_timestamp, parse_timestamp
from transforms.appeals import ApplyAppeals, SkipRecordedAppeals, parse_appeal
from transforms.parse import RawRow
from transforms.strikes import UpdateStrikeLedger

from .conftest import batch_pipeline
from .test_strikes import POLICY, decision

LATER = dt.datetime(2026, 2, 1, tzinfo=dt.UTC)


def _decision_with_targets(action: str, day: int, account: str = "a1"):
    import dataclasses

    return dataclasses.replace(decision(action, day, account=account), targets=("content_store", "notifications"))


def test_appeal_rows_are_validated_naming_the_field():
    ok = parse_appeal(RawRow("a", text=json.dumps({"decision_id": "d1", "outcome": "overturned",
                                                   "decided_at": "2026-02-01T00:00:00Z"})))  # fmt: skip
    assert (ok.decision_id, ok.outcome) == ("d1", "overturned")
    for record, message in [
        ({"outcome": "upheld", "decided_at": "2026-02-01T00:00:00Z"}, "decision_id: required"),
        ({"decision_id": "d1", "outcome": "maybe", "decided_at": "2026-02-01T00:00:00Z"}, "outcome: expected"),
        ({"decision_id": "d1", "outcome": "upheld", "decided_at": "later"}, "decided_at"),
    ]:
        with pytest.raises(InvalidAppeal, match=message):
            parse_appeal(RawRow("a", record=record))


def test_an_appeal_decided_in_the_future_is_refused():
    tomorrow = format_timestamp(dt.datetime.now(dt.UTC) + dt.timedelta(days=1))
    with pytest.raises(FutureTimestamp, match=r"decided_at: .* is in the future"):
        parse_appeal(RawRow("a", record={"decision_id": "d1", "outcome": "upheld", "decided_at": tomorrow}))


def test_an_appeal_may_say_when_it_was_lodged_never_after_its_outcome():
    base = {"decision_id": "d1", "outcome": "upheld", "decided_at": "2026-11-03T12:00:00Z"}
    lodged = parse_appeal(RawRow("a", record={**base, "submitted_at": "2026-11-02T08:00:00Z"}))
    assert lodged.submitted_at == dt.datetime(2026, 11, 2, 8, tzinfo=dt.UTC)
    assert parse_appeal(RawRow("a", record={**base, "submitted_at": ""})).submitted_at is None
    assert json.loads(lodged.to_json())["submitted_at"].startswith("2026-11-02T08:00")
    for bad, message in (("2026-11-04T00:00:00Z", "submitted_at: .* is after the outcome"), ("soon", "submitted_at")):
        with pytest.raises(InvalidAppeal, match=message):
            parse_appeal(RawRow("a", record={**base, "submitted_at": bad}))


def test_decisions_round_trip_through_their_table_row():
    original = _decision_with_targets("remove", 0)
    assert decision_from_row(validate_row("enforcement_decisions", original.to_row())) == original


def test_overturned_appeal_reverses_each_target_and_relabels_upheld_changes_nothing():
    removed, labelled = _decision_with_targets("remove", 0), _decision_with_targets("label", 1)
    appeals = [Appeal(removed.decision_id, "overturned", LATER), Appeal(labelled.decision_id, "upheld", LATER),
               Appeal("no-such-decision", "overturned", LATER)]  # fmt: skip
    with batch_pipeline() as p:
        out = {"appeals": p | "A" >> beam.Create(appeals), "decisions": p | "D" >> beam.Create([removed, labelled])}
        applied = out | ApplyAppeals()
        assert_that(applied["reversals"] | "R" >> beam.Map(lambda e: (e.target, e.event_type, e.decision_id)),
                    equal_to([("content_store", "reverse", removed.decision_id),
                              ("notifications", "reverse", removed.decision_id)]), label="reversals")  # fmt: skip
        assert_that(applied["labels"] | "L" >> beam.Map(lambda r: (r.content_id, r.label)),
                    equal_to([(removed.content_id, "real")]), label="labels")  # fmt: skip
        assert_that(applied["outcomes"] | "O" >> beam.Map(lambda o: o.appeal.outcome),
                    equal_to(["overturned", "upheld"]), label="outcomes")  # fmt: skip
        assert_that(applied["dead_letters"] | "X" >> beam.Map(lambda d: (d.step, d.error_type)),
                    equal_to([("apply_appeals", "LookupError")]), label="unknown")  # fmt: skip


def test_an_appeal_is_applied_once_repeats_are_skipped_with_a_reason():
    new, recorded = Appeal("d1", "overturned", LATER), Appeal("d2", "upheld", LATER)
    with batch_pipeline() as p:
        kept, repeats = {
            "appeals": p | "A" >> beam.Create([new, new, recorded]),
            "recorded": p | "R" >> beam.Create([{"appeal_id": recorded.appeal_id, "outcome": "upheld"}]),
        } | SkipRecordedAppeals()
        assert_that(kept, equal_to([new]), label="kept")
        assert_that(repeats | beam.Map(lambda d: (d.step, d.disposition, d.error_type, "already in" in d.error)),
                    equal_to([("dedupe_appeals", "skipped", "duplicate_appeal", False),
                              ("dedupe_appeals", "skipped", "duplicate_appeal", True)]), label="skipped")  # fmt: skip


def test_an_overturn_takes_the_strike_back_in_the_ledger():
    from enforcement.strikes import strike_for

    first, second = decision("remove", 0), decision("remove", 1)
    prior = [strike_for(first, POLICY), strike_for(second, POLICY)]
    with batch_pipeline() as p:
        ledger, _, _ = {
            "prior": p | "P" >> beam.Create(prior),
            "decisions": p | "D" >> beam.Create([]),
            "reversals": p | "R" >> beam.Create([("a1", (first.decision_id, LATER))]),
        } | UpdateStrikeLedger(POLICY)
        assert_that(ledger | beam.Map(lambda s: (s.decision_id, s.reversed_at)),
                    equal_to([(first.decision_id, LATER), (second.decision_id, None)]))  # fmt: skip


def test_appeal_rows_fit_their_table():
    removed = _decision_with_targets("remove", 0)
    validate_row("appeals", AppealOutcome(Appeal(removed.decision_id, "overturned", LATER), removed).to_row())


def test_sampled_appeals_overturn_exactly_the_real_items_and_are_reproducible():
    from tools.sample_appeals import sample_appeals

    decided = dt.datetime(2026, 11, 2, tzinfo=dt.UTC)
    decisions = [(f"d{i}", f"c{i}", decided) for i in range(40)]
    labels = {f"c{i}": "real" if i % 4 == 0 else "synthetic" for i in range(40)}
    now = decided + dt.timedelta(days=30)
    everything = sample_appeals(decisions, labels, share=1.0, seed=3, now=now)
    assert [r["decision_id"] for r in everything] == sorted(d for d, _, _ in decisions)
    assert all((r["outcome"] == "overturned") == (int(r["decision_id"][1:]) % 4 == 0) for r in everything)
    for row in everything:
        appeal = parse_appeal(RawRow(source="s", text=json.dumps(row)))
        assert decided + dt.timedelta(hours=2) <= appeal.decided_at <= decided + dt.timedelta(hours=72)
    some = sample_appeals(decisions, labels, share=0.5, seed=3, now=now)
    assert 5 < len(some) < 35 and some == sample_appeals(decisions, labels, share=0.5, seed=3, now=now)
    assert sample_appeals(decisions, None, share=0.0, seed=3, now=now) == []
    # Decided an hour ago: no appeal is dated after now.
    recent = sample_appeals(decisions, labels, share=1.0, seed=3, now=decided + dt.timedelta(hours=1))
    assert max(parse_timestamp(r["decided_at"], "t") for r in recent) <= decided + dt.timedelta(hours=1)
