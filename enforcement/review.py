"""The review loop's decision code: what reaches people, and what their verdicts do. No Beam.

What reaches the queue:
* every `human_review` decision, with what the machine proposes shown (`blind` false);
* a decision of a rule in `sampled` mode: the rule's restrictive action is not carried out,
  the item goes to review instead, blind (the reviewer does not see what the rule proposed);
* a quality sample of the automated restrictive decisions (`label`, `reduce_reach`, `remove`)
  of rules in `enforce` mode, at the rule's `automation.sample_rate`, blind. The sample is a
  hash of the decision id, so a rerun samples the same decisions;
* one item per campaign (`campaign_review_item`): uploads whose media match across accounts
  are reviewed once as a whole. Its verdict names the campaign and is applied to each member's
  decision as that member's own verdict (`campaign_member_verdicts`): a decision, a statement
  of reasons and a strike per member, and the members' own queue rows answered with it.

Priority is the category's severity x the item's strongest score x its surface's reach (all
from the policy's `review` section), plus 1 for a high-profile account, which is how
high-profile items come first. The due time counts the tier's SLA from the notice, or else
from the upload (event time, so a rerun queues the same row).

A verdict (`Verdict`) is the final decision of the item: a decision of its own (`supersedes`
names the decision reviewed; `automated_decision` is `partially` where the reviewer saw the
machine's proposal and `not` where the review was blind), with the events, statement and
strike of its action. Where a reviewer disagrees with an automated action that was carried
out, that action is reversed on every target it reached and its strike taken back; where the
reviewer chooses the same action, the decision stands and nothing is sent twice. Every verdict labels
the item for retraining, and each blind verdict is one sample of its rule's agreement with
reviewers (`enforcement.automation`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from enforcement.appeals import RetrainingLabel
from enforcement.events import enforcement_events
from enforcement.ids import stable_id
from enforcement.policy_sections import RESTRICTIVE_ACTIONS, VERDICT_ACTIONS
from schemas.records import Decision, EnforcementEvent, ScoredMedia, not_in_future, parse_timestamp
from schemas.version import PIPELINE_VERSION
from schemas.vocabulary import NOTICE_SOURCES

if TYPE_CHECKING:
    from enforcement.policy import Policy
    from transforms.campaigns import Campaign

VERDICT_FIELDS = frozenset(("review_id", "decision_id", "campaign_id", "violating", "category", "action", "reviewer",
                            "decided_at"))  # fmt: skip


class InvalidVerdict(ValueError):
    """A verdict row that does not meet the contract; the message names the field."""

    reason = "invalid_verdict"


def quality_sampled(decision_id: str, rate: float) -> bool:
    """Whether a decision falls in a `rate` quality sample: a hash of its id, so stable."""
    return rate > 0 and int(stable_id(decision_id, "quality_sample")[:15], 16) < rate * 16**15


def queue_kind(decision: Decision, policy: Policy) -> str | None:
    """Why a decision reaches the review queue (`QUEUE_KINDS`), or None when it does not."""
    if decision.action == "human_review":
        return "sampled_rule" if decision.proposed_action else "routed"
    if decision.action in RESTRICTIVE_ACTIONS and decision.automated_decision == "fully":
        automation = policy.automation_of(decision.rule_id)
        if automation is not None and quality_sampled(decision.decision_id, automation.sample_rate):
            return "quality_sample"
    return None


def review_id_of(decision_id: str) -> str:
    """The id of a decision's own queue row (what a verdict on it names)."""
    return stable_id(decision_id, "review")


def reviewed_blind(decision: Decision) -> bool:
    """Whether the reviewer of `decision` is not shown what the automation did or proposed:
    every queued decision but a review rule's (a quality sample, a `sampled` rule's item)."""
    return decision.action != "human_review" or bool(decision.proposed_action)


def machine_action(decision: Decision) -> str | None:
    """What the automation meant to do with an item: the restrictive action it carried out, or
    the one a `sampled` rule proposed; None for an item routed to people by a review rule."""
    if decision.proposed_action:
        return decision.proposed_action
    return decision.action if decision.action in RESTRICTIVE_ACTIONS else None


