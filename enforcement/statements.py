"""Statements of reasons (DSA Art. 17 and 24(5)) in the EU Transparency Database's schema.

One statement per restrictive decision (label, reduce reach, remove): `statement_of_reasons`
builds it from the decision, `validate_statement` checks it against the database's required
fields and allowed values before anything is written, and `ExportStatements` writes them in
batches of at most 100, the most its API takes in one request.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

from schemas.records import Decision
from schemas.version import PIPELINE_VERSION
from schemas.vocabulary import (
    CONTENT_TYPE,
    DECISION_ACCOUNT,
    DECISION_VISIBILITY,
    DSA_ALLOWED,
    DSA_AUTOMATED_DECISION,
    DSA_SOURCE_TYPE,
    EEA,
    KEYWORD_PREFIX,
)

MAX_BATCH = 100
_PUID = re.compile(r"[A-Za-z0-9_-]+")
API_DATE = "%Y-%m-%d"

REQUIRED = (
    "decision_ground",
    "category",
    "content_type",
    "application_date",
    "content_date",
    "decision_facts",
    "source_type",
    "automated_detection",
    "automated_decision",
    "puid",
)
RESTRICTIONS = ("decision_visibility", "decision_monetary", "decision_provision", "decision_account")


class InvalidStatement(ValueError):
    """A statement the Transparency Database would reject; the message names the field."""

    reason = "invalid_statement"


def _scores_said(decision: Decision) -> str:
    """The scores the decision rested on: the content detectors' first, since only they can
    remove, then the fused score with metadata and account context."""
    if decision.content_score is not None and decision.fused_score is not None:
        return (
            f" with a content detector score of {decision.content_score:.2f} "
            f"({decision.fused_score:.2f} with metadata and account context)"
        )
    if decision.fused_score is not None:
        return f" with a detector score of {decision.fused_score:.2f} from metadata and account context"
    return ""


def restricts(decision: Decision) -> bool:
    """Whether the decision restricts content or an account, and so needs a statement."""
    return decision.action in DECISION_VISIBILITY or decision.action in DECISION_ACCOUNT


def _restriction(decision: Decision) -> dict[str, Any]:
    if decision.action in DECISION_ACCOUNT:
        return {"decision_account": DECISION_ACCOUNT[decision.action]}
    return {"decision_visibility": [DECISION_VISIBILITY[decision.action]]}


def _match_said(decision: Decision) -> str:
    """The bank match the decision rested on, citing the decision that banked the media."""
    if not decision.bank_match:
        return ""
    parts = decision.bank_match.split(":")
    if len(parts) == 3 and parts[0] == "banked" and parts[1] == "imported":
        return f" Its media matches an entry another platform shared of media it removed (entry {parts[2]})."
    if len(parts) == 3 and parts[0] == "banked":
        why = parts[1].replace("_", " ")
        return f" Its media matches media removed earlier as a confirmed violation (decision {parts[2]}, {why})."
    return f" Its media matches an entry of the bank of known synthetic media ({decision.bank_match})."


def _explanation(decision: Decision) -> str:
    if decision.action in DECISION_ACCOUNT:
        return (
            f"Rule {decision.rule_id}: the account's active strikes for synthetic media reached the "
            f"suspension threshold of policy {decision.policy_id} version {decision.policy_version}."
        )
    return (
        f"Rule {decision.rule_id} ({decision.category or 'synthetic media'}): "
        f"the upload was assessed as synthetic or manipulated media"
        + _scores_said(decision)
        + "."
        + _match_said(decision)
    )


def statement_of_reasons(decision: Decision, dsa_category: str, keywords: tuple[str, ...] = ()) -> dict[str, Any]:
    """The statement for one restrictive decision, of content or of an account (terms-of-service
    ground: the synthetic media policy)."""
    if not restricts(decision):
        raise ValueError(f"a {decision.action!r} decision restricts nothing and has no statement of reasons")
    statement: dict[str, Any] = {
        **_restriction(decision),
        "decision_ground": "DECISION_GROUND_INCOMPATIBLE_CONTENT",
        "incompatible_content_ground": f"Synthetic media policy {decision.policy_id} version {decision.policy_version}",
        "incompatible_content_explanation": _explanation(decision),
        "incompatible_content_illegal": "No",
        "content_type": ["CONTENT_TYPE_SYNTHETIC_MEDIA", CONTENT_TYPE[decision.media_type]],
        "category": dsa_category,
        "territorial_scope": list(EEA),
        "content_date": decision.uploaded_at.strftime(API_DATE),
        "application_date": decision.decided_at.strftime(API_DATE),
        "decision_facts": (
            f"Automated detection of synthetic media; action {decision.action.replace('_', ' ')} "
            f"applied under {decision.policy_id}@{decision.policy_version}."
        ),
        "source_type": DSA_SOURCE_TYPE[decision.detection_method],
        "automated_detection": "Yes" if decision.detection_method == "automated" else "No",
        "automated_decision": DSA_AUTOMATED_DECISION[decision.automated_decision],
        # Unique per statement, as the database requires (an upload a reviewer decided again has a
        # second statement), and within its alphabet: the decision id is hex.
        "puid": decision.decision_id,
    }
    if keywords:
        statement["category_specification"] = list(keywords)
    return statement


def _date(statement: Mapping[str, Any], field: str) -> None:
    try:
        dt.datetime.strptime(str(statement[field]), API_DATE)
    except ValueError:
        raise InvalidStatement(f"{field}: expected YYYY-MM-DD, got {statement[field]!r}") from None


def validate_statement(statement: Mapping[str, Any]) -> None:
    """Checks required fields, allowed values and the API's cross-field rules.

    Raises:
        InvalidStatement: the first problem found, naming the field.
    """
    for field in REQUIRED:
        if statement.get(field) in (None, "", []):
            raise InvalidStatement(f"{field}: required")
    if not any(statement.get(field) for field in RESTRICTIONS):
        raise InvalidStatement(f"one of {RESTRICTIONS} is required")
    for field, allowed in DSA_ALLOWED.items():
        value = statement.get(field)
        if value is None:
            continue
        for item in value if isinstance(value, list) else [value]:
            if item not in allowed:
                raise InvalidStatement(f"{field}: {item!r} is not an allowed value")
    for field in ("content_date", "application_date"):
        _date(statement, field)
    if statement["application_date"] < statement["content_date"]:
        raise InvalidStatement("application_date: before content_date")
    if statement["decision_ground"] == "DECISION_GROUND_INCOMPATIBLE_CONTENT":
        for field in ("incompatible_content_ground", "incompatible_content_explanation"):
            if not statement.get(field):
                raise InvalidStatement(f"{field}: required with an incompatible-content ground")
    if statement["decision_ground"] == "DECISION_GROUND_ILLEGAL_CONTENT":
        for field in ("illegal_content_legal_ground", "illegal_content_explanation"):
            if not statement.get(field):
                raise InvalidStatement(f"{field}: required with an illegal-content ground")
    if any(not str(k).startswith(KEYWORD_PREFIX) for k in statement.get("category_specification", [])):
        raise InvalidStatement("category_specification: keywords start with KEYWORD_")
    territories = statement.get("territorial_scope", [])
    if any(t not in EEA for t in territories):
        raise InvalidStatement(f"territorial_scope: only EEA country codes are allowed, got {territories}")
    if len(str(statement["puid"])) > 500:
        raise InvalidStatement("puid: longer than 500 characters")
    if not _PUID.fullmatch(str(statement["puid"])):
        raise InvalidStatement(f"puid: only letters, digits, '-' and '_' are allowed, got {statement['puid']!r}")


def batches(statements: list[dict[str, Any]], size: int = MAX_BATCH) -> list[list[dict[str, Any]]]:
    """Statements in API-sized batches (the multi-statement endpoint takes at most 100)."""
    if not 1 <= size <= MAX_BATCH:
        raise ValueError(f"batch size must be 1..{MAX_BATCH}")
    ordered = sorted(statements, key=lambda s: s["puid"])
    return [ordered[i : i + size] for i in range(0, len(ordered), size)]


@dataclasses.dataclass(frozen=True)
class StatementOfReasons:
    """A validated statement and the decision it explains."""

    decision_id: str
    statement: Mapping[str, Any]

    def to_row(self) -> dict[str, Any]:
        return {
            "sor_id": hashlib.sha256(f"sor:{self.decision_id}".encode()).hexdigest()[:32],
            "decision_id": self.decision_id,
            "puid": self.statement["puid"],
            "category": self.statement["category"],
            "decision_visibility": list(self.statement.get("decision_visibility", [])),
            "content_type": list(self.statement["content_type"]),
            "automated_decision": self.statement["automated_decision"],
            "application_date": dt.date.fromisoformat(self.statement["application_date"]),
            "statement": json.dumps(self.statement, sort_keys=True),
            "pipeline_version": PIPELINE_VERSION,
        }
