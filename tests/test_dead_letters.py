"""Every step that can fail dead-letters the element it failed on, with a stable reason code,
and lets the rest through: one bad row is never the job's failure."""

from __future__ import annotations

import dataclasses
import datetime as dt

import apache_beam as beam
import duckdb
from apache_beam.testing.util import assert_that, equal_to

from enforcement.policy import load_policy
from enforcement.strikes import Strike
from pipelines.reconcile import Reconciliation, stage_of
from schemas.records import DEAD_LETTER
from transforms.dead_letter import INTERNAL_ERROR, ParDoOrDeadLetter, dead_letter_for, reason_of
from transforms.limits import CorruptMedia, MediaRejected
from transforms.policy import ApplyPolicy, FanOutEnforcement
from transforms.strikes import UpdateStrikeLedger
from transforms.transparency import AggregateTransparency
from warehouse.embedded import WriteTable

from .conftest import batch_pipeline
from .test_policy import item
from .test_strikes import POLICY as STRIKES
from .test_strikes import decision

POLICY = load_policy("policies/synthetic_media_v1.yaml")
NOW = dt.datetime(2026, 11, 2, tzinfo=dt.UTC)


def _steps_and_reasons(dead_letters):
    return dead_letters | "StepReason" >> beam.Map(lambda d: (d.step, d.reason, d.disposition))


def test_a_reason_code_comes_from_the_error_itself():
    assert reason_of(CorruptMedia("bad")) == "corrupt_media"
    assert reason_of(MediaRejected("tiny", reason="too_small")) == "too_small"  # set on the instance
    assert reason_of(KeyError("x")) == INTERNAL_ERROR  # not expected: a bug, counted as such
    letter = dead_letter_for(("c9", b"raw"), MediaRejected("tiny", reason="too_small"), "extract_visual")
    assert (letter.content_id, letter.reason, letter.error_type, letter.error) == (
        "c9",
        "too_small",
        "MediaRejected",
        "tiny",
    )


class _Picky(beam.DoFn):
    def process(self, n):
        if n == 2:
            raise MediaRejected("two is too small", reason="too_small")
        if n == 3:
            raise ZeroDivisionError("three")
        yield n


def test_a_step_keeps_its_good_elements_and_dead_letters_the_others_with_their_reasons():
    with batch_pipeline() as p:
        good, dead = p | beam.Create([1, 2, 3, 4]) | ParDoOrDeadLetter(_Picky(), step="pick")
        assert_that(good, equal_to([1, 4]), label="good")
        assert_that(
            _steps_and_reasons(dead),
            equal_to([("pick", "too_small", DEAD_LETTER), ("pick", INTERNAL_ERROR, DEAD_LETTER)]),
            label="dead",
        )


def test_an_item_the_policy_cannot_decide_is_its_own_dead_letter():
    broken = dataclasses.replace(item(0.5), info=None)  # no media facts: the rules cannot read it
    with batch_pipeline() as p:
        decisions, _, dead = p | beam.Create([item(0.995), broken, item(0.1)]) | ApplyPolicy(POLICY)
        assert_that(decisions | "Actions" >> beam.Map(lambda d: d.action), equal_to(["remove", "none"]), label="ok")
        assert_that(_steps_and_reasons(dead), equal_to([("decide", INTERNAL_ERROR, DEAD_LETTER)]), label="dead")


def test_a_decision_that_cannot_be_fanned_out_is_dead_lettered():
    decided = item(0.995)
    with batch_pipeline() as p:
        decisions, _, _ = p | beam.Create([decided]) | ApplyPolicy(POLICY)
        broken = decisions | beam.Map(lambda d: dataclasses.replace(d, targets=(None,)))  # a target with no name
        _, dead = broken | FanOutEnforcement(POLICY)
        assert_that(_steps_and_reasons(dead), equal_to([("fan_out_enforcement", INTERNAL_ERROR, DEAD_LETTER)]))