@dataclasses.dataclass(frozen=True)
class ReviewItem:
    """One row of the `review_queue` table: what a reviewer opens."""

    review_id: str
    decision_id: str
    content_id: str
    account_id: str
    media_uri: str
    media_type: str
    queue: str  # QUEUE_KINDS
    blind: bool  # the reviewer is not shown what the automation did or proposed
    shown_action: str | None  # the action shown to the reviewer (None when blind)
    rule_id: str
    category: str | None
    policy_id: str
    policy_version: str
    priority: float
    high_profile: bool
    queued_at: dt.datetime  # event time: the notice, else the upload
    due_at: dt.datetime
    fused_score: float | None
    content_score: float | None
    evidence: str  # JSON: per-modality scores and versions, signals, provenance, hash match
    contact_sheet: str | None = None  # PNG of the sampled frames (visual items)
    # The second-opinion model's answer (`models.second_opinion`), where one is deployed: advice only.
    second_opinion: float | None = None
    second_opinion_rationale: str | None = None
    second_opinion_model: str | None = None
    # A campaign's one item: the campaign, and the decisions on its members the verdict covers.
    campaign_id: str | None = None
    campaign_members: tuple[str, ...] = ()

    def to_row(self) -> dict[str, Any]:
        return dataclasses.asdict(self) | {"campaign_members": list(self.campaign_members),
                                           "pipeline_version": PIPELINE_VERSION}  # fmt: skip


def _evidence(item: ScoredMedia) -> dict[str, Any]:
    info, event = item.info, item.event
    return {
        "modalities": {
            s.modality: {
                "score": round(s.score, 4),
                "model": f"{s.model_name}@{s.model_version}",
                "abstained": s.abstained,
                "abstain_reason": s.abstain_reason,
                "signals": s.signals,
            }
            for s in item.scores
        },
        "fused_score": item.fused_score,
        "content_score": item.content_score,
        "provenance": {
            "declared_ai": event.declared_ai,
            "digital_source_type": info.digital_source_type,
            "encoder": info.encoder,
            "software": info.exif_software,
            "camera": " ".join(filter(None, (info.exif_make, info.exif_model))) or None,
        },
        "hash_match": item.hash_match,
        "hash_distance": item.hash_distance,
        "evasion_match": item.evasion_match,
        "detection_method": event.detection_method,
        "notice_source": event.notice.source if event.notice is not None else None,
    }


def review_item(item: ScoredMedia, decision: Decision, policy: Policy) -> ReviewItem | None:
    """The queue row for a decision that reaches review, or None."""
    kind = queue_kind(decision, policy)
    if kind is None:
        return None
    settings, event = policy.review, item.event
    high_profile = bool(event.high_profile)
    tier = (
        "high_profile"
        if high_profile
        else "notice"
        if event.detection_method in NOTICE_SOURCES
        else "quality_sample"
        if kind == "quality_sample"
        else "default"
    )
    scores = [s for s in (item.content_score, item.fused_score) if s is not None]
    priority = (
        settings.severity.get(decision.category or "", 0.5)
        * (max(scores) if scores else 0.0)
        * settings.reach.get(event.surface or "", settings.reach.get("default", 0.5))
    )
    queued_at = event.notice.received_at if event.notice is not None and event.notice.received_at else None
    queued_at = queued_at or event.uploaded_at
    blind = reviewed_blind(decision)
    return ReviewItem(
        review_id=review_id_of(decision.decision_id),
        decision_id=decision.decision_id,
        content_id=decision.content_id,
        account_id=decision.account_id,
        media_uri=event.media_uri,
        media_type=decision.media_type,
        queue=kind,
        blind=blind,
        shown_action=None if blind else decision.action,
        rule_id=decision.rule_id,
        category=decision.category,
        policy_id=decision.policy_id,
        policy_version=decision.policy_version,
        priority=round(priority + (1.0 if high_profile else 0.0), 6),
        high_profile=high_profile,
        queued_at=queued_at,
        due_at=queued_at + settings.sla(tier),
        fused_score=item.fused_score,
        content_score=item.content_score,
        evidence=json.dumps(_evidence(item), sort_keys=True, default=str),
    )


