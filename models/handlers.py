"""RunInference model handler for SavedModels that honour a modality's serving signature.

Beam's TF handlers load with `tf.keras.models.load_model`, which Keras 3 refuses for a
SavedModel directory. This handler is a Beam `ModelHandler` of its own (Beam's batching,
metrics and model sharing come with it): it loads with `tf.saved_model.load` and calls the
`serving_default` signature on a batch of input dicts stacked per input name. A model directory may carry a domain gate
(`models.domain`) beside the SavedModel; the handler loads it with the model and every answer
says whether the input lies inside what the model was trained on.

Model refresh: with `refresh_s`, the handler looks beside the version it serves
(`<model_dir>/<modality>/<version>/`, local or `gs://`) every `refresh_s` seconds for the
version the registry would now choose, loads it, checks its signature, and serves it from the
next batch on; every answer names the version that produced it. A version that fails to load
(half copied, wrong signature, trained on other features) is logged and counted, the served one
stays, and the check repeats. This runs inside the worker's RunInference, so it behaves the same
on every runner (RunInference's side-input refresh does not run on the local streaming runner;
docs/data-engineers.md, "Model refresh").
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
from apache_beam.metrics import Metrics
from apache_beam.ml.inference.base import ModelHandler, PredictionResult

from models.domain import DomainGate, DomainVerdict
from models.signature import OUTPUT_NAME, SIGNATURES

LOG = logging.getLogger(__name__)


class LoadedSignature:
    """A loaded SavedModel, its serving function (kept together so variables stay alive) and
    its domain gate, if the directory has one."""

    def __init__(self, path: str):
        import tensorflow as tf

        from models.registry import read_card

        self.path = path
        self.module = tf.saved_model.load(path)
        if "serving_default" not in self.module.signatures:
            raise ValueError(f"{path} has no serving_default signature")
        self.serving = self.module.signatures["serving_default"]
        self.input_names = set(self.serving.structured_input_signature[1])
        self.domain = DomainGate.load(path)
        card = read_card(path) or {}
        self.version = str(card.get("version", path.rstrip("/").rsplit("/", 1)[-1]))


# A process that runs several jobs (a test session, an operator command that scores sets in
# turn) loads each local model directory once: a registry version is written once and never in
# place, and the key holds the modification times of the files a load reads, so a directory
# rewritten in place is loaded anew. Remote directories (gs://) are loaded every time.
_LOADED: OrderedDict[tuple, LoadedSignature] = OrderedDict()
_LOADED_MAX = 8
_LOADED_LOCK = threading.Lock()


def _local_stamp(path: str) -> tuple | None:
    """The key of a local model directory's current contents, or None when it is not local."""
    if "://" in path or not os.path.isdir(path):
        return None
    stamps = []
    for root, _, files in os.walk(path):
        stamps += [(os.path.join(root, f), os.stat(os.path.join(root, f)).st_mtime_ns) for f in sorted(files)]
    return (os.path.realpath(path), tuple(sorted(stamps)))


def load_signature(path: str) -> LoadedSignature:
    """The SavedModel at `path`, loaded once per process while its files are unchanged."""
    key = _local_stamp(path)
    if key is None:
        return LoadedSignature(path)
    with _LOADED_LOCK:
        if key in _LOADED:
            _LOADED.move_to_end(key)
            return _LOADED[key]
    loaded = LoadedSignature(path)
    with _LOADED_LOCK:
        _LOADED[key] = loaded
        while len(_LOADED) > _LOADED_MAX:
            _LOADED.popitem(last=False)
    return loaded


@dataclasses.dataclass(frozen=True)
class ModelAnswer:
    """One item's answer: the calibrated probability and, with a gate, the domain verdict."""

    probability: float
    domain: DomainVerdict | None = None
    model_version: str | None = None  # the version that answered (None outside the handler)


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
    return [
        PredictionResult(None, ModelAnswer(float(p), v, model.version), model_id)
        for p, v in zip(probabilities, verdicts)
    ]


