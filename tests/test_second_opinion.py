"""The second-opinion slot: a model the test builds with TensorFlow's string ops, served through
RunInference on review-queue rows; nothing is downloaded."""

from __future__ import annotations

import json

import apache_beam as beam
import pytest
from apache_beam.testing.util import assert_that, equal_to

from enforcement.policy import decide, load_policy
from enforcement.review import review_item
from models.second_opinion import SecondOpinionHandler
from transforms.review import ConsultSecondOpinion

from .test_review import _item

POLICY = load_policy("policies/synthetic_media_v1.yaml")


def build_model(directory, outputs=("probability", "rationale"), fail_on: str | None = None) -> str:
    """A second opinion that reads the evidence's content score and quotes the policy text
    (and, given `fail_on`, fails on evidence matching it, as a model can at serving time)."""
    import tensorflow as tf

    class Opinion(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string), tf.TensorSpec([None], tf.string)])
        def serve(self, evidence, policy):
            if fail_on is not None:
                refused = tf.reduce_any(tf.strings.regex_full_match(evidence, fail_on))
                tf.debugging.Assert(tf.logical_not(refused), ["the model refused this evidence"])
            high = tf.strings.regex_full_match(evidence, r'.*"content_score": 0\.9[0-9]*.*')
            probability = tf.where(high, 0.9, 0.2)
            verdict = tf.where(high, "content score above 0.9", "content score below 0.9")
            rationale = tf.strings.join([verdict, " against: ", tf.strings.substr(policy, 0, 40)])
            answer = {"probability": probability, "rationale": rationale}
            return {name: answer[name] for name in outputs}

    module = Opinion()
    path = str(directory)
    tf.saved_model.save(module, path, signatures={"serving_default": module.serve.get_concrete_function()})
    (directory / "model_card.json").write_text(json.dumps({"name": "tiny_opinion", "version": "t1"}))
    return path


def _queued(score: float, content_id: str):
    item = _item(score, content_id=content_id)
    return review_item(item, decide(item, POLICY), POLICY)


def test_review_items_carry_the_models_probability_and_rationale(tmp_path):
    model = build_model(tmp_path / "opinion")
    items = [_queued(0.95, "c-high"), _queued(0.86, "c-mid")]
    assert all(i is not None for i in items)
    with beam.Pipeline(runner="apache_beam.runners.portability.fn_api_runner.FnApiRunner") as p:
        answered = p | beam.Create(items) | ConsultSecondOpinion(model, POLICY)
        assert_that(
            answered
            | beam.Map(
                lambda i: (
                    i.content_id,
                    i.second_opinion,
                    i.second_opinion_model,
                    i.second_opinion_rationale.split(" against: ")[0],
                )
            ),
            equal_to(
                [
                    ("c-high", pytest.approx(0.9), "tiny_opinion@t1", "content score above 0.9"),
                    ("c-mid", pytest.approx(0.2), "tiny_opinion@t1", "content score below 0.9"),
                ]
            ),
        )


def test_the_category_policy_text_reaches_the_model(tmp_path):
    handler = SecondOpinionHandler(build_model(tmp_path / "opinion"))
    loaded = handler.load_model()
    text = POLICY.category_text("synthetic_media_undisclosed")
    (result,) = handler.run_inference([("{}", text)], loaded)
    assert result.inference.rationale.endswith(text[:40]) and result.inference.probability == pytest.approx(0.2)


def test_a_model_with_another_signature_is_refused_at_load(tmp_path):
    handler = SecondOpinionHandler(build_model(tmp_path / "wrong", outputs=("probability",)))
    with pytest.raises(ValueError, match="a second opinion takes"):
        handler.load_model()


def test_items_the_model_fails_on_are_queued_without_an_opinion(tmp_path):
    failing = build_model(tmp_path / "failing", fail_on=r'.*"content_score": 0\.95.*')
    item = _queued(0.95, "c-high")
    with beam.Pipeline(runner="apache_beam.runners.portability.fn_api_runner.FnApiRunner") as p:
        answered = p | beam.Create([item]) | ConsultSecondOpinion(failing, POLICY)
        assert_that(answered | beam.Map(lambda i: (i.content_id, i.second_opinion)), equal_to([("c-high", None)]))