# A campaign's item comes before any single item of the same evidence (those reach at most 1,
# or 2 for a high-profile account).
CAMPAIGN_PRIORITY = 2.0


def campaign_review_item(campaign: Campaign, policy: Policy) -> ReviewItem:
    """The one queue row of a campaign (`transforms.campaigns`): what the reviewer opens is its
    strongest member with every member listed in the evidence; the verdict on it is applied to
    each member's decision (`campaign_member_verdicts`)."""
    strongest = campaign.strongest
    evidence = {
        "campaign": {
            "members": list(campaign.members),
            "accounts": list(campaign.accounts),
            "links": campaign.links,
            "first_seen": campaign.first_seen.isoformat(),
            "last_seen": campaign.last_seen.isoformat(),
            "strongest_member": campaign.strongest_member,
            "strongest_evidence": campaign.strongest_evidence,
        }
    }
    return ReviewItem(
        review_id=campaign.review_id,
        decision_id=campaign.member_decisions[campaign.members.index(campaign.strongest_member)],
        content_id=campaign.strongest_member,
        account_id=strongest.account_id,
        media_uri=strongest.media_uri,
        media_type=strongest.media_type,
        queue="campaign",
        blind=False,
        shown_action=None,
        rule_id="campaigns",
        category=None,
        policy_id=campaign.policy_id,
        policy_version=campaign.policy_version,
        priority=round(CAMPAIGN_PRIORITY + campaign.strongest_evidence, 6),
        high_profile=False,
        queued_at=campaign.last_seen,
        due_at=campaign.last_seen + policy.review.sla("campaign"),
        fused_score=None,
        content_score=None,
        evidence=json.dumps(evidence, sort_keys=True),
        campaign_id=campaign.campaign_id,
        campaign_members=campaign.member_decisions,
    )


@dataclasses.dataclass(frozen=True)
class Verdict:
    """A reviewer's answer for one queued decision, or for a whole campaign (`campaign_id`)."""

    review_id: str
    decision_id: str  # "" for a campaign's verdict until it is applied to each member
    violating: bool
    category: str | None
    action: str
    reviewer: str  # pseudonymous
    decided_at: dt.datetime
    campaign_id: str | None = None

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True, default=str)


def verdict_from_record(record: Any) -> Verdict:
    """Validates one verdict: `review_id`, `decision_id` (or, for a campaign's item,
    `campaign_id`: the verdict is then applied to every member), `violating` (true/false),
    `category` (when violating), `action` (none, label, reduce_reach, remove; none when not
    violating), `reviewer` (a pseudonymous id, never an e-mail address) and `decided_at`
    (RFC 3339).

    Raises:
        InvalidVerdict: names the field and what was expected.
    """
    if not isinstance(record, Mapping):
        raise InvalidVerdict("expected a JSON object")
    unknown = sorted(set(record) - VERDICT_FIELDS)
    if unknown:
        raise InvalidVerdict(f"{unknown[0]}: not a verdict field (expected {sorted(VERDICT_FIELDS)})")
    campaign_id = record.get("campaign_id")
    if campaign_id is not None and (not isinstance(campaign_id, str) or not campaign_id.strip()):
        raise InvalidVerdict("campaign_id: expected a campaign's id")
    fields = {"decision_id": ""} if campaign_id else {}
    for name in ("review_id", "reviewer") if campaign_id else ("review_id", "decision_id", "reviewer"):
        value = record.get(name)
        if not isinstance(value, str) or not value.strip():
            raise InvalidVerdict(f"{name}: required")
        fields[name] = value.strip()
    if "@" in fields["reviewer"]:
        raise InvalidVerdict("reviewer: expected a pseudonymous id, got what looks like an e-mail address")
    violating = record.get("violating")
    if isinstance(violating, str) and violating.lower() in ("true", "false"):
        violating = violating.lower() == "true"  # CSV
    if not isinstance(violating, bool):
        raise InvalidVerdict(f"violating: expected true or false, got {violating!r}")
    action = record.get("action")
    if action not in VERDICT_ACTIONS:
        raise InvalidVerdict(f"action: expected one of {VERDICT_ACTIONS}, got {action!r}")
    if violating == (action == "none"):
        raise InvalidVerdict(f"action: {action!r} contradicts violating={violating} (none exactly when not violating)")
    category = record.get("category") or None
    if violating and not isinstance(category, str):
        raise InvalidVerdict("category: required when violating")
    try:
        decided_at = parse_timestamp(record.get("decided_at"), "decided_at")
    except ValueError as exc:
        raise InvalidVerdict(str(exc)) from None
    return Verdict(fields["review_id"], fields["decision_id"], violating, category if violating else None, action,
                   fields["reviewer"], not_in_future(decided_at, "decided_at"),
                   campaign_id.strip() if campaign_id else None)  # fmt: skip


