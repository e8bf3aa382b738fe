"""Scoring: one RunInference per modality, keyed by content_id, joined back per item."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterable, Mapping

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.ml.inference.base import KeyedModelHandler, PredictionResult, RunInference
from apache_beam.transforms import userstate

from models.examples import model_inputs
from models.fusion import FusionModel
from models.handlers import ModelAnswer, SavedModelSignatureHandler
from models.registry import DeployedModel
from schemas.records import MediaFeatures, MediaInfo, ModalityScore, ScoredMedia, UploadEvent, utc_now
from schemas.vocabulary import MODALITIES
from transforms.dead_letter import DEAD, FlatMapOrDeadLetter, dead_letter_for, dead_letter_from_failure
from transforms.fusion import fuse_scores


def carries(features: MediaFeatures, modality: str) -> bool:
    """Whether the item has the modality at all (a still has no audio): only those go to its model."""
    return modality in features.modalities()


def keyed_features(features: MediaFeatures) -> tuple[str, MediaFeatures]:
    return features.content_id, features


def to_model_inputs(keyed: tuple[str, MediaFeatures], modality: str) -> tuple[str, dict]:
    """RunInference's preprocessing: an item's serving inputs for one modality."""
    content_id, features = keyed
    inputs = model_inputs(features, modality)
    if inputs is None:
        raise ValueError(f"{content_id} has no {modality} inputs")
    return content_id, inputs


def to_modality_score(keyed: tuple[str, PredictionResult], model: DeployedModel) -> tuple[str, ModalityScore]:
    content_id, result = keyed
    answer: ModelAnswer = result.inference
    domain = answer.domain
    if domain is not None and domain.abstained:
        Metrics.counter("inference", f"{model.modality}_abstained").inc()
    return content_id, ModalityScore(
        model.modality,
        answer.probability,
        model.name,
        answer.model_version or model.version,  # the version that answered: a refresh may have swapped it
        abstained=bool(domain and domain.abstained),
        abstain_reason=domain.reason if domain else None,
        domain_distance=domain.distance if domain else None,
        signals=domain.signals if domain else None,
    )


def failed_batch_dead_letters(failure, step: str):
    """A failed inference batch becomes one dead-letter row per item in it."""
    batch, error = failure
    for element in batch:
        yield dead_letter_from_failure((element, error), step, reason="inference_failed")


class ScoreModality(beam.PTransform):
    """MediaFeatures -> (content_id, ModalityScore) for one modality's deployed model.

    Returns `(scores, dead_letters)`; items without the modality are not sent to the model.
    The conversion to model inputs and to a score run inside RunInference (its pre- and
    post-processing), so a failure in either reaches RunInference's dead-letter output with
    the failed batch's.
    """

    def __init__(self, model: DeployedModel, min_batch_size: int, max_batch_size: int, accelerator: str | None = None,
                 refresh_s: float | None = None):  # fmt: skip
        super().__init__()
        self._model, self._accelerator = model, accelerator
        handler = SavedModelSignatureHandler(
            model.path, model.modality, min_batch_size=min_batch_size, max_batch_size=max_batch_size,
            refresh_s=refresh_s,
        )  # fmt: skip
        self._handler = (
            KeyedModelHandler(handler)
            .with_preprocess_fn(functools.partial(to_model_inputs, modality=model.modality))
            .with_postprocess_fn(functools.partial(to_modality_score, model=model))
        )

    def expand(self, features):
        modality = self._model.modality
        step = f"inference_{modality}"
        scores, errors = (
            features
            | "WithModality" >> beam.Filter(carries, modality=modality)
            | "KeyByContentId" >> beam.Map(keyed_features)
            | "RunInference" >> self._run_inference()
        )
        failed = [
            errors.failed_inferences | "FailedBatches" >> beam.FlatMap(failed_batch_dead_letters, step=step),
            *(
                pcoll
                | f"FailedPreprocessing{i}"
                >> beam.Map(dead_letter_from_failure, step=f"{step}_inputs", reason="invalid_model_inputs")
                for i, pcoll in enumerate(errors.failed_preprocessing)
            ),
            *(
                pcoll
                | f"FailedPostprocessing{i}"
                >> beam.Map(dead_letter_from_failure, step=f"{step}_score", reason="invalid_model_output")
                for i, pcoll in enumerate(errors.failed_postprocessing)
            ),
        ]
        return scores, failed | "MergeFailures" >> beam.Flatten()

    def _run_inference(self):
        """RunInference, with the accelerator hint when one is given: on Dataflow with right
        fitting, only this step runs on GPU workers; decoding stays on CPU workers."""
        transform = RunInference(self._handler).with_exception_handling()
        return transform.with_resource_hints(accelerator=self._accelerator) if self._accelerator else transform


def assemble_scores(
    content_id: str, grouped: Mapping[str, list], deployed: tuple[str, ...], fusion: FusionModel | None = None
) -> Iterable[ScoredMedia]:
    """Joins an item's features with its modality scores and fuses them.

    An item is scored only when every modality it carries that has a deployed model came
    back with a score; otherwise its failure is already in the dead letter and emitting a
    partial score here would hide it.
    """
    (facts,) = grouped["features"]
    scores = []
    for modality in facts.modalities:
        found = grouped.get(modality, [])
        if modality in deployed and not found:
            Metrics.counter("inference", f"missing_{modality}_score").inc()
            return
        scores.extend(found[:1])
    fused = fuse_scores(tuple(scores), fusion)
    yield ScoredMedia(
        event=facts.event,
        sha256=facts.sha256,
        info=facts.info,
        modalities_present=facts.modalities,
        scores=tuple(scores),
        fused_score=fused.score,
        fusion_method=fused.method,
        fusion_version=fused.version,
        scored_at=utc_now(),
        hash_match=facts.hash_match,
        hash_distance=facts.hash_distance,
        evasion_match=facts.evasion_match,
        content_score=fused.content_score,
    )


@dataclasses.dataclass(frozen=True)
class ItemFacts:
    """What the score join needs of an item: not its tensors, which stay out of the shuffle."""

    event: UploadEvent
    sha256: str
    info: MediaInfo
    modalities: tuple[str, ...]
    hash_match: str | None = None
    hash_distance: int | None = None
    evasion_match: str | None = None


def _keyed_facts(features: MediaFeatures) -> tuple[str, ItemFacts]:
    facts = ItemFacts(
        features.event,
        features.sha256,
        features.info,
        features.modalities(),
        features.hash_match,
        features.hash_distance,
        features.evasion_match,
    )
    return features.content_id, facts


def _assemble(keyed, deployed: tuple[str, ...], fusion: FusionModel | None):
    content_id, grouped = keyed
    yield from assemble_scores(content_id, grouped, deployed, fusion)


# How long (event time) the streaming join waits for an item's last modality before it gives up
# on it (its failure, if any, is already a dead letter); longer than any allowed lateness.
JOIN_TIMEOUT_S = 48 * 3600


class _JoinScoresInState(beam.DoFn):
    """Streaming form of the `JoinScores` CoGroupByKey: an item's facts and modality scores
    gather in keyed state until every deployed modality it carries has answered, then the item
    is assembled as in batch. A modality that failed (its dead letter, tagged "failed") ends
    the wait with nothing emitted, as batch does; a timer clears an item that never completes."""

    PARTS = userstate.BagStateSpec("parts", beam.coders.PickleCoder())
    GIVE_UP = userstate.TimerSpec("give_up", beam.TimeDomain.WATERMARK)

    def __init__(self, deployed: tuple[str, ...], fusion: FusionModel | None):
        self._deployed, self._fusion = deployed, fusion

    def process(self, keyed, timestamp=beam.DoFn.TimestampParam, parts=beam.DoFn.StateParam(PARTS),
                give_up=beam.DoFn.TimerParam(GIVE_UP)):  # fmt: skip
        content_id, part = keyed
        parts.add(part)
        held = list(parts.read())
        facts = [value for kind, value in held if kind == "features"]
        give_up.set(timestamp + JOIN_TIMEOUT_S)
        if not facts:
            return
        expected = {m for m in facts[0].modalities if m in self._deployed}
        failed = {value for kind, value in held if kind == "failed"}
        answered = {kind for kind, _ in held if kind in MODALITIES}
        if expected & failed:
            parts.clear()
            give_up.clear()
        elif expected <= answered:
            parts.clear()
            give_up.clear()
            grouped = {"features": facts[:1], **{m: [v for k, v in held if k == m] for m in answered}}
            try:
                scored = list(assemble_scores(content_id, grouped, self._deployed, self._fusion))
            except Exception as error:  # as the batch join's FlatMapOrDeadLetter does
                yield beam.pvalue.TaggedOutput(DEAD, dead_letter_for(facts[0].event, error, "fuse_scores"))
                return
            yield from scored

    @userstate.on_timer(GIVE_UP)
    def forget(self, parts=beam.DoFn.StateParam(PARTS)):
        Metrics.counter("inference", "join_timed_out").inc()
        parts.clear()


def _tagged(keyed: tuple, tag: str) -> tuple[str, tuple[str, object]]:
    content_id, value = keyed
    return content_id, (tag, value)


def _failure_marker(dead_letter, modality: str):
    if dead_letter.content_id:
        yield dead_letter.content_id, ("failed", modality)


class ScoreMedia(beam.PTransform):
    """MediaFeatures -> ScoredMedia: every modality through its model, then fused.

    Returns `(scored, dead_letters)`. With no models deployed every item is still emitted,
    with no scores and no fused score (a features-only run, used to build training data).
    """

    def __init__(
        self,
        models: Mapping[str, DeployedModel],
        min_batch_size: int = 1,
        max_batch_size: int = 32,
        fusion: FusionModel | None = None,
        accelerator: str | None = None,
        streaming: bool = False,
        refresh_s: Mapping[str, float] | None = None,
    ):
        super().__init__()
        self._models = dict(models)
        self._refresh_s = dict(refresh_s or {})  # modality -> seconds between looks for a newer version
        self._fusion = fusion
        self._batch = (min_batch_size, max_batch_size)
        self._accelerator = accelerator
        self._streaming = streaming

    def expand(self, features):
        facts = features | "KeyFacts" >> beam.Map(_keyed_facts)
        grouped_inputs, tagged, dead_letters = (
            {"features": facts},
            [facts | "TagFacts" >> beam.Map(_tagged, "features")],
            [],
        )
        for modality in MODALITIES:
            if modality not in self._models:
                continue
            name = modality.capitalize()
            scores, dead = features | f"Score{name}" >> ScoreModality(
                self._models[modality], *self._batch, accelerator=self._accelerator,
                refresh_s=self._refresh_s.get(modality),
            )  # fmt: skip
            grouped_inputs[modality] = scores
            dead_letters.append(dead)
            if self._streaming:
                tagged.append(scores | f"Tag{name}" >> beam.Map(_tagged, modality))
                tagged.append(dead | f"Failed{name}" >> beam.FlatMap(_failure_marker, modality))
        deployed = tuple(self._models)
        if self._streaming:
            joined = (
                tagged
                | "AllParts" >> beam.Flatten()
                | "JoinScoresInState"
                >> beam.ParDo(_JoinScoresInState(deployed, self._fusion)).with_outputs(DEAD, main="scored")
            )
            scored, unfused = joined.scored, joined[DEAD]
        else:
            scored, unfused = (
                grouped_inputs
                | "JoinScores" >> beam.CoGroupByKey()
                | "FuseScores" >> FlatMapOrDeadLetter(_assemble, "fuse_scores", deployed=deployed, fusion=self._fusion)
            )
        dead_letters.append(unfused)
        dead = dead_letters | "MergeInferenceFailures" >> beam.Flatten(pipeline=features.pipeline)
        return scored, dead
