"""The review loop's decision code: the queue, verdicts, automation modes, the decision log."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import pytest

from enforcement.policy import PolicyError, decide, load_policy, parse_policy
from enforcement.review import (
    InvalidVerdict,
    ReviewOutcome,
    quality_sampled,
    queue_kind,
    review_item,
    verdict_consequences,
    verdict_entries,
    verdict_from_record,
)
from schemas import validate_row
from schemas.records import (
    AccountContext,
    FutureTimestamp,
    MediaInfo,
    ModalityScore,
    ScoredMedia,
    UploadEvent,
    format_timestamp,
)

POLICY = load_policy("policies/synthetic_media_v1.yaml")
UPLOADED = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)
REVIEWED = UPLOADED + dt.timedelta(hours=5)


def _item(content: float | None, content_id: str = "c1", high_profile: bool = False, surface: str = "feed"):
    event = UploadEvent(content_id, f"media/{content_id}.mp4", "acct", UPLOADED, "video", surface, "DE",
                        account=AccountContext(high_profile=high_profile))  # fmt: skip
    scores = () if content is None else (ModalityScore("visual", content, "visual_detector", "v1", signals="x +5.0"),)
    return ScoredMedia(event, "0" * 64, MediaInfo("video", "mp4"), ("visual",), scores, content, "fusion", "v1",
                       UPLOADED, content_score=content)  # fmt: skip


def _verdict(decision, verdict_action: str, review_id: str = "r1", **overrides):
    action = verdict_action
    record = {"review_id": review_id, "decision_id": decision.decision_id, "violating": action != "none",
              "category": "synthetic_media_undisclosed" if action != "none" else None, "action": action,
              "reviewer": "rev-17", "decided_at": REVIEWED.isoformat()} | overrides  # fmt: skip
    return verdict_from_record(record)


def _policy(**automation) -> object:
    """The shipped policy with the removal rule's automation replaced."""
    rules = tuple(
        dataclasses.replace(r, automation=dataclasses.replace(r.automation, **automation))
        if r.rule_id == "remove-content-certain"
        else r
        for r in POLICY.rules
    )
    return dataclasses.replace(POLICY, rules=rules)


def test_human_review_is_queued_with_its_proposal_shown_and_automated_removals_only_when_sampled():
    routed = decide(_item(0.9), POLICY)
    assert routed.action == "human_review" and queue_kind(routed, POLICY) == "routed"
    entry = review_item(_item(0.9), routed, POLICY)
    assert not entry.blind and entry.shown_action == "human_review"
    assert entry.due_at - entry.queued_at == dt.timedelta(hours=48)
    evidence = json.loads(entry.evidence)
    assert evidence["modalities"]["visual"] == {"score": 0.9, "model": "visual_detector@v1", "abstained": False,
                                                "abstain_reason": None, "signals": "x +5.0"}  # fmt: skip
    validate_row("review_queue", entry.to_row())
    every = _policy(sample_rate=1.0)
    removed = decide(_item(0.999), every)
    assert removed.action == "remove" and queue_kind(removed, every) == "quality_sample"
    sampled = review_item(_item(0.999), removed, every)
    assert sampled.blind and sampled.shown_action is None  # the reviewer does not see the removal
    assert queue_kind(removed, _policy(sample_rate=0.0)) is None
    assert (
        decide(_item(0.1), POLICY).action == "none"
        and review_item(_item(0.1), decide(_item(0.1), POLICY), POLICY) is None
    )


def test_the_quality_sample_is_stable_and_near_its_rate():
    ids = [f"d{i}" for i in range(20000)]
    picked = [i for i in ids if quality_sampled(i, 0.1)]
    assert picked == [i for i in ids if quality_sampled(i, 0.1)]  # the same on every run
    assert 0.09 < len(picked) / len(ids) < 0.11
    assert not any(quality_sampled(i, 0.0) for i in ids[:100])


def test_high_profile_items_come_first_and_severity_reach_and_score_order_the_rest():
    def priority(score, **kw):
        item = _item(score, **kw)
        return review_item(item, decide(item, POLICY), POLICY)

    famous = priority(0.88, high_profile=True)
    assert famous.priority > 1 > priority(0.95, surface="feed").priority > priority(0.95, surface="messaging").priority
    assert famous.due_at - famous.queued_at == dt.timedelta(hours=4)
    assert priority(0.95).priority > priority(0.87).priority


def test_a_shadow_rule_is_recorded_and_the_next_rule_decides():
    shadow = _policy(mode="shadow")
    decision = decide(_item(0.999), shadow)
    assert (decision.action, decision.rule_id) == ("human_review", "review-content")
    assert (decision.shadow_rule_id, decision.shadow_action) == ("remove-content-certain", "remove")
    assert decision.targets == POLICY.targets_for("human_review")


