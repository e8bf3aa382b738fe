"""Statements of reasons: built from decisions, validated, batched as the API takes them."""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import json
from pathlib import Path

import pytest

from enforcement.policy import decide, load_policy
from enforcement.statements import (
    InvalidStatement,
    StatementOfReasons,
    batches,
    statement_of_reasons,
    validate_statement,
)
from schemas import validate_row
from schemas.records import AccountContext, MediaInfo, ModalityScore, ScoredMedia, UploadEvent
from transforms.statements import _write_batches

POLICY = load_policy("policies/synthetic_media_v1.yaml")
UPLOADED = dt.datetime(2026, 11, 2, 12, tzinfo=dt.UTC)


def _decision(score: float, content_id: str = "c1", high_profile: bool = False):
    event = UploadEvent(content_id, "/m.mp4", "a1", UPLOADED, account=AccountContext(high_profile=high_profile))
    scored = ScoredMedia(
        event, "0" * 64, MediaInfo(media_type="video", container="mp4"), ("visual",),
        (ModalityScore("visual", score, "v", "1"),), score, "logistic_bounded", "1", UPLOADED, content_score=score,
    )  # fmt: skip
    return decide(scored, POLICY)


def _statement(score: float = 0.995, **kwargs):
    decision = _decision(score, **kwargs)
    dsa_category, keywords = POLICY.categories[decision.category]
    return statement_of_reasons(decision, dsa_category, keywords)


def test_a_removal_gets_a_valid_statement_in_the_database_schema():
    statement = _statement(0.995)
    validate_statement(statement)
    assert statement["decision_visibility"] == ["DECISION_VISIBILITY_CONTENT_REMOVED"]
    assert statement["content_type"] == ["CONTENT_TYPE_SYNTHETIC_MEDIA", "CONTENT_TYPE_VIDEO"]
    assert statement["automated_detection"] == "Yes"
    assert statement["automated_decision"] == "AUTOMATED_DECISION_FULLY"
    assert statement["source_type"] == "SOURCE_VOLUNTARY"
    # One statement per decision: an upload a reviewer decided again gets a second one.
    assert statement["puid"] == _decision(0.995).decision_id and statement["content_date"] == "2026-11-02"
    # The explanation names the content evidence a removal rests on, then the fused score.
    assert (
        "content detector score of 0.99 (0.99 with metadata and account context)"
        in (statement["incompatible_content_explanation"])
    )


def test_labels_and_demotions_have_statements_and_no_action_has_none():
    for action, visibility in (("label", "LABELLED"), ("reduce_reach", "DEMOTED")):
        decision = dataclasses.replace(_decision(0.995), action=action)
        statement = statement_of_reasons(decision, "STATEMENT_CATEGORY_OTHER_VIOLATION_TC", ("KEYWORD_OTHER",))
        validate_statement(statement)
        assert statement["decision_visibility"] == [f"DECISION_VISIBILITY_CONTENT_{visibility}"]
    with pytest.raises(ValueError, match="restricts nothing"):
        statement_of_reasons(_decision(0.1), "STATEMENT_CATEGORY_OTHER_VIOLATION_TC")


@pytest.mark.parametrize(
    "change, message",
    [
        ({"category": "STATEMENT_CATEGORY_DEEPFAKES"}, "category: .* not an allowed value"),
        ({"puid": ""}, "puid: required"),
        ({"puid": "c003.jpg"}, "puid: only letters, digits"),
        ({"decision_visibility": None}, "one of .* is required"),
        ({"decision_visibility": ["DECISION_VISIBILITY_HIDDEN"]}, "decision_visibility"),
        ({"application_date": "21/11/2026"}, "application_date: expected YYYY-MM-DD"),
        ({"application_date": "2026-11-01"}, "before content_date"),
        ({"incompatible_content_explanation": ""}, "incompatible_content_explanation: required"),
        ({"decision_ground": "DECISION_GROUND_ILLEGAL_CONTENT"}, "illegal_content_legal_ground: required"),
        ({"territorial_scope": ["US"]}, "territorial_scope"),
        ({"category_specification": ["DEEPFAKE"]}, "keywords start with KEYWORD_"),
        ({"automated_detection": "maybe"}, "automated_detection"),
    ],
)
def test_a_bad_statement_is_rejected_naming_the_field(change, message):
    statement = copy.deepcopy(_statement())
    statement.update(change)
    with pytest.raises(InvalidStatement, match=message):
        validate_statement(statement)


def test_statements_go_out_in_batches_of_at_most_100(tmp_path):
    statements = [_statement(0.995, content_id=f"c{i:03d}") for i in range(250)]
    assert [len(b) for b in batches(statements)] == [100, 100, 50]
    records = [StatementOfReasons(f"d{i}", s) for i, s in enumerate(statements)]
    written = _write_batches(records, str(tmp_path), "run")
    bodies = [json.loads(Path(path).read_text()) for path in written]
    assert sorted(len(b["statements"]) for b in bodies) == [50, 100, 100]
    assert sorted(s["puid"] for b in bodies for s in b["statements"]) == sorted(s["puid"] for s in statements)
    assert written == _write_batches(records, str(tmp_path), "run")  # same names on a rerun


def test_statement_rows_fit_their_table():
    row = StatementOfReasons("d1", _statement()).to_row()
    validate_row("statements_of_reasons", row)
    assert json.loads(row["statement"])["puid"] == _decision(0.995).decision_id


@pytest.mark.parametrize(("label", "said"), [
    ("banked:reviewer_removal:d0c1", "matches media removed earlier as a confirmed violation (decision d0c1, "
                                     "reviewer removal)"),
    ("banked:imported:e77", "matches an entry another platform shared of media it removed (entry e77)"),
    ("ncii_case_42", "matches an entry of the bank of known synthetic media (ncii_case_42)"),
])  # fmt: skip
def test_a_removal_on_a_bank_match_cites_the_match_and_the_decision_that_banked_it(label, said):
    event = UploadEvent("c9", "/m.jpg", "a2", UPLOADED)
    scored = ScoredMedia(event, "0" * 64, MediaInfo(media_type="image", container="jpeg"), ("visual",),
                         (ModalityScore("visual", 0.1, "v", "1"),), 0.1, "logistic_bounded", "1", UPLOADED,
                         content_score=0.1, hash_match=label, hash_distance=4)  # fmt: skip
    decision = decide(scored, POLICY)
    assert decision.action == "remove" and decision.bank_match == label
    statement = statement_of_reasons(decision, *POLICY.categories[decision.category])
    validate_statement(statement)
    assert said in statement["incompatible_content_explanation"]
    assert validate_row("enforcement_decisions", {**decision.to_row(), "run_id": "r"})["bank_match"] == label
