"""RunInference model handler for SavedModels that honour a modality's serving signature.

Beam's TF handlers load with `tf.keras.models.load_model`, which Keras 3 refuses for a
SavedModel directory. This handler is a Beam `ModelHandler` of its own (Beam's batching,
metrics and model sharing come with it): it loads with `tf.saved_model.load` and calls the
`serving_default` signature on a batch of input dicts stacked per input name. A model directory may carry a domain gate
(`models.domain`) beside the SavedModel; the handler loads it with the model and every answer
says whether the input lies inside what the model was trained on.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from apache_beam.ml.inference.base import ModelHandler, PredictionResult

from models.domain import DomainGate, DomainVerdict
from models.signature import OUTPUT_NAME, SIGNATURES


class LoadedSignature:
    """A loaded SavedModel, its serving function (kept together so variables stay alive) and
    its domain gate, if the directory has one."""

    def __init__(self, path: str):
        import tensorflow as tf

        self.module = tf.saved_model.load(path)
        if "serving_default" not in self.module.signatures:
            raise ValueError(f"{path} has no serving_default signature")
        self.serving = self.module.signatures["serving_default"]
        self.input_names = set(self.serving.structured_input_signature[1])
        self.domain = DomainGate.load(path)


@dataclasses.dataclass(frozen=True)
class ModelAnswer:
    """One item's answer: the calibrated probability and, with a gate, the domain verdict."""

    probability: float
    domain: DomainVerdict | None = None


def judge_domain(model: LoadedSignature, stacked: dict[str, np.ndarray]) -> list[DomainVerdict | None]:
    """The domain gate's verdict per stacked item (None for every item without a gate)."""
    count = len(next(iter(stacked.values())))
    if model.domain is None:
        return [None] * count
    return list(model.domain.judge(stacked[model.domain.input_name]))


def predict_probabilities(model: LoadedSignature, stacked: dict[str, np.ndarray], batch_size: int = 64) -> np.ndarray:
    """Calibrated probabilities for inputs stacked on axis 0, in batches of `batch_size`."""
    import tensorflow as tf

    count = len(next(iter(stacked.values())))
    outputs = []
    for start in range(0, count, batch_size):
        chunk = {name: tf.convert_to_tensor(array[start : start + batch_size]) for name, array in stacked.items()}
        outputs.append(model.serving(**chunk)[OUTPUT_NAME].numpy().reshape(-1))
    return np.concatenate(outputs) if outputs else np.zeros((0,), np.float32)


def signature_inference_fn(
    model: LoadedSignature,
    batch: Sequence[dict[str, np.ndarray]],
    inference_args: dict[str, Any],
    model_id: str | None = None,
) -> Iterable[PredictionResult]:
    """Stacks a batch of input dicts, runs the signature, yields one `ModelAnswer` per example."""
    stacked = {name: np.stack([example[name] for example in batch]) for name in batch[0]}
    probabilities = predict_probabilities(model, stacked, batch_size=len(batch))
    if probabilities.shape[0] != len(batch):
        raise ValueError(f"model returned {probabilities.shape[0]} scores for a batch of {len(batch)}")
    verdicts = judge_domain(model, stacked)
    # The example tensors are dropped from the result: downstream needs the key and answer only.
    return [PredictionResult(None, ModelAnswer(float(p), v), model_id) for p, v in zip(probabilities, verdicts)]


class SavedModelSignatureHandler(ModelHandler[dict[str, np.ndarray], PredictionResult, LoadedSignature]):
    """Serves one modality's SavedModel through RunInference, batched.

    Args:
        model_uri: the SavedModel directory.
        modality: which signature in `models.signature.SIGNATURES` the model honours; checked
            when the model loads, so a wrong model fails at start-up, not per element.
        min_batch_size, max_batch_size: RunInference batching bounds.
    """

    def __init__(self, model_uri: str, modality: str, min_batch_size: int = 1, max_batch_size: int = 32, **kwargs):
        super().__init__(min_batch_size=min_batch_size, max_batch_size=max_batch_size, **kwargs)
        self.model_uri, self.modality = model_uri, modality

    def load_model(self) -> LoadedSignature:
        loaded = LoadedSignature(self.model_uri)
        expected = {spec.name for spec in SIGNATURES[self.modality]}
        if loaded.input_names != expected:
            raise ValueError(
                f"{self.model_uri}: serving_default takes {sorted(loaded.input_names)}, "
                f"the {self.modality} signature needs {sorted(expected)}"
            )
        return loaded

    def run_inference(
        self,
        batch: Sequence[dict[str, np.ndarray]],
        model: LoadedSignature,
        inference_args: dict[str, Any] | None = None,
    ) -> Iterable[PredictionResult]:
        return signature_inference_fn(model, batch, inference_args or {}, model_id=self.model_uri)

    def get_num_bytes(self, batch: Sequence[dict[str, np.ndarray]]) -> int:
        return sum(array.nbytes for example in batch for array in example.values())

    def get_metrics_namespace(self) -> str:
        return f"inference_{self.modality}"