def test_a_sampled_rule_sends_its_items_to_review_blind_with_what_it_would_have_done():
    sampled = POLICY.with_modes({"remove-content-certain": "sampled"})
    decision = decide(_item(0.999), sampled)
    assert (decision.action, decision.proposed_action, decision.rule_id) == (
        "human_review", "remove", "remove-content-certain")  # fmt: skip
    assert "content_store" not in decision.targets and queue_kind(decision, sampled) == "sampled_rule"
    entry = review_item(_item(0.999), decision, sampled)
    assert entry.blind and entry.shown_action is None
    with pytest.raises(PolicyError, match="no rule with an automation section"):
        POLICY.with_modes({"review-content": "sampled"})


def test_a_verdict_on_a_routed_item_is_its_final_decision_partially_automated():
    routed = decide(_item(0.9), POLICY)
    verdict = _verdict(routed, "remove")
    done = verdict_consequences(ReviewOutcome(verdict, routed), POLICY)
    assert done.acts and done.strike_reversal is None
    decision = done.decision
    assert (decision.action, decision.automated_decision, decision.supersedes) == (
        "remove",
        "partially",
        routed.decision_id,
    )
    assert decision.decision_id != routed.decision_id and decision.decided_at == REVIEWED
    assert sorted(e.target for e in done.events) == sorted(POLICY.targets_for("remove"))
    assert {e.event_type for e in done.events} == {"enforce"}
    assert (done.label.label, done.label.source) == ("synthetic", "review_verdict")
    assert ReviewOutcome(verdict, routed).agrees is None  # nothing was automated to agree with
    validate_row("enforcement_decisions", decision.to_row())
    validate_row("reviews", ReviewOutcome(verdict, routed).to_row())


def test_a_blind_reviewer_who_disagrees_reverses_the_automated_removal_everywhere():
    removed = decide(_item(0.999), POLICY)
    outcome = ReviewOutcome(_verdict(removed, "none"), removed)
    done = verdict_consequences(outcome, POLICY)
    assert outcome.blind and outcome.agrees is False and outcome.machine_action == "remove"
    assert not done.acts and done.decision.action == "none" and done.decision.automated_decision == "not"
    assert sorted(e.target for e in done.events) == sorted(removed.targets)
    assert {e.event_type for e in done.events} == {"reverse"}
    assert all(json.loads(e.payload)["reason"] == "review verdict" for e in done.events)
    assert done.strike_reversal == (removed.account_id, (removed.decision_id, REVIEWED))
    assert done.label.label == "real"
    changes = [(e.change, e.actor_type, e.actor_id) for e in verdict_entries(outcome, done)]
    assert changes == [("review_verdict", "reviewer", "rev-17"), ("reversed_by_review", "reviewer", "rev-17")]
    for entry in verdict_entries(outcome, done):
        validate_row("decision_log", entry.to_row())


def test_a_blind_reviewer_who_agrees_sends_nothing_twice():
    removed = decide(_item(0.999), POLICY)
    outcome = ReviewOutcome(_verdict(removed, "remove"), removed)
    done = verdict_consequences(outcome, POLICY)
    assert outcome.agrees is True and not done.acts and done.events == [] and done.strike_reversal is None
    assert done.decision.targets == () and done.decision.action == "remove"


def test_a_blind_reviewer_who_chooses_a_milder_action_reverses_and_applies_it():
    removed = decide(_item(0.999), POLICY)
    outcome = ReviewOutcome(_verdict(removed, "label"), removed)
    done = verdict_consequences(outcome, POLICY)
    assert outcome.agrees is False  # the removal was harsher than the reviewer found warranted
    labelled = dataclasses.replace(removed, action="label", targets=POLICY.targets_for("label"))
    assert ReviewOutcome(_verdict(labelled, "remove"), labelled).agrees is True  # the label was warranted
    kinds = sorted((e.event_type, e.target) for e in done.events)
    assert kinds == sorted(
        [("reverse", t) for t in removed.targets] + [("enforce", t) for t in POLICY.targets_for("label")]
    )
    assert done.acts and done.decision.action == "label"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"review_id": ""}, "review_id: required"),
        ({"reviewer": "jane@example.com"}, "pseudonymous"),
        ({"violating": "maybe"}, "violating: expected true or false"),
        ({"action": "human_review"}, "action: expected one of"),
        ({"violating": True, "action": "none"}, "contradicts"),
        ({"category": None}, "category: required when violating"),
        ({"decided_at": "yesterday"}, "RFC 3339"),
    ],
)
def test_bad_verdicts_are_refused_with_the_field_named(overrides, message):
    removed = decide(_item(0.999), POLICY)
    with pytest.raises(InvalidVerdict, match=message):
        _verdict(removed, "remove", **overrides)