class ServedModel:
    """The model a worker's RunInference shares between its threads: the loaded version, swapped
    in place when a refresh finds a newer one (under a lock, so a batch sees one version)."""

    def __init__(self, loaded: LoadedSignature, refresh: Callable[[LoadedSignature], LoadedSignature | None] | None,
                 every_s: float | None):  # fmt: skip
        self._loaded, self._refresh, self._every_s = loaded, refresh, every_s
        self._checked_at = time.monotonic()
        self._lock = threading.Lock()

    def current(self) -> LoadedSignature:
        """The version to answer a batch with, after a look for a newer one when one is due."""
        if self._refresh is None or time.monotonic() - self._checked_at < self._every_s:
            return self._loaded
        with self._lock:
            if time.monotonic() - self._checked_at >= self._every_s:
                self._checked_at = time.monotonic()
                self._loaded = self._refresh(self._loaded) or self._loaded
            return self._loaded


class SavedModelSignatureHandler(ModelHandler[dict[str, np.ndarray], PredictionResult, ServedModel]):
    """Serves one modality's SavedModel through RunInference, batched.

    Args:
        model_uri: the SavedModel directory.
        modality: which signature in `models.signature.SIGNATURES` the model honours; checked
            when the model loads, so a wrong model fails at start-up, not per element.
        min_batch_size, max_batch_size: RunInference batching bounds.
        refresh_s: when set, every `refresh_s` seconds serve the version the registry now
            chooses beside `model_uri` (module docstring); None serves `model_uri` throughout.
    """

    def __init__(self, model_uri: str, modality: str, min_batch_size: int = 1, max_batch_size: int = 32,
                 refresh_s: float | None = None, **kwargs):  # fmt: skip
        super().__init__(min_batch_size=min_batch_size, max_batch_size=max_batch_size, **kwargs)
        self.model_uri, self.modality, self.refresh_s = model_uri, modality, refresh_s

    def load_model(self) -> ServedModel:
        if self.refresh_s is None:
            return ServedModel(self._load(self.model_uri), None, None)
        # A worker (re)loading mid-stream starts from the registry's current choice, not the launch version.
        loaded = self._load_newer(self.model_uri, "the launch version") or self._load(self.model_uri)
        return ServedModel(loaded, self._refresh, self.refresh_s)

    def _refresh(self, serving: LoadedSignature) -> LoadedSignature | None:
        return self._load_newer(serving.path, serving.version)

    def _load(self, path: str) -> LoadedSignature:
        loaded = load_signature(path)
        expected = {spec.name for spec in SIGNATURES[self.modality]}
        if loaded.input_names != expected:
            raise ValueError(
                f"{path}: serving_default takes {sorted(loaded.input_names)}, "
                f"the {self.modality} signature needs {sorted(expected)}"
            )
        return loaded

    def _load_newer(self, serving_path: str, serving_version: str) -> LoadedSignature | None:
        """The version the registry now chooses beside `serving_path`, loaded, if it is another
        one; None (and a logged, counted failure) when that version cannot be served."""
        from models.registry import resolve_model

        namespace = self.get_metrics_namespace()
        model_dir = serving_path.rstrip("/").rsplit("/", 2)[0]  # <model_dir>/<modality>/<version>
        try:
            chosen = resolve_model(model_dir, self.modality)
            if chosen is None or chosen.path.rstrip("/") == serving_path.rstrip("/"):
                return None
            loaded = self._load(chosen.path)
        except Exception as error:  # a half-copied or incompatible version must not stop serving
            Metrics.counter(namespace, "model_refresh_failed").inc()
            LOG.warning("%s model refresh: keeping %s: %s", self.modality, serving_version, error)
            return None
        Metrics.counter(namespace, "model_refreshed").inc()
        LOG.info("%s model refresh: %s -> %s", self.modality, serving_version, loaded.version)
        return loaded

    def run_inference(
        self,
        batch: Sequence[dict[str, np.ndarray]],
        model: ServedModel,
        inference_args: dict[str, Any] | None = None,
    ) -> Iterable[PredictionResult]:
        loaded = model.current()
        return signature_inference_fn(loaded, batch, inference_args or {}, model_id=loaded.path)

    def get_num_bytes(self, batch: Sequence[dict[str, np.ndarray]]) -> int:
        return sum(array.nbytes for example in batch for array in example.values())

    def get_metrics_namespace(self) -> str:
        return f"inference_{self.modality}"
