"""Enforcement policy: a versioned YAML file turned into decisions.

A policy is data. Rules are tried in order and the first whose conditions all hold decides;
conditions come from a closed set of named predicates (no expressions, no `eval`), each
with a checked type, so a wrong file fails at start-up with the field named.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from enforcement.ids import content_decision_id
from enforcement.policy_sections import RESTRICTIVE_ACTIONS, Automation, PolicyError, ReviewSettings, fraction
from schemas.config import refuse_unknown
from schemas.records import Decision, ScoredMedia, utc_now
from schemas.vocabulary import ACTIONS, AI_SOURCE_TYPES, DETECTION_METHODS, DSA_ALLOWED, KEYWORD_PREFIX

AUTOMATED_DECISION = {"human_review": "partially"}  # everything else is decided by the machine alone


def _flag(field: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise PolicyError(f"{field}: expected true or false, got {value!r}")
    return value


def _names(field: str, value: Any) -> frozenset[str]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise PolicyError(f"{field}: expected a non-empty list of strings, got {value!r}")
    return frozenset(value)


def _detection_methods(field: str, value: Any) -> frozenset[str]:
    methods = _names(field, value)
    unknown = methods - set(DETECTION_METHODS)
    if unknown:
        raise PolicyError(f"{field}: unknown detection method(s) {sorted(unknown)}; expected {DETECTION_METHODS}")
    return methods


def _count(field: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise PolicyError(f"{field}: expected a non-negative whole number, got {value!r}")
    return value


def _modality_at_least(modality: str):
    """A modality's score at least the threshold, counting only a modality that voted: one that
    abstained (its input unlike its training data) is not evidence."""

    def test(item: ScoredMedia, threshold: float) -> bool:
        score = item.vote_for(modality)
        return score is not None and score.score >= threshold

    return test


def _provenance_ai(item: ScoredMedia) -> bool:
    return item.info.digital_source_type in AI_SOURCE_TYPES


# name -> (parse the YAML value, test an item against the parsed value)
CONDITIONS: dict[str, tuple[Callable[[str, Any], Any], Callable[[ScoredMedia, Any], bool]]] = {
    "min_fused_score": (fraction, lambda item, v: item.fused_score is not None and item.fused_score >= v),
    "max_fused_score": (fraction, lambda item, v: item.fused_score is not None and item.fused_score < v),
    "has_score": (_flag, lambda item, v: (item.fused_score is not None) == v),
    "min_content_score": (fraction, lambda item, v: item.content_score is not None and item.content_score >= v),
    "max_content_score": (fraction, lambda item, v: item.content_score is not None and item.content_score < v),
    "has_content_evidence": (_flag, lambda item, v: (item.content_score is not None) == v),
    "declared_ai": (_flag, lambda item, v: bool(item.event.declared_ai) == v),
    "provenance_ai": (_flag, lambda item, v: _provenance_ai(item) == v),
    "hash_match": (_flag, lambda item, v: (item.hash_match is not None) == v),
    # The media matches an upload of another, suspended account: context, like the account's
    # own history, so it may send an item to review but never remove it (a re-post of a public
    # video is not evasion; see docs/model-owners.md, "Ban evasion").
    "evasion_match": (_flag, lambda item, v: (item.evasion_match is not None) == v),
    "min_visual_score": (fraction, _modality_at_least("visual")),
    "min_audio_score": (fraction, _modality_at_least("audio")),
    "min_metadata_score": (fraction, _modality_at_least("metadata")),
    "prior_strikes_at_least": (_count, lambda item, v: item.event.prior_strikes >= v),
    "high_profile": (_flag, lambda item, v: item.event.high_profile == v),
    "verified": (_flag, lambda item, v: item.event.verified == v),
    "media_type_in": (_names, lambda item, v: item.info.media_type in v),
    "surface_in": (_names, lambda item, v: item.event.surface in v),
    "country_in": (_names, lambda item, v: item.event.country in v),
    "detection_method_in": (_detection_methods, lambda item, v: item.event.detection_method in v),
}


# Conditions that measure the content itself. Automated removal needs one of them: metadata,
# provenance and account context are what an uploader controls or what is simply absent, so
# they may label an item or send it to review but never remove it on their own.
CONTENT_EVIDENCE = ("min_content_score", "min_visual_score", "min_audio_score")
CONTENT_MATCH = ("hash_match",)  # a perceptual-hash match of the pixels to a banked item
ACTIONS_NEEDING_CONTENT_EVIDENCE = ("remove",)


def _has_content_evidence(conditions: tuple[tuple[str, Any], ...]) -> bool:
    return any(name in CONTENT_EVIDENCE or (name in CONTENT_MATCH and value is True) for name, value in conditions)


def _section(document: Any, name: str, fields: tuple[str, ...]) -> None:
    """A policy file section is a mapping of these fields and no other (PolicyError if not)."""
    if not isinstance(document, Mapping):
        raise PolicyError(f"{name}: expected a mapping with {', '.join(fields)}")
    refuse_unknown(document, fields, f"{name}.", PolicyError)


@dataclasses.dataclass(frozen=True)
class StrikePolicy:
    """How much each action weighs, how long a strike counts, where suspension starts."""

    weights: Mapping[str, float]
    window_days: float
    suspend_at: float

    @classmethod
    def parse(cls, document: Any) -> StrikePolicy:
        """Validates the policy file's `strikes` section.

        Raises:
            PolicyError: names the field and what was expected.
        """
        _section(document, "strikes", ("weights", "window_days", "suspend_at"))
        weights = document.get("weights")
        if not isinstance(weights, Mapping) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 for v in weights.values()
        ):
            raise PolicyError("strikes.weights: expected a mapping of action -> non-negative number")
        for field in ("window_days", "suspend_at"):
            value = document.get(field)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise PolicyError(f"strikes.{field}: expected a positive number, got {value!r}")
        return cls({str(k): float(v) for k, v in weights.items()}, float(document["window_days"]),
                   float(document["suspend_at"]))  # fmt: skip


@dataclasses.dataclass(frozen=True)
class CampaignPolicy:
    """When matching uploads make a campaign (transforms/campaigns.py): at least `min_members`
    uploads from at least `min_accounts` accounts whose media match, within one fixed window of
    `window_hours` of upload time."""

    window_hours: float
    min_members: int
    min_accounts: int

    @classmethod
    def parse(cls, document: Any) -> CampaignPolicy:
        """Validates the policy file's `campaigns` section.

        Raises:
            PolicyError: names the field and what was expected.
        """
        _section(document, "campaigns", ("window_hours", "min_members", "min_accounts"))
        hours = document.get("window_hours")
        if isinstance(hours, bool) or not isinstance(hours, (int, float)) or not 0 < hours <= 24 * 7:
            raise PolicyError(f"campaigns.window_hours: expected a number of hours in (0, 168], got {hours!r}")
        counts = {}
        for field in ("min_members", "min_accounts"):
            value = document.get(field)
            if isinstance(value, bool) or not isinstance(value, int) or value < 2:
                raise PolicyError(f"campaigns.{field}: expected a whole number of at least 2, got {value!r}")
            counts[field] = value
        if counts["min_accounts"] > counts["min_members"]:
            raise PolicyError("campaigns.min_accounts: more accounts than members can never be met")
        return cls(float(hours), counts["min_members"], counts["min_accounts"])


@dataclasses.dataclass(frozen=True)
class Rule:
    rule_id: str
    action: str
    category: str | None
    conditions: tuple[tuple[str, Any], ...]
    automation: Automation | None = None  # rules with a restrictive action (enforcement/review.py)
    # Its automated removals enter the bank of confirmed violations (enforcement/bank.py)
    # without waiting for a reviewer: for rules whose removals reviewers uphold.
    bank: bool = False

    def matches(self, item: ScoredMedia) -> bool:
        return all(CONDITIONS[name][1](item, value) for name, value in self.conditions)

    @property
    def mode(self) -> str:
        return self.automation.mode if self.automation is not None else "enforce"


@dataclasses.dataclass(frozen=True)
class Policy:
    policy_id: str
    version: str
    rules: tuple[Rule, ...]
    targets: Mapping[str, tuple[str, ...]]
    # policy category -> (EU Transparency Database statement category, keywords)
    categories: Mapping[str, tuple[str, tuple[str, ...]]] = dataclasses.field(default_factory=dict)
    strikes: StrikePolicy | None = None  # None: no strikes
    review: ReviewSettings = dataclasses.field(default_factory=ReviewSettings)
    category_texts: Mapping[str, str] = dataclasses.field(default_factory=dict)  # what each category prohibits
    campaigns: CampaignPolicy | None = None  # None: campaigns are not looked for

    def category_text(self, category: str | None) -> str:
        """The policy text a second opinion reads for `category` (its name when it has none)."""
        return self.category_texts.get(category or "", category or "")

    def targets_for(self, action: str) -> tuple[str, ...]:
        return self.targets.get(action, ())

    def automation_of(self, rule_id: str) -> Automation | None:
        return next((r.automation for r in self.rules if r.rule_id == rule_id), None)

    def with_modes(self, modes: Mapping[str, str]) -> Policy:
        """This policy with the automation mode of some rules changed (a run's downgrades)."""
        unknown = set(modes) - {r.rule_id for r in self.rules if r.automation is not None}
        if unknown:
            raise PolicyError(f"no rule with an automation section named {sorted(unknown)}")
        rules = tuple(
            dataclasses.replace(r, automation=dataclasses.replace(r.automation, mode=modes[r.rule_id]))
            if r.rule_id in modes
            else r
            for r in self.rules
        )
        return dataclasses.replace(self, rules=rules)


# A policy file's top level; each section's own fields are checked where it is read.
POLICY_FIELDS = ("policy_id", "version", "targets", "rules", "categories", "strikes", "review", "campaigns")


def _text(document: Mapping[str, Any], field: str, where: str) -> str:
    value = document.get(field)
    if not isinstance(value, (str, int, float)) or isinstance(value, bool) or str(value).strip() == "":
        raise PolicyError(f"{where}{field}: expected a non-empty string, got {value!r}")
    return str(value)


def parse_policy(document: Any, source: str = "policy") -> Policy:
    """Validates a policy document (already parsed from YAML).

    Raises:
        PolicyError: names the field and what was expected.
    """
    if not isinstance(document, Mapping):
        raise PolicyError(f"{source}: expected a mapping at the top level")
    refuse_unknown(document, POLICY_FIELDS, "", PolicyError)
    policy_id = _text(document, "policy_id", "")
    version = _text(document, "version", "")
    targets_doc = document.get("targets")
    if not isinstance(targets_doc, Mapping):
        raise PolicyError("targets: expected a mapping of action -> list of downstream targets")
    targets: dict[str, tuple[str, ...]] = {}
    for action, names in targets_doc.items():
        if action not in ACTIONS:
            raise PolicyError(f"targets.{action}: unknown action; expected one of {ACTIONS}")
        if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
            raise PolicyError(f"targets.{action}: expected a list of target names")
        targets[action] = tuple(dict.fromkeys(names))
    rules_doc = document.get("rules")
    if not isinstance(rules_doc, list) or not rules_doc:
        raise PolicyError("rules: expected a non-empty list")
    rules, seen = [], set()
    for index, rule_doc in enumerate(rules_doc):
        where = f"rules[{index}]."
        if not isinstance(rule_doc, Mapping):
            raise PolicyError(f"rules[{index}]: expected a mapping")
        refuse_unknown(rule_doc, ("id", "action", "category", "when", "automation", "bank"), where, PolicyError)
        rule_id = _text(rule_doc, "id", where)
        if rule_id in seen:
            raise PolicyError(f"{where}id: {rule_id!r} is used twice")
        seen.add(rule_id)
        action = _text(rule_doc, "action", where)
        if action not in ACTIONS:
            raise PolicyError(f"{where}action: expected one of {ACTIONS}, got {action!r}")
        when = rule_doc.get("when", {}) or {}
        if not isinstance(when, Mapping):
            raise PolicyError(f"{where}when: expected a mapping of condition -> value")
        conditions = []
        for name, value in when.items():
            if name not in CONDITIONS:
                raise PolicyError(f"{where}when.{name}: unknown condition; expected one of {sorted(CONDITIONS)}")
            conditions.append((name, CONDITIONS[name][0](f"{where}when.{name}", value)))
        category = rule_doc.get("category")
        if category is not None and not isinstance(category, str):
            raise PolicyError(f"{where}category: expected a string")
        if action in ACTIONS_NEEDING_CONTENT_EVIDENCE and not _has_content_evidence(tuple(conditions)):
            raise PolicyError(
                f"{where}when: a {action} rule needs content evidence ({', '.join(CONTENT_EVIDENCE)} or "
                f"hash_match: true); metadata and account context cannot {action} an item on their own"
            )
        automation = None
        if rule_doc.get("automation") is not None:
            if action not in RESTRICTIVE_ACTIONS:
                raise PolicyError(f"{where}automation: only a rule with a restrictive action {RESTRICTIVE_ACTIONS} "
                                  f"is automated, this one's is {action!r}")  # fmt: skip
            automation = Automation.parse(rule_doc["automation"], f"{where}automation")
        bank = rule_doc.get("bank", False)
        if not isinstance(bank, bool):
            raise PolicyError(f"{where}bank: expected true or false")
        if bank and action != "remove":
            raise PolicyError(f"{where}bank: only a remove rule's decisions are banked, this one's is {action!r}")
        rules.append(Rule(rule_id, action, category, tuple(conditions), automation, bank))
    if rules[-1].conditions:
        raise PolicyError(f"rules[{len(rules) - 1}]: the last rule must have no conditions (the default)")
    if rules[-1].mode == "shadow":
        raise PolicyError(f"rules[{len(rules) - 1}].automation.mode: the default rule cannot be a shadow")
    categories = _categories(document.get("categories", {}))
    for index, rule in enumerate(rules):
        if categories and rule.category is not None and rule.category not in categories:
            raise PolicyError(f"rules[{index}].category: {rule.category!r} is not defined under categories")
    strikes = None
    if document.get("strikes") is not None:
        strikes = StrikePolicy.parse(document["strikes"])
        unknown_actions = set(strikes.weights) - set(ACTIONS)
        if unknown_actions:
            raise PolicyError(
                f"strikes.weights.{sorted(unknown_actions)[0]}: unknown action; expected one of {ACTIONS}"
            )
    review = ReviewSettings.parse(document["review"]) if document.get("review") is not None else ReviewSettings()
    texts = {}
    for name, entry in (document.get("categories") or {}).items():
        text = entry.get("text") if isinstance(entry, Mapping) else None
        if text is not None and (not isinstance(text, str) or not text.strip()):
            raise PolicyError(f"categories.{name}.text: expected the category's policy text")
        if text:
            texts[str(name)] = " ".join(text.split())
    campaigns = CampaignPolicy.parse(document["campaigns"]) if document.get("campaigns") is not None else None
    return Policy(policy_id, version, tuple(rules), targets, categories, strikes, review, texts, campaigns)


def _categories(document: Any) -> dict[str, tuple[str, tuple[str, ...]]]:
    if not isinstance(document, Mapping):
        raise PolicyError("categories: expected a mapping of category -> {dsa_category, keywords}")
    categories = {}
    for name, entry in document.items():
        where = f"categories.{name}."
        if not isinstance(entry, Mapping):
            raise PolicyError(f"categories.{name}: expected a mapping with dsa_category and keywords")
        refuse_unknown(entry, ("dsa_category", "keywords", "text"), where, PolicyError)
        dsa_category = entry.get("dsa_category")
        if dsa_category not in DSA_ALLOWED["category"]:
            raise PolicyError(f"{where}dsa_category: {dsa_category!r} is not an EU Transparency Database category")
        keywords = entry.get("keywords", []) or []
        if not isinstance(keywords, list) or not all(
            isinstance(k, str) and k.startswith(KEYWORD_PREFIX) for k in keywords
        ):
            raise PolicyError(f"{where}keywords: expected a list of KEYWORD_... values")
        categories[name] = (dsa_category, tuple(keywords))
    return categories


def load_policy(path: str | Path) -> Policy:
    """Reads and validates a policy YAML file (safe loader only)."""
    try:
        document = yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as exc:
        raise PolicyError(f"{path}: not valid YAML: {exc}") from None
    return parse_policy(document, str(path))


def decide(item: ScoredMedia, policy: Policy) -> Decision:
    """The decision the policy makes for one scored item: the first matching rule not in
    `shadow` mode decides (the first shadow rule that matched before it is recorded); a rule in
    `sampled` mode sends its items to review with the action it would have taken."""
    shadow = None
    for rule in policy.rules:
        if not rule.matches(item):
            continue
        if rule.mode != "shadow":
            break
        shadow = shadow or rule
    action, proposed = rule.action, None
    if rule.mode == "sampled":
        action, proposed = "human_review", rule.action
    return Decision(
        decision_id=content_decision_id(item.event.content_id, policy.policy_id, policy.version),
        content_id=item.event.content_id,
        account_id=item.event.account_id,
        action=action,
        category=rule.category,
        rule_id=rule.rule_id,
        policy_id=policy.policy_id,
        policy_version=policy.version,
        fused_score=item.fused_score,
        content_score=item.content_score,
        detection_method=item.event.detection_method,
        automated_decision=AUTOMATED_DECISION.get(action, "fully"),
        media_type=item.info.media_type,
        surface=item.event.surface,
        country=item.event.country,
        uploaded_at=item.event.uploaded_at,
        decided_at=utc_now(),
        targets=policy.targets_for(action),
        notified_at=item.event.notice.received_at if item.event.notice is not None else None,
        notice_category=item.event.notice.category if item.event.notice is not None else None,
        notice_keyword=item.event.notice.keyword if item.event.notice is not None else None,
        proposed_action=proposed,
        shadow_rule_id=shadow.rule_id if shadow else None,
        shadow_action=shadow.action if shadow else None,
        bank_match=item.hash_match,
    )
