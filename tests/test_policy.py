"""Policy loading, decisions, fanout ids, fusion and transparency cells (pure functions)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re

import pytest

from enforcement.appeals import Appeal, AppealOutcome
from enforcement.events import enforcement_events
from enforcement.policy import PolicyError, decide, load_policy, parse_policy
from enforcement.transparency import appeal_cell_keys, cell_keys, make_cell
from schemas import validate_row
from schemas.records import AccountContext, MediaInfo, ModalityScore, Notice, ScoredMedia, TransparencyCell, UploadEvent
from transforms.fusion import fuse_scores

POLICY = load_policy("policies/synthetic_media_v1.yaml")
UPLOADED = dt.datetime(2026, 11, 2, 12, tzinfo=dt.UTC)


_UNSET = object()


def item(
    score: float | None,
    *,
    content=_UNSET,
    abstained=False,
    declared_ai=None,
    high_profile=None,
    source_type=None,
    media_type="video",
    hash_match=None,
    notice=None,
):
    """A scored video: `score` is the fused score and, unless `content` says otherwise, the
    visual score that voted (so the content score too)."""
    event = UploadEvent(
        content_id="c1",
        media_uri="/m/c1.mp4",
        account_id="a1",
        uploaded_at=UPLOADED,
        declared_ai=declared_ai,
        country="FR",
        account=AccountContext(high_profile=high_profile) if high_profile is not None else None,
        notice=notice,
    )
    info = MediaInfo(media_type=media_type, container="mp4", digital_source_type=source_type)
    visual = score if content is _UNSET else content
    scores = () if visual is None else (ModalityScore("visual", visual, "visual_detector", "v1", abstained),)
    return ScoredMedia(
        event,
        "0" * 64,
        info,
        ("visual",),
        scores,
        score,
        "logistic_bounded",
        "1",
        UPLOADED,
        hash_match=hash_match,
        content_score=None if visual is None or abstained else visual,
    )


@pytest.mark.parametrize(
    "kwargs, action, rule",
    [
        ({"score": 0.10}, "none", "no-action"),
        ({"score": 0.80}, "none", "no-action"),
        ({"score": 0.90}, "human_review", "review-content"),
        ({"score": 0.995}, "remove", "remove-content-certain"),
        # Context alone: a fused 0.99 with no content evidence that voted is reviewed, not removed.
        ({"score": 0.99, "content": None}, "human_review", "review-band"),
        ({"score": 0.99, "abstained": True}, "human_review", "review-band"),
        # Content evidence that says synthetic is not cleared by a fused score metadata pulled down.
        ({"score": 0.20, "content": 0.995}, "remove", "remove-content-certain"),
        ({"score": 0.20, "content": 0.90}, "human_review", "review-content"),
        ({"score": 0.99, "content": 0.10}, "human_review", "review-band"),
        ({"score": 0.99, "high_profile": True}, "human_review", "high-profile-review"),
        ({"score": 0.99, "declared_ai": True}, "label", "declared-ai-label"),
        ({"score": 0.10, "declared_ai": True, "hash_match": "case-1"}, "remove", "known-deepfake-remove"),
        ({"score": 0.99, "source_type": "trainedAlgorithmicMedia"}, "label", "provenance-ai-label"),
        ({"score": None}, "none", "no-action"),
        ({"score": 0.6, "notice": Notice("user_report")}, "human_review", "reported-review"),
        ({"score": 0.4, "notice": Notice("trusted_flagger")}, "none", "no-action"),
    ],
)
def test_each_tier_of_the_shipped_policy(kwargs, action, rule):
    decision = decide(item(**kwargs), POLICY)
    assert (decision.action, decision.rule_id) == (action, rule)
    assert decision.policy_id == "synthetic-media" and decision.policy_version == "2.2.0"
    assert decision.targets == POLICY.targets_for(action)
    validate_row("enforcement_decisions", decision.to_row())


def test_decision_and_event_ids_are_stable_across_reruns():
    first, second = decide(item(0.995), POLICY), decide(item(0.995), POLICY)
    assert first.decision_id == second.decision_id
    ids = [e.event_id for e in enforcement_events(first)]
    assert ids == [e.event_id for e in enforcement_events(second)]
    assert len(ids) == len(set(ids)) == len(first.targets) == 5
    for event in enforcement_events(first):
        validate_row("enforcement_events", event.to_row())


def test_a_new_policy_version_gives_new_decision_ids():
    newer = dataclasses.replace(POLICY, version="1.0.1")
    assert decide(item(0.995), POLICY).decision_id != decide(item(0.995), newer).decision_id


BASE = {
    "policy_id": "p",
    "version": "1",
    "targets": {"remove": ["content_store"]},
    "rules": [{"id": "r", "when": {"min_content_score": 0.9}, "action": "remove"}, {"id": "d", "action": "none"}],
}


@pytest.mark.parametrize(
    "change, message",
    [
        ({"version": None}, "version: expected a non-empty string"),
        ({"targets": {"obliterate": []}}, "targets.obliterate: unknown action"),
        ({"rules": []}, "rules: expected a non-empty list"),
        (
            {"rules": [{"id": "r", "action": "remove", "when": {"min_fused_score": 2}}]},
            r"rules\[0\]\.when\.min_fused_score",
        ),
        ({"rules": [{"id": "r", "action": "remove", "when": {"vibes": 1}}]}, r"when\.vibes: unknown condition"),
        ({"rules": [{"id": "r", "action": "ban"}]}, r"rules\[0\]\.action: expected one of"),
        ({"rules": [{"id": "r", "action": "remove", "when": {"declared_ai": "yes"}}]}, "expected true or false"),
        (
            {"rules": [{"id": "r", "action": "label", "when": {"declared_ai": True}}]},
            "last rule must have no conditions",
        ),
        (
            {
                "rules": [
                    {"id": "r", "action": "remove", "when": {"min_fused_score": 0.99}},
                    {"id": "d", "action": "none"},
                ]
            },
            r"rules\[0\]\.when: a remove rule needs content evidence",
        ),
        (
            {
                "rules": [
                    {"id": "r", "action": "remove", "when": {"min_metadata_score": 0.99, "declared_ai": False}},
                    {"id": "d", "action": "none"},
                ]
            },
            "metadata and account context cannot remove",
        ),
        ({"rules": [{"id": "d", "action": "none"}, {"id": "d", "action": "none"}]}, "used twice"),
        # a misspelt key at any level is refused with its path, never read as "absent"
        (
            {"strike": {"weights": {}, "window_days": 1, "suspend_at": 1}},
            r"^strike: unknown field \(did you mean 'strikes'",
        ),
        ({"categorie": {}}, r"^categorie: unknown field \(did you mean 'categories'"),
        ({"reveiw": {}}, r"^reveiw: unknown field \(did you mean 'review'"),
        (
            {"strikes": {"weights": {"remove": 1}, "window_days": 90, "suspend_at": 3, "suspend_after": 2}},
            r"^strikes\.suspend_after: unknown field",
        ),
        (
            {
                "categories": {
                    "synthetic": {"dsa_category": "STATEMENT_CATEGORY_SCOPE_OF_PLATFORM_SERVICE", "keyword": []}
                }
            },
            r"^categories\.synthetic\.keyword: unknown field \(did you mean 'keywords'",
        ),
        (
            {"rules": [{"id": "d", "action": "none", "wen": {}}]},
            r"^rules\[0\]\.wen: unknown field \(did you mean 'when'",
        ),
    ],
)
def test_a_wrong_policy_names_the_field(change, message):
    with pytest.raises(PolicyError, match=message):
        parse_policy({**BASE, **change})


def test_conditions_on_single_modalities_and_prior_strikes():
    policy = parse_policy(
        {
            "policy_id": "p",
            "version": "1",
            "targets": {"remove": ["content_store"], "human_review": ["review_queue"]},
            "rules": [
                {"id": "voice", "when": {"min_audio_score": 0.9}, "action": "remove"},
                {
                    "id": "repeat",
                    "when": {"prior_strikes_at_least": 2, "min_visual_score": 0.8},
                    "action": "human_review",
                },
                {"id": "d", "action": "none"},
            ],
        }
    )
    assert decide(item(0.95), policy).rule_id == "d"  # visual 0.95 alone, no strikes
    repeat_offender = dataclasses.replace(
        item(0.95), event=dataclasses.replace(item(0.95).event, account=AccountContext(prior_strikes=3))
    )
    assert decide(repeat_offender, policy).rule_id == "repeat"
    with pytest.raises(PolicyError, match="prior_strikes_at_least: expected a non-negative whole number"):
        parse_policy({**BASE, "rules": [{"id": "r", "action": "remove", "when": {"prior_strikes_at_least": 1.5}},
                                        {"id": "d", "action": "none"}]})  # fmt: skip


def test_policy_yaml_is_loaded_safely(tmp_path):
    path = tmp_path / "evil.yaml"
    path.write_text("!!python/object/apply:os.system ['true']\n")
    with pytest.raises(PolicyError, match="not valid YAML"):
        load_policy(path)


def test_fusion_leaves_out_missing_and_abstaining_modalities():
    visual = ModalityScore("visual", 0.9, "v", "1")
    audio = ModalityScore("audio", 0.3, "a", "1")
    metadata = ModalityScore("metadata", 0.5, "m", "1")
    assert fuse_scores(()).score is None and fuse_scores(()).content_score is None
    assert fuse_scores((visual,)).score == pytest.approx(0.9)
    assert fuse_scores((visual, audio)).content_score == pytest.approx(0.9)  # either faked modality counts
    assert fuse_scores((visual, metadata)).score == pytest.approx(0.9)  # an even metadata score moves nothing
    shy = ModalityScore("visual", 0.99, "v", "1", abstained=True, abstain_reason="out_of_distribution")
    alone = fuse_scores((shy, metadata))
    assert alone.content_score is None and alone.score == pytest.approx(0.5)


@pytest.mark.parametrize("metadata_score", [0.0, 1e-9, 1.0, 1 - 1e-9])
def test_metadata_moves_the_fused_score_a_bounded_amount(metadata_score):
    import math

    from models.fusion import CONTEXT_LOGIT_BOUND, FALLBACK_METADATA_WEIGHT

    def logit(p):
        return math.log(p / (1 - p))

    for content in (0.05, 0.5, 0.96):
        fused = fuse_scores(
            (ModalityScore("visual", content, "v", "1"), ModalityScore("metadata", metadata_score, "m", "1"))
        )
        assert fused.content_score == pytest.approx(content)
        shift = logit(fused.score) - logit(content)
        assert abs(shift) <= FALLBACK_METADATA_WEIGHT * CONTEXT_LOGIT_BOUND + 1e-9


def test_transparency_cells_count_and_suppress():
    decisions = [decide(item(0.995), POLICY) for _ in range(3)]
    keyed = [k for d in decisions for k in cell_keys(d)]
    assert len(keyed) == 3 * 4 * 2  # each decision: four breakdowns, day and month
    day_cells = [k for k in keyed if k[0][1] == "detail" and k[0][2] == "day"]
    assert len(day_cells) == 3 and len({k for k, _ in day_cells}) == 1
    key = day_cells[0][0]
    assert key[0] == "decisions"
    shown = make_cell(key, [v for _, v in day_cells], min_cell_count=3)
    hidden = make_cell(key, [v for _, v in day_cells], min_cell_count=4)
    assert (shown.item_count, shown.suppressed, shown.overturned_count, shown.overturn_rate) == (3, False, None, None)
    assert shown.median_hours_to_action > 0
    assert (hidden.item_count, hidden.suppressed, hidden.median_hours_to_action) == (None, True, None)
    for cell in (shown, hidden):
        validate_row("transparency_aggregates", cell.to_row())
    assert list(cell_keys(decide(item(0.1), POLICY))) == []  # no action, nothing to report


def test_breakdowns_roll_up_the_dimensions_they_do_not_keep():
    decision = decide(item(0.995, notice=Notice("user_report")), POLICY)
    months = {k[1]: make_cell(k, [v], 1) for k, v in cell_keys(decision) if k[2] == "month"}
    assert set(months) == {"overall", "content_type", "country", "detail"}
    overall, by_country, detail = months["overall"], months["country"], months["detail"]
    assert (overall.category, overall.detection_method, overall.country, overall.content_type) == (
        decision.category,
        "user_report",
        "all",
        "all",
    )
    assert (by_country.country, by_country.action, by_country.category, by_country.detection_method) == (
        "FR",
        "remove",
        "all",
        "all",
    )
    assert (detail.country, detail.content_type, detail.detection_method) == ("FR", "video", "user_report")
    for cell in months.values():
        validate_row("transparency_aggregates", cell.to_row())


def test_appeal_cells_count_reversals_and_the_overturn_rate_and_suppress():
    decision = decide(item(0.995), POLICY)
    outcomes = [
        AppealOutcome(Appeal(decision.decision_id, outcome, decision.decided_at + dt.timedelta(hours=hours)), decision)
        for outcome, hours in (("overturned", 2), ("upheld", 4), ("upheld", 6), ("overturned", 8))
    ]
    keyed = [k for o in outcomes for k in appeal_cell_keys(o)]
    month = [(k, v) for k, v in keyed if k[1] == "overall" and k[2] == "month"]
    assert len({k for k, _ in month}) == 1 and month[0][0][0] == "appeals"
    cell = make_cell(month[0][0], [v for _, v in month], min_cell_count=3)
    assert (cell.measure, cell.item_count, cell.overturned_count, cell.overturn_rate) == ("appeals", 4, 2, 0.5)
    assert cell.median_hours_to_action == pytest.approx(5.0)  # decision to appeal outcome
    assert cell.automated_decision == "fully" and cell.action == "remove"
    hidden = make_cell(month[0][0], [v for _, v in month], min_cell_count=5)
    assert (hidden.item_count, hidden.overturned_count, hidden.overturn_rate, hidden.suppressed) == (
        None,
        None,
        None,
        True,
    )
    validate_row("transparency_aggregates", cell.to_row())


def test_a_notice_makes_the_decision_report_its_source_and_time_from_notice():
    reported_at = UPLOADED + dt.timedelta(hours=30)
    decision = decide(item(0.995, notice=Notice("trusted_flagger", reported_at)), POLICY)
    assert (decision.detection_method, decision.notified_at) == ("trusted_flagger", reported_at)
    assert decision.action_clock_start == reported_at
    ((key, (hours, _)), *_) = cell_keys(decision)
    assert key[6] == "trusted_flagger"
    assert hours == pytest.approx((decision.decided_at - reported_at).total_seconds() / 3600)
    assert decide(item(0.995), POLICY).detection_method == "automated"
    validate_row("enforcement_decisions", decision.to_row())
    routed = parse_policy(
        {
            **BASE,
            "targets": {"human_review": ["review_queue"]},
            "rules": [
                {
                    "id": "reported",
                    "action": "human_review",
                    "when": {"detection_method_in": ["user_report", "trusted_flagger"], "min_fused_score": 0.5},
                },
                {"id": "d", "action": "none"},
            ],
        }
    )
    assert decide(item(0.6, notice=Notice("user_report")), routed).rule_id == "reported"
    assert decide(item(0.6), routed).rule_id == "d"
    with pytest.raises(PolicyError, match="detection_method_in: unknown detection method"):
        parse_policy({**BASE, "rules": [{"id": "r", "action": "remove", "when": {"detection_method_in": ["psychic"]}},
                                        {"id": "d", "action": "none"}]})  # fmt: skip


def test_fanout_routes_each_event_to_its_target_output():
    import apache_beam as beam
    from apache_beam.testing.util import assert_that, equal_to

    from transforms.policy import ApplyPolicy, FanOutEnforcement

    from .conftest import batch_pipeline

    with batch_pipeline() as p:
        decisions, _, undecided = p | beam.Create([item(0.995), item(0.9), item(0.1)]) | ApplyPolicy(POLICY)
        outputs, unrouted = decisions | FanOutEnforcement(POLICY)
        assert_that((undecided, unrouted) | beam.Flatten(), equal_to([]), label="NoDeadLetters")
        assert set(outputs) == {
            "content_store", "search_index", "recommendations", "notifications", "strike_ledger", "review_queue"
        }  # fmt: skip
        for target, events in outputs.items():
            expected = [(target, "human_review")] if target == "review_queue" else [(target, "remove")]
            assert_that(
                events | f"Pairs{target}" >> beam.Map(lambda e: (e.target, e.action)),
                equal_to(expected),
                label=f"Check{target}",
            )


def test_policy_categories_must_be_transparency_database_categories():
    bad = {**BASE, "categories": {"deepfake": {"dsa_category": "STATEMENT_CATEGORY_DEEPFAKES"}}}
    with pytest.raises(PolicyError, match=r"categories\.deepfake\.dsa_category"):
        parse_policy(bad)
    undefined = {
        **BASE,
        "categories": {"a": {"dsa_category": "STATEMENT_CATEGORY_SCAMS_AND_FRAUD", "keywords": ["KEYWORD_PHISHING"]}},
        "rules": [{"id": "r", "action": "label", "category": "b"}],
    }
    with pytest.raises(PolicyError, match=r"rules\[0\]\.category: 'b' is not defined"):
        parse_policy(undefined)


def test_no_lone_suppressed_cell_can_be_recovered_by_subtraction():
    from enforcement.transparency import complementary_suppression

    def cell(country: str, count: int, period_type: str = "month", day: int = 1):
        shown = count >= 3
        return TransparencyCell(
            "decisions", "country", period_type, dt.date(2026, 11, day), "all", "remove", "all", "all", "all",
            country, count if shown else None, not shown, 1.0 if shown else None, None, None, "1",
        )  # fmt: skip

    # FR (2) alone under the minimum: the total (from any other breakdown) minus DE and US would
    # reveal it, so the smallest shown sibling (US, 4) is withheld too.
    result = {c.country: c for c in complementary_suppression([cell("DE", 9), cell("US", 4), cell("FR", 2)])}
    assert (result["FR"].suppressed, result["US"].suppressed, result["DE"].suppressed) == (True, True, False)
    assert result["US"].item_count is None and result["US"].median_hours_to_action is None
    # Two suppressed siblings already hide each other: nothing more is withheld.
    untouched = [cell("DE", 9), cell("US", 1), cell("FR", 2)]
    assert complementary_suppression(untouched) == untouched
    # Day cells add up to their month cell: a lone hidden day takes another day with it.
    days = complementary_suppression([cell("DE", 5, "day", 2), cell("DE", 4, "day", 3), cell("DE", 1, "day", 4)])
    assert [d.suppressed for d in days] == [False, True, True]


@pytest.mark.parametrize(("section", "message"), [
    ({"window_hours": 24, "min_members": 5, "min_acounts": 3}, "campaigns.min_acounts: unknown field (did you mean 'min_accounts'?)"),
    ({"window_hours": 0, "min_members": 5, "min_accounts": 3}, "campaigns.window_hours: expected a number of hours"),
    ({"window_hours": 24, "min_members": 1, "min_accounts": 1}, "campaigns.min_members: expected a whole number of at least 2"),
    ({"window_hours": 24, "min_members": 3, "min_accounts": 5}, "campaigns.min_accounts: more accounts than members"),
    ([24, 5, 3], "campaigns: expected a mapping"),
])  # fmt: skip
def test_a_campaigns_section_that_cannot_be_honoured_is_refused_naming_the_field(section, message):
    import yaml

    with open("policies/synthetic_media_v1.yaml") as policy_file:
        document = yaml.safe_load(policy_file)
    with pytest.raises(PolicyError, match=re.escape(message)):
        parse_policy({**document, "campaigns": section})
    settings = parse_policy(
        {**document, "campaigns": {"window_hours": 6, "min_members": 5, "min_accounts": 3}}
    ).campaigns
    assert (settings.window_hours, settings.min_members, settings.min_accounts) == (6.0, 5, 3)
    shipped = POLICY.campaigns  # from 2.2.0
    assert (shipped.window_hours, shipped.min_members, shipped.min_accounts) == (24.0, 5, 3)
