"""Enforcement policy: a versioned YAML file turned into decisions and fanned-out events.

A policy is data. Rules are tried in order and the first whose conditions all hold decides;
conditions come from a closed set of named predicates (no expressions, no `eval`), each
with a checked type, so a wrong file fails at start-up with the field named.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import apache_beam as beam
import yaml
from apache_beam.metrics import Metrics

from schemas.records import NOTICE_SOURCES, Decision, EnforcementEvent, ScoredMedia, utc_now
from transforms.metadata import AI_SOURCE_TYPES

ACTIONS = ("none", "label", "reduce_reach", "remove", "human_review")
AUTOMATED_DECISION = {"human_review": "partially"}  # everything else is decided by the machine alone


class PolicyError(ValueError):
    """The policy file is wrong; the message names the field and what was expected."""


def _number(field: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise PolicyError(f"{field}: expected a number between 0 and 1, got {value!r}")
    return float(value)


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
DETECTION_METHODS = ("automated", *NOTICE_SOURCES)
CONDITIONS: dict[str, tuple[Callable[[str, Any], Any], Callable[[ScoredMedia, Any], bool]]] = {
    "min_fused_score": (_number, lambda item, v: item.fused_score is not None and item.fused_score >= v),
    "max_fused_score": (_number, lambda item, v: item.fused_score is not None and item.fused_score < v),
    "has_score": (_flag, lambda item, v: (item.fused_score is not None) == v),
    "min_content_score": (_number, lambda item, v: item.content_score is not None and item.content_score >= v),
    "max_content_score": (_number, lambda item, v: item.content_score is not None and item.content_score < v),
    "has_content_evidence": (_flag, lambda item, v: (item.content_score is not None) == v),
    "declared_ai": (_flag, lambda item, v: bool(item.event.declared_ai) == v),
    "provenance_ai": (_flag, lambda item, v: _provenance_ai(item) == v),
    "hash_match": (_flag, lambda item, v: (item.hash_match is not None) == v),
    "min_visual_score": (_number, _modality_at_least("visual")),
    "min_audio_score": (_number, _modality_at_least("audio")),
    "min_metadata_score": (_number, _modality_at_least("metadata")),
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


@dataclasses.dataclass(frozen=True)
class Rule:
    rule_id: str
    action: str
    category: str | None
    conditions: tuple[tuple[str, Any], ...]

    def matches(self, item: ScoredMedia) -> bool:
        return all(CONDITIONS[name][1](item, value) for name, value in self.conditions)


@dataclasses.dataclass(frozen=True)
class Policy:
    policy_id: str
    version: str
    rules: tuple[Rule, ...]
    targets: Mapping[str, tuple[str, ...]]
    # policy category -> (EU Transparency Database statement category, keywords)
    categories: Mapping[str, tuple[str, tuple[str, ...]]] = dataclasses.field(default_factory=dict)
    strikes: Any = None  # transforms.strikes.StrikePolicy, or None for no strikes

    def targets_for(self, action: str) -> tuple[str, ...]:
        return self.targets.get(action, ())


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
        unknown = set(rule_doc) - {"id", "action", "category", "when"}
        if unknown:
            raise PolicyError(f"{where}{sorted(unknown)[0]}: unknown field; expected id, action, category, when")
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
        rules.append(Rule(rule_id, action, category, tuple(conditions)))
    if rules[-1].conditions:
        raise PolicyError(f"rules[{len(rules) - 1}]: the last rule must have no conditions (the default)")
    categories = _categories(document.get("categories", {}))
    for index, rule in enumerate(rules):
        if categories and rule.category is not None and rule.category not in categories:
            raise PolicyError(f"rules[{index}].category: {rule.category!r} is not defined under categories")
    strikes = None
    if document.get("strikes") is not None:
        from transforms.strikes import StrikePolicy

        strikes = StrikePolicy.parse(document["strikes"])
        unknown_actions = set(strikes.weights) - set(ACTIONS)
        if unknown_actions:
            raise PolicyError(
                f"strikes.weights.{sorted(unknown_actions)[0]}: unknown action; expected one of {ACTIONS}"
            )
    return Policy(policy_id, version, tuple(rules), targets, categories, strikes)


def _categories(document: Any) -> dict[str, tuple[str, tuple[str, ...]]]:
    from transforms.statements import ALLOWED, KEYWORD_PREFIX

    if not isinstance(document, Mapping):
        raise PolicyError("categories: expected a mapping of category -> {dsa_category, keywords}")
    categories = {}
    for name, entry in document.items():
        where = f"categories.{name}."
        if not isinstance(entry, Mapping):
            raise PolicyError(f"categories.{name}: expected a mapping with dsa_category and keywords")
        dsa_category = entry.get("dsa_category")
        if dsa_category not in ALLOWED["category"]:
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


def stable_id(*parts: str) -> str:
    """A deterministic id: the same parts give the same id on every run."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


