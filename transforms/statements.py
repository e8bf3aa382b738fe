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
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import apache_beam as beam

from pipelines.version import PIPELINE_VERSION
from schemas.records import Decision
from transforms.dead_letter import ParDoOrDeadLetter

MAX_BATCH = 100
API_DATE = "%Y-%m-%d"

DECISION_VISIBILITY = {
    "remove": "DECISION_VISIBILITY_CONTENT_REMOVED",
    "reduce_reach": "DECISION_VISIBILITY_CONTENT_DEMOTED",
    "label": "DECISION_VISIBILITY_CONTENT_LABELLED",
}
CONTENT_TYPE = {"video": "CONTENT_TYPE_VIDEO", "image": "CONTENT_TYPE_IMAGE", "audio": "CONTENT_TYPE_AUDIO"}
AUTOMATED_DECISION = {
    "fully": "AUTOMATED_DECISION_FULLY",
    "partially": "AUTOMATED_DECISION_PARTIALLY",
    "not": "AUTOMATED_DECISION_NOT_AUTOMATED",
}
SOURCE_TYPE = {
    "automated": "SOURCE_VOLUNTARY",
    "user_report": "SOURCE_ARTICLE_16",
    "trusted_flagger": "SOURCE_TRUSTED_FLAGGER",
}

ALLOWED: dict[str, frozenset[str]] = {
    "decision_visibility": frozenset(
        {
            "DECISION_VISIBILITY_CONTENT_REMOVED",
            "DECISION_VISIBILITY_CONTENT_DISABLED",
            "DECISION_VISIBILITY_CONTENT_DEMOTED",
            "DECISION_VISIBILITY_CONTENT_AGE_RESTRICTED",
            "DECISION_VISIBILITY_CONTENT_INTERACTION_RESTRICTED",
            "DECISION_VISIBILITY_CONTENT_LABELLED",
            "DECISION_VISIBILITY_OTHER",
        }
    ),
    "decision_account": frozenset({"DECISION_ACCOUNT_SUSPENDED", "DECISION_ACCOUNT_TERMINATED"}),
    "decision_ground": frozenset({"DECISION_GROUND_ILLEGAL_CONTENT", "DECISION_GROUND_INCOMPATIBLE_CONTENT"}),
    "content_type": frozenset(
        {
            "CONTENT_TYPE_APP",
            "CONTENT_TYPE_AUDIO",
            "CONTENT_TYPE_IMAGE",
            "CONTENT_TYPE_PRODUCT",
            "CONTENT_TYPE_SYNTHETIC_MEDIA",
            "CONTENT_TYPE_TEXT",
            "CONTENT_TYPE_VIDEO",
            "CONTENT_TYPE_OTHER",
        }
    ),
    "category": frozenset(
        {
            "STATEMENT_CATEGORY_ANIMAL_WELFARE",
            "STATEMENT_CATEGORY_CONSUMER_INFORMATION",
            "STATEMENT_CATEGORY_CYBER_VIOLENCE",
            "STATEMENT_CATEGORY_CYBER_VIOLENCE_AGAINST_WOMEN",
            "STATEMENT_CATEGORY_DATA_PROTECTION_AND_PRIVACY_VIOLATIONS",
            "STATEMENT_CATEGORY_ILLEGAL_OR_HARMFUL_SPEECH",
            "STATEMENT_CATEGORY_INTELLECTUAL_PROPERTY_INFRINGEMENTS",
            "STATEMENT_CATEGORY_NEGATIVE_EFFECTS_ON_CIVIC_DISCOURSE_OR_ELECTIONS",
            "STATEMENT_CATEGORY_NOT_SPECIFIED_NOTICE",
            "STATEMENT_CATEGORY_OTHER_VIOLATION_TC",
            "STATEMENT_CATEGORY_PROTECTION_OF_MINORS",
            "STATEMENT_CATEGORY_RISK_FOR_PUBLIC_SECURITY",
            "STATEMENT_CATEGORY_SCAMS_AND_FRAUD",
            "STATEMENT_CATEGORY_SELF_HARM",
            "STATEMENT_CATEGORY_UNSAFE_AND_PROHIBITED_PRODUCTS",
            "STATEMENT_CATEGORY_VIOLENCE",
        }
    ),
    "source_type": frozenset({"SOURCE_ARTICLE_16", "SOURCE_TRUSTED_FLAGGER", "SOURCE_VOLUNTARY"}),
    "automated_detection": frozenset({"Yes", "No"}),
    "automated_decision": frozenset(AUTOMATED_DECISION.values()),
    "incompatible_content_illegal": frozenset({"Yes", "No"}),
}
KEYWORD_PREFIX = "KEYWORD_"
EEA = ("AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU", "IE", "IS", "IT", "LI",
       "LT", "LU", "LV", "MT", "NL", "NO", "PL", "PT", "RO", "SE", "SI", "SK")  # fmt: skip
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


