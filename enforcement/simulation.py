"""A policy as SQL over stored scores: what a policy change would do, without re-extracting.

`decision_sql(policy)` turns a policy's rules into one SQL `CASE` over the columns of the
`media_scores` table (scores, abstentions, provenance, hash match and the event's context,
all stored as the policy read them), so a warehouse replays a million decisions in one scan,
in DuckDB or BigQuery alike. Each condition's SQL means exactly what its Python test in
`enforcement.policy.CONDITIONS` means, NULL included (a missing score never meets a
threshold); `tests/test_simulation.py` holds the two to the same answers. Automation modes
apply as in `decide`: a `shadow` rule never decides, a `sampled` rule's items go to review.
No Beam, no warehouse access here: `tools.simulate` runs the SQL and compares.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from schemas.vocabulary import AI_SOURCE_TYPES

if TYPE_CHECKING:
    from enforcement.policy import Policy, Rule


def sql_literal(value: Any) -> str:
    """A value as a SQL literal (strings quoted, NULL for None)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (int, float)):
        return repr(float(value)) if isinstance(value, float) else str(value)
    return "'" + str(value).replace("'", "''") + "'"


def _in(column: str, values) -> str:
    return f"COALESCE({column} IN ({', '.join(sql_literal(v) for v in sorted(values))}), FALSE)"


def _voted_at_least(modality: str) -> Callable[[Any], str]:
    def sql(value: float) -> str:
        return (
            f"(COALESCE({modality}_score >= {sql_literal(value)}, FALSE) AND NOT COALESCE({modality}_abstained, FALSE))"
        )

    return sql


# condition name -> SQL for its parsed value, over `media_scores` columns
CONDITION_SQL: dict[str, Callable[[Any], str]] = {
    "min_fused_score": lambda v: f"COALESCE(fused_score >= {sql_literal(v)}, FALSE)",
    "max_fused_score": lambda v: f"COALESCE(fused_score < {sql_literal(v)}, FALSE)",
    "has_score": lambda v: f"((fused_score IS NOT NULL) = {sql_literal(v)})",
    "min_content_score": lambda v: f"COALESCE(content_score >= {sql_literal(v)}, FALSE)",
    "max_content_score": lambda v: f"COALESCE(content_score < {sql_literal(v)}, FALSE)",
    "has_content_evidence": lambda v: f"((content_score IS NOT NULL) = {sql_literal(v)})",
    "declared_ai": lambda v: f"(COALESCE(declared_ai, FALSE) = {sql_literal(v)})",
    "provenance_ai": lambda v: f"({_in('digital_source_type', AI_SOURCE_TYPES)} = {sql_literal(v)})",
    "hash_match": lambda v: f"((hash_match IS NOT NULL) = {sql_literal(v)})",
    "evasion_match": lambda v: f"((evasion_match IS NOT NULL) = {sql_literal(v)})",
    "min_visual_score": _voted_at_least("visual"),
    "min_audio_score": _voted_at_least("audio"),
    "min_metadata_score": _voted_at_least("metadata"),
    "prior_strikes_at_least": lambda v: f"(COALESCE(prior_strikes, 0) >= {sql_literal(v)})",
    "high_profile": lambda v: f"(COALESCE(high_profile, FALSE) = {sql_literal(v)})",
    "verified": lambda v: f"(COALESCE(verified, FALSE) = {sql_literal(v)})",
    "media_type_in": lambda v: _in("media_type", v),
    "surface_in": lambda v: _in("surface", v),
    "country_in": lambda v: _in("country", v),
    "detection_method_in": lambda v: _in("COALESCE(detection_method, 'automated')", v),
}


def rule_sql(rule: Rule) -> str:
    """The SQL condition under which `rule` matches (TRUE for the default rule)."""
    return " AND ".join(CONDITION_SQL[name](value) for name, value in rule.conditions) or "TRUE"


def decision_sql(policy: Policy) -> str:
    """A SQL expression giving the id of the rule that decides each row under `policy`
    (shadow rules never decide)."""
    branches = [f"WHEN {rule_sql(r)} THEN {sql_literal(r.rule_id)}" for r in policy.rules if r.mode != "shadow"]
    return "CASE " + " ".join(branches) + " END"


def effective_actions(policy: Policy) -> dict[str, tuple[str, str | None]]:
    """rule id -> (the action its decisions take, category): a `sampled` rule's is human_review."""
    return {
        r.rule_id: ("human_review" if r.mode == "sampled" else r.action, r.category)
        for r in policy.rules
        if r.mode != "shadow"
    }


def expected_quality_samples(policy: Policy) -> dict[str, float]:
    """rule id -> the share of its decisions sampled for blind review (enforced rules)."""
    return {
        r.rule_id: r.automation.sample_rate
        for r in policy.rules
        if r.automation is not None and r.mode == "enforce" and r.automation.sample_rate > 0
    }