def test_a_verdict_dated_in_the_future_is_refused():
    removed = decide(_item(0.999), POLICY)
    with pytest.raises(FutureTimestamp, match=r"decided_at: .* is in the future"):
        _verdict(removed, "remove", decided_at=format_timestamp(dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)))


def test_csv_verdicts_read_true_and_false():
    removed = decide(_item(0.999), POLICY)
    assert _verdict(removed, "none", violating="false").violating is False


def _document(**rule) -> dict:
    return {"policy_id": "p", "version": "1", "targets": {"remove": ["content_store"]},
            "rules": [{"id": "r", "when": {"min_content_score": 0.9}, "action": "remove", **rule}, {"id": "default",
                      "action": "none"}]}  # fmt: skip


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (_document(automation={"mode": "autopilot"}), r"rules\[0\].automation.mode: expected one of"),
        (_document(automation={"sample_rate": 2}), r"rules\[0\].automation.sample_rate: expected a number"),
        (_document(automation={"min_samples": 0}), r"min_samples: expected a positive whole number"),
        (_document(automation={"mode": "shadow", "speed": 1}), r"automation.speed: unknown field"),
        (
            {
                **_document(),
                "rules": [
                    {"id": "r", "action": "human_review", "automation": {"mode": "enforce"}},
                    {"id": "d", "action": "none"},
                ],
            },
            "only a rule with a restrictive action",
        ),
        ({**_document(), "review": {"sla_hours": {"default": -1}}}, r"review.sla_hours.default: expected a positive"),
        ({**_document(), "review": {"sla_hours": {"urgent": 1}}}, r"review.sla_hours: expected hours per tier"),
        ({**_document(), "review": {"severity": {"x": 3}}}, r"review.severity.x: expected a number between 0 and 1"),
    ],
)
def test_a_wrong_automation_or_review_section_names_the_field(document, message):
    with pytest.raises(PolicyError, match=message):
        parse_policy(document)


def test_the_wilson_lower_bound_is_honest_at_small_counts():
    from enforcement.automation import wilson_lower_bound

    assert wilson_lower_bound(0, 0) == 0.0
    assert wilson_lower_bound(10, 10) == pytest.approx(0.7225, abs=1e-3)  # ten of ten is not certainty
    assert wilson_lower_bound(990, 1000) > 0.98
    assert wilson_lower_bound(45, 50) < 0.9 < 45 / 50 + 0.01


def test_agreement_is_measured_on_blind_verdicts_and_only_enforced_rules_fall_by_themselves():
    from enforcement.automation import downgrades, measure_agreement

    def rows(rule_id, agreeing, disagreeing, blind=True):
        return [{"rule_id": rule_id, "blind": blind, "machine_action": "remove", "agrees": agrees}
                for agrees in [True] * agreeing + [False] * disagreeing]  # fmt: skip

    policy = _policy(min_samples=20, target_precision=0.9)
    reviews = rows("remove-content-certain", 15, 10) + rows("remove-content-certain", 0, 50, blind=False)
    reviews += rows("declared-ai-label", 100, 0) + rows("provenance-ai-label", 3, 3)
    measured = {m.rule_id: m for m in measure_agreement(policy, reviews)}
    removal = measured["remove-content-certain"]
    assert (removal.samples, removal.agreements) == (25, 15)  # routed (not blind) verdicts do not count
    assert removal.recommended_mode == "sampled" and "lower bound" in removal.reason
    assert measured["declared-ai-label"].recommended_mode == "enforce"
    assert measured["provenance-ai-label"].recommended_mode == "enforce"  # 6 of 30 samples: not judged yet
    assert "6 of the 30 verdicts" in measured["provenance-ai-label"].reason
    assert set(downgrades(measured.values())) == {"remove-content-certain"}
    sampled = POLICY.with_modes({"remove-content-certain": "sampled"})
    assert not downgrades(measure_agreement(sampled, reviews))  # already sampled: nothing to downgrade


def test_demo_reviewers_answer_from_the_labels_with_valid_verdicts():
    from tools.sample_verdicts import sample_verdicts

    queue = [{"review_id": f"r{i}", "decision_id": f"d{i}", "content_id": f"c{i}", "category": None,
              "queued_at": UPLOADED, "due_at": UPLOADED + dt.timedelta(hours=48)} for i in range(3)]  # fmt: skip
    verdicts = sample_verdicts(queue, {"c0": "synthetic", "c1": "real"}, seed=1, now=UPLOADED + dt.timedelta(hours=1))
    parsed = [verdict_from_record(v) for v in verdicts]
    assert [(v.decision_id, v.violating, v.action) for v in parsed] == [("d0", True, "remove"), ("d1", False, "none")]
    assert all(UPLOADED < v.decided_at <= UPLOADED + dt.timedelta(hours=1) for v in parsed)  # never in the future