def campaign_member_verdicts(verdict: Verdict, member_decisions: tuple[str, ...]) -> list[Verdict]:
    """A verdict on a campaign's item as one verdict per member: each on the member's own
    decision, under the review id that member's own queue row has (or would have), so a member
    already answered on its own keeps that verdict and a re-sent campaign verdict counts once."""
    return [dataclasses.replace(verdict, review_id=review_id_of(decision_id), decision_id=decision_id)
            for decision_id in member_decisions]  # fmt: skip


@dataclasses.dataclass(frozen=True)
class ReviewOutcome:
    """A verdict joined to the decision it reviews: one row of the `reviews` table."""

    verdict: Verdict
    decision: Decision

    @property
    def blind(self) -> bool:
        """A campaign's reviewer saw the whole campaign, what the automation did included."""
        return self.verdict.campaign_id is None and reviewed_blind(self.decision)

    @property
    def machine_action(self) -> str | None:
        return machine_action(self.decision)

    @property
    def agrees(self) -> bool | None:
        """Whether the reviewer upholds what the automation did or meant to do: the item
        violates and deserves at least that action (a reviewer who would remove what a rule
        labelled still finds the label warranted). None where nothing was automated (a review
        rule routed the item). This is the precision automation is gated on."""
        intended = self.machine_action
        if intended is None:
            return None
        verdict = self.verdict
        return verdict.violating and VERDICT_ACTIONS.index(verdict.action) >= VERDICT_ACTIONS.index(intended)

    @property
    def verdict_decision_id(self) -> str:
        return stable_id(self.decision.decision_id, "verdict", self.verdict.review_id)

    def to_row(self) -> dict[str, Any]:
        verdict, decision = self.verdict, self.decision
        return {
            "review_id": verdict.review_id,
            "decision_id": decision.decision_id,
            "verdict_decision_id": self.verdict_decision_id,
            "content_id": decision.content_id,
            "account_id": decision.account_id,
            "rule_id": decision.rule_id,
            "blind": self.blind,
            "machine_action": self.machine_action,
            "verdict_action": verdict.action,
            "violating": verdict.violating,
            "category": verdict.category,
            "agrees": self.agrees,
            "reviewer": verdict.reviewer,
            "campaign_id": verdict.campaign_id,
            "decided_at": decision.decided_at,
            "reviewed_at": verdict.decided_at,
            "policy_id": decision.policy_id,
            "policy_version": decision.policy_version,
            "pipeline_version": PIPELINE_VERSION,
        }


@dataclasses.dataclass(frozen=True)
class VerdictConsequences:
    """What a verdict does: its decision, the events it sends (reversals of an automated
    action it disagrees with, then its own action's), a strike taken back, a retraining label."""

    decision: Decision
    events: list[EnforcementEvent]
    acts: bool  # the verdict's decision carries out an action (and may earn a strike)
    strike_reversal: tuple[str, tuple[str, dt.datetime]] | None
    label: RetrainingLabel