def decide(item: ScoredMedia, policy: Policy) -> Decision:
    """The decision the policy makes for one scored item (first matching rule wins)."""
    rule = next(r for r in policy.rules if r.matches(item))
    return Decision(
        decision_id=stable_id(item.event.content_id, policy.policy_id, policy.version),
        content_id=item.event.content_id,
        account_id=item.event.account_id,
        action=rule.action,
        category=rule.category,
        rule_id=rule.rule_id,
        policy_id=policy.policy_id,
        policy_version=policy.version,
        fused_score=item.fused_score,
        content_score=item.content_score,
        detection_method=item.event.detection_method,
        automated_decision=AUTOMATED_DECISION.get(rule.action, "fully"),
        media_type=item.info.media_type,
        surface=item.event.surface,
        country=item.event.country,
        uploaded_at=item.event.uploaded_at,
        decided_at=utc_now(),
        targets=policy.targets_for(rule.action),
        notified_at=item.event.notice.received_at if item.event.notice is not None else None,
    )


def enforcement_events(decision: Decision, event_type: str = "enforce") -> list[EnforcementEvent]:
    """One event per downstream target, each with an id stable across reruns."""
    emitted_at = utc_now()
    events = []
    for target in decision.targets:
        payload = {
            "decision_id": decision.decision_id,
            "content_id": decision.content_id,
            "account_id": decision.account_id,
            "action": decision.action,
            "category": decision.category,
            "policy": f"{decision.policy_id}@{decision.policy_version}",
            "rule_id": decision.rule_id,
        }
        events.append(
            EnforcementEvent(
                event_id=stable_id(decision.decision_id, target, event_type),
                decision_id=decision.decision_id,
                content_id=decision.content_id,
                account_id=decision.account_id,
                target=target,
                action=decision.action,
                event_type=event_type,
                policy_id=decision.policy_id,
                policy_version=decision.policy_version,
                emitted_at=emitted_at,
                payload=json.dumps(payload, sort_keys=True),
            )
        )
    return events


SUSPENSION_TARGET = "account_enforcement"


def suspension_event(account_id: str, active_points: float, as_of, policy: Policy) -> EnforcementEvent:
    """The account-level event for an account whose active strikes crossed the threshold."""
    decision_id = stable_id(account_id, "suspension", as_of.isoformat(), policy.policy_id, policy.version)
    payload = {"account_id": account_id, "action": "suspend_account", "active_strike_points": active_points,
               "policy": f"{policy.policy_id}@{policy.version}"}  # fmt: skip
    return EnforcementEvent(
        event_id=stable_id(decision_id, SUSPENSION_TARGET, "enforce"),
        decision_id=decision_id,
        content_id="",
        account_id=account_id,
        target=SUSPENSION_TARGET,
        action="suspend_account",
        event_type="enforce",
        policy_id=policy.policy_id,
        policy_version=policy.version,
        emitted_at=utc_now(),
        payload=json.dumps(payload, sort_keys=True),
    )


class _DecideDoFn(beam.DoFn):
    def __init__(self, policy: Policy):
        self._policy = policy
        self._by_action = {a: Metrics.counter("decisions", a) for a in ACTIONS}

    def process(self, item: ScoredMedia):
        decision = decide(item, self._policy)
        self._by_action[decision.action].inc()
        yield decision


class ApplyPolicy(beam.PTransform):
    """ScoredMedia -> Decision, one per item, under one policy version."""

    def __init__(self, policy: Policy):
        super().__init__()
        self._policy = policy

    def expand(self, scored):
        return scored | "Decide" >> beam.ParDo(_DecideDoFn(self._policy))


def _events_by_target(decision: Decision):
    for event in enforcement_events(decision):
        yield beam.pvalue.TaggedOutput(event.target, event)


class FanOutEnforcement(beam.PTransform):
    """Decision -> one EnforcementEvent per downstream target, as a tagged output per target.

    Returns a dict target -> PCollection; locally every target lands in the
    `enforcement_events` table, in production each target is its own topic.
    """

    def __init__(self, policy: Policy):
        super().__init__()
        self._targets = sorted({t for names in policy.targets.values() for t in names})

    def expand(self, decisions):
        if not self._targets:
            return {}
        outputs = decisions | "RouteByTarget" >> beam.FlatMap(_events_by_target).with_outputs(*self._targets)
        return {target: outputs[target] for target in self._targets}