def test_an_account_whose_ledger_cannot_be_updated_is_dead_lettered_and_the_others_are_not():
    good = decision("remove", 5, account="a2")
    corrupt = Strike("s-bad", "a1", "d-old", "remove", 1.0, None, None)  # a ledger row with no times
    with batch_pipeline() as p:
        ledger, _, dead = {
            "prior": p | "Prior" >> beam.Create([corrupt]),
            "decisions": p | "Decisions" >> beam.Create([decision("remove", 5, account="a1"), good]),
        } | UpdateStrikeLedger(STRIKES)
        assert_that(ledger | beam.Map(lambda s: s.account_id), equal_to(["a2"]), label="ledger")
        assert_that(_steps_and_reasons(dead), equal_to([("update_strikes", INTERNAL_ERROR, DEAD_LETTER)]), label="dl")


def test_a_decision_that_breaks_the_aggregation_is_dead_lettered():
    decided = item(0.995)
    with batch_pipeline() as p:
        decisions, _, _ = p | beam.Create([decided]) | ApplyPolicy(POLICY)
        broken = decisions | beam.Map(lambda d: dataclasses.replace(d, uploaded_at=None))  # no event time
        cells, dead = broken | AggregateTransparency(min_cell_count=1)
        assert_that(cells, equal_to([]), label="cells")
        assert_that(dead | beam.Map(lambda d: d.step), equal_to(["aggregate_transparency"]), label="dead")


def test_the_rows_that_fit_are_written_beside_a_bad_one(tmp_path):
    with batch_pipeline() as p:
        decisions, _, _ = p | beam.Create([item(0.995), item(0.1)]) | ApplyPolicy(POLICY)
        broken = decisions | beam.Map(lambda d: d if d.action == "none" else dataclasses.replace(d, action=None))
        failures = broken | WriteTable(str(tmp_path), "enforcement_decisions", "t")
        assert_that(failures | beam.Map(lambda d: (d.step, d.reason)),
                    equal_to([("write_enforcement_decisions", "schema_violation")]))  # fmt: skip
    written = duckdb.sql(f"select action from read_parquet('{tmp_path}/enforcement_decisions/*.parquet')").fetchall()
    assert written == [("none",)]


def test_failures_after_scoring_are_reported_but_balance_against_the_scored_items():
    assert stage_of("fetch_media") == "uploads" and stage_of("parse_appeals") == "appeals"
    assert stage_of("decide") == "after scoring" and stage_of("write_strike_ledger") == "after scoring"
    summary = Reconciliation(rows_read=5, scored=4, dead_lettered=1, skipped=0, reasons=(),
                             actions=(("none", 3),), undecided=1)  # fmt: skip
    assert summary.balanced
    assert not dataclasses.replace(summary, undecided=0).balanced  # a scored item neither decided nor dead-lettered


def test_a_failure_before_or_after_inference_reaches_runinferences_dead_letters():
    import numpy as np

    from models.metadata_layout import METADATA_DIM
    from models.registry import SERVED_MODEL_DIR, resolve_model_set
    from schemas.records import MediaFeatures, MediaInfo, UploadEvent
    from transforms.inference import ScoreModality

    metadata = resolve_model_set(str(SERVED_MODEL_DIR)).models["metadata"]
    event = UploadEvent("c1", "/m.jpg", "a1", NOW)
    good = MediaFeatures(
        event, "0" * 64, MediaInfo("image", "jpeg"), None, None, np.zeros(METADATA_DIM, np.float32), NOW
    )
    short = dataclasses.replace(good, event=dataclasses.replace(event, content_id="c2"),
                                metadata_vector=np.zeros(3, np.float32))  # not the model's width: refused before the batch  # fmt: skip
    not_finite = np.zeros(METADATA_DIM, np.float32)
    not_finite[1] = np.nan  # a model would score it NaN and act on nothing: refused, not scored
    stored_nan = dataclasses.replace(
        good, event=dataclasses.replace(event, content_id="c3"), metadata_vector=not_finite
    )
    with batch_pipeline() as p:
        scores, dead = p | beam.Create([good, short, stored_nan]) | ScoreModality(metadata, 1, 1)
        assert_that(scores | beam.Map(lambda kv: kv[0]), equal_to(["c1"]), label="scored")
        assert_that(dead | beam.Map(lambda d: (d.content_id, d.step, d.reason)),
                    equal_to([("c2", "inference_metadata_inputs", "invalid_model_inputs"),
                              ("c3", "inference_metadata_inputs", "invalid_model_inputs")]), label="dead")  # fmt: skip
