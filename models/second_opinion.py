"""A second opinion for the review band: a model that reads the evidence and the policy text.

In production this slot holds a vision-language model that is shown what a reviewer is shown
(the queue row's evidence, and in a richer form the contact sheet) and the category's policy
text, and answers how likely the item violates that policy and why. Any SavedModel whose
`serving_default` signature honours the contract below drops in:

    inputs:  evidence  string [N]  the queue row's evidence JSON (`enforcement.review`)
             policy    string [N]  the policy text of the item's category (policy YAML)
    outputs: probability  float [N]  likelihood the item violates that policy
             rationale    string [N] a short reason, stored with the queue row (cut to 500 chars)

`SecondOpinionHandler` serves it through Beam's RunInference (batched, on the accelerator
workers where there are some); `transforms.review.ConsultSecondOpinion` attaches the answer to
the review queue's rows. The model is advice beside the scores: it never decides an action.
Nothing is downloaded; the tests build a small model with TensorFlow's string ops.
"""

from __future__ import annotations

import dataclasses
import json
import posixpath
from collections.abc import Iterable, Sequence
from typing import Any

from apache_beam.ml.inference.base import ModelHandler, PredictionResult

INPUTS = ("evidence", "policy")
OUTPUTS = ("probability", "rationale")
MAX_RATIONALE = 500


@dataclasses.dataclass(frozen=True)
class SecondOpinion:
    probability: float
    rationale: str
    model: str  # name@version, from the model card where there is one


@dataclasses.dataclass(frozen=True)
class _Loaded:
    function: Any
    model: str


def _model_name(model_uri: str) -> str:
    from models import storage

    card_path = storage.join(model_uri, "model_card.json")
    if storage.exists(card_path):
        card = json.loads(storage.read_bytes(card_path))
        return f"{card.get('name', 'second_opinion')}@{card.get('version', '')}"
    return posixpath.basename(model_uri.rstrip("/"))


class SecondOpinionHandler(ModelHandler[tuple[str, str], PredictionResult, _Loaded]):
    """Serves a second-opinion SavedModel: (evidence, policy text) -> SecondOpinion."""

    def __init__(self, model_uri: str, min_batch_size: int = 1, max_batch_size: int = 16, **kwargs):
        super().__init__(min_batch_size=min_batch_size, max_batch_size=max_batch_size, **kwargs)
        self.model_uri = model_uri

    def load_model(self) -> _Loaded:
        """Loads the model and checks its signature, so a wrong model fails at start-up."""
        import tensorflow as tf

        loaded = tf.saved_model.load(self.model_uri)
        function = loaded.signatures.get("serving_default")
        if function is None:
            raise ValueError(f"{self.model_uri}: no serving_default signature")
        inputs = set(function.structured_input_signature[1])
        outputs = set(function.structured_outputs)
        if inputs != set(INPUTS) or not set(OUTPUTS) <= outputs:
            raise ValueError(
                f"{self.model_uri}: serving_default takes {sorted(inputs)} and gives {sorted(outputs)}; a second "
                f"opinion takes {list(INPUTS)} and gives {list(OUTPUTS)}"
            )
        return _Loaded(function, _model_name(self.model_uri))

    def run_inference(
        self, batch: Sequence[tuple[str, str]], model: _Loaded, inference_args: dict[str, Any] | None = None
    ) -> Iterable[PredictionResult]:
        import tensorflow as tf

        answer = model.function(
            evidence=tf.constant([evidence for evidence, _ in batch], tf.string),
            policy=tf.constant([policy for _, policy in batch], tf.string),
        )
        probabilities = answer["probability"].numpy().reshape(-1)
        rationales = answer["rationale"].numpy().reshape(-1)
        if len(probabilities) != len(batch) or len(rationales) != len(batch):
            raise ValueError(f"{model.model}: {len(batch)} questions, {len(probabilities)} answers")
        return [
            PredictionResult(
                example, SecondOpinion(float(p), r.decode("utf-8", "replace")[:MAX_RATIONALE], model.model)
            )
            for example, p, r in zip(batch, probabilities, rationales)
        ]

    def get_num_bytes(self, batch: Sequence[tuple[str, str]]) -> int:
        return sum(len(evidence) + len(policy) for evidence, policy in batch)

    def get_metrics_namespace(self) -> str:
        return "second_opinion"