def statement_of_reasons(decision: Decision, dsa_category: str, keywords: tuple[str, ...] = ()) -> dict[str, Any]:
    """The statement for one restrictive decision (terms-of-service ground: the synthetic media policy)."""
    if decision.action not in DECISION_VISIBILITY:
        raise ValueError(f"a {decision.action!r} decision restricts nothing and has no statement of reasons")
    statement: dict[str, Any] = {
        "decision_visibility": [DECISION_VISIBILITY[decision.action]],
        "decision_ground": "DECISION_GROUND_INCOMPATIBLE_CONTENT",
        "incompatible_content_ground": f"Synthetic media policy {decision.policy_id} version {decision.policy_version}",
        "incompatible_content_explanation": (
            f"Rule {decision.rule_id} ({decision.category or 'synthetic media'}): "
            f"the upload was assessed as synthetic or manipulated media" + _scores_said(decision) + "."
        ),
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
        "source_type": SOURCE_TYPE[decision.detection_method],
        "automated_detection": "Yes" if decision.detection_method == "automated" else "No",
        "automated_decision": AUTOMATED_DECISION[decision.automated_decision],
        "puid": decision.content_id,
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
    for field, allowed in ALLOWED.items():
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


class _StatementDoFn(beam.DoFn):
    def __init__(self, categories: Mapping[str, tuple[str, tuple[str, ...]]]):
        self._categories = dict(categories)

    def process(self, decision: Decision):
        if decision.action not in DECISION_VISIBILITY:
            return
        dsa_category, keywords = self._categories.get(
            decision.category or "", ("STATEMENT_CATEGORY_OTHER_VIOLATION_TC", ())
        )
        statement = statement_of_reasons(decision, dsa_category, keywords)
        validate_statement(statement)
        yield StatementOfReasons(decision.decision_id, statement)


class BuildStatements(beam.PTransform):
    """Decision -> StatementOfReasons for restrictive decisions, each validated.

    `categories` maps a policy category to (DSA statement category, keywords). Returns
    `(statements, dead_letters)`: a statement that fails validation is dead-lettered, never sent.
    """

    def __init__(self, categories: Mapping[str, tuple[str, tuple[str, ...]]]):
        super().__init__()
        self._categories = categories

    def expand(self, decisions):
        return decisions | ParDoOrDeadLetter(_StatementDoFn(self._categories), step="statements_of_reasons")


def _write_batches(records: list[StatementOfReasons], directory: str, run_id: str) -> list[str]:
    statements = [dict(record.statement) for record in records]
    written = []
    for batch in batches(statements):
        digest = hashlib.sha256("".join(s["puid"] for s in batch).encode()).hexdigest()[:12]
        path = Path(directory) / f"{run_id}-{digest}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"statements": batch}, indent=1, sort_keys=True) + "\n")
        written.append(str(path))
    return written


class ExportStatements(beam.PTransform):
    """Writes validated statements as API request bodies, at most 100 a file.

    Statements are gathered in one place to be cut into batches: they are small (about 1 KB
    each), so even a day of decisions fits a worker.
    """

    def __init__(self, directory: str, run_id: str):
        super().__init__()
        self._directory, self._run_id = directory, run_id

    def expand(self, statements):
        return (
            statements
            | "OneGroup" >> beam.combiners.ToList()
            | "WriteBatches" >> beam.FlatMap(_write_batches, directory=self._directory, run_id=self._run_id)
        )