def verdict_consequences(outcome: ReviewOutcome, policy: Policy) -> VerdictConsequences:
    """The verdict as the item's final decision, under `policy` (the one that made the decision
    reviewed, or the live one: the targets of the verdict's action come from it)."""
    verdict, reviewed = outcome.verdict, outcome.decision
    carried_out = reviewed.action in RESTRICTIVE_ACTIONS  # an automated action that acted
    same_as_carried_out = carried_out and verdict.action == reviewed.action
    acts = verdict.action != "none" and not same_as_carried_out
    decision = dataclasses.replace(
        reviewed,
        decision_id=outcome.verdict_decision_id,
        action=verdict.action,
        category=verdict.category or reviewed.category,
        automated_decision="not" if outcome.blind else "partially",
        decided_at=verdict.decided_at,
        targets=policy.targets_for(verdict.action) if acts else (),
        proposed_action=None,
        shadow_rule_id=None,
        shadow_action=None,
        supersedes=reviewed.decision_id,
    )
    events = []
    strike_reversal = None
    if carried_out and not same_as_carried_out:
        events += enforcement_events(reviewed, "reverse", verdict.decided_at, reason="review verdict")
        strike_reversal = (reviewed.account_id, (reviewed.decision_id, verdict.decided_at))
    if acts:
        events += enforcement_events(decision, "enforce", verdict.decided_at)
    label = RetrainingLabel(reviewed.content_id, decision.decision_id,
                            "synthetic" if verdict.violating else "real", "review_verdict", verdict.decided_at)  # fmt: skip
    return VerdictConsequences(decision, events, acts, strike_reversal, label)


# --- the decision log -------------------------------------------------------------------------

ACTOR_TYPES = ("automation", "reviewer", "appeal")
CHANGES = ("automated_decision", "review_verdict", "reversed_by_review", "appeal_upheld", "appeal_overturned",
           "account_suspension")  # fmt: skip


@dataclasses.dataclass(frozen=True)
class LogEntry:
    """One change of an item's (or account's) state: a row of the `decision_log` table."""

    decision_id: str
    content_id: str
    account_id: str
    change: str  # CHANGES
    action: str
    previous_action: str | None
    actor_type: str  # ACTOR_TYPES
    actor_id: str | None
    rule_id: str
    policy_id: str
    policy_version: str
    automated_decision: str
    changed_at: dt.datetime

    @property
    def log_id(self) -> str:
        return stable_id(self.decision_id, self.change, self.changed_at.isoformat())

    def to_row(self) -> dict[str, Any]:
        return {"log_id": self.log_id, **dataclasses.asdict(self), "pipeline_version": PIPELINE_VERSION}


def decision_entry(decision: Decision, change: str = "automated_decision", previous_action: str | None = None,
                   actor_type: str = "automation", actor_id: str | None = None,
                   at: dt.datetime | None = None) -> LogEntry:  # fmt: skip
    return LogEntry(decision.decision_id, decision.content_id, decision.account_id, change, decision.action,
                    previous_action, actor_type, actor_id, decision.rule_id, decision.policy_id,
                    decision.policy_version, decision.automated_decision, at or decision.decided_at)  # fmt: skip


def verdict_entries(outcome: ReviewOutcome, consequences: VerdictConsequences) -> list[LogEntry]:
    """The verdict's decision, and the reversal of the automated action it overrode."""
    reviewed, verdict = outcome.decision, outcome.verdict
    entries = [decision_entry(consequences.decision, "review_verdict", reviewed.action, "reviewer", verdict.reviewer)]
    if consequences.strike_reversal is not None:
        entries.append(decision_entry(reviewed, "reversed_by_review", reviewed.action, "reviewer", verdict.reviewer,
                                      verdict.decided_at))  # fmt: skip
    return entries
