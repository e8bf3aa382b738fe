"""Knowing when not to know: a per-modality gate on inputs unlike the model's training data.

A detector trained on one population answers on any input, and on an input unlike all of its
training data it often answers with certainty: a human voice recorded on a phone is neither
the corpus's "real" nor its "synthetic" audio, and a calibrated 1.0 there is not evidence. So
each modality's model directory carries a `DomainGate` fitted on the same training split as
the model, over the same vector of hand-made signals the model reads (visual and audio
`handcrafted`, the metadata vector):

1. each signal is put on a robust scale (median and interquartile range of the training
   split; a signal with no spread uses its standard deviation) and clipped to +-12, so one
   wild value counts as far but cannot stand for the whole vector;
2. the distance is the Mahalanobis distance of that vector from the training mean under a
   shrunk covariance (Ledoit-Wolf), so signals that move together in training (MFCC
   statistics, co-occurrence counts) count once, and a combination never seen counts even
   when every signal alone is within range;
3. the threshold is a quantile (default 0.99) of the distances of the *validation* split, so
   about 1% of in-distribution items abstain, by construction and measured.

Above the threshold the modality abstains: it does not vote in fusion, its score row says so
(`<modality>_abstained`, with the distance, the threshold and the signals furthest out as the
reason), and content evidence that abstains cannot support an automated removal. The gate is
`domain.npz` beside the SavedModel, so a drop-in model without one simply never abstains (and
its card says so).
"""

from __future__ import annotations

import dataclasses
import io
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

GATE_FILE = "domain.npz"
DEFAULT_QUANTILE = 0.99
_CLIP = 12.0
_TOP_SIGNALS = 3
# Which serving input each modality's gate reads: the per-item hand-made signals.
GATE_INPUT = {"visual": "handcrafted", "audio": "handcrafted", "metadata": "metadata"}


@dataclasses.dataclass(frozen=True)
class DomainVerdict:
    """The gate's answer for one item."""

    distance: float
    abstained: bool
    reason: str | None
    signals: str | None = None  # the hand-made signals furthest from the training data, robust z


@dataclasses.dataclass(frozen=True, eq=False)
class DomainGate:
    """A fitted gate: robust scaling, shrunk precision matrix and the abstention threshold."""

    modality: str
    centre: np.ndarray  # [D] training medians
    scale: np.ndarray  # [D] robust spreads
    mean: np.ndarray  # [D] training mean of the clipped, scaled signals
    precision: np.ndarray  # [D, D] inverse of the shrunk covariance
    threshold: float
    quantile: float
    signal_names: tuple[str, ...] = ()

    @property
    def input_name(self) -> str:
        return GATE_INPUT[self.modality]

    def _scaled(self, x: np.ndarray) -> np.ndarray:
        x = np.nan_to_num(np.asarray(x, dtype=np.float64), nan=0.0, posinf=1e6, neginf=-1e6)
        return np.clip((x - self.centre) / self.scale, -_CLIP, _CLIP)

    def distances(self, x: np.ndarray) -> np.ndarray:
        """Mahalanobis distances of rows of `x` [N, D] from the training data."""
        centred = self._scaled(np.atleast_2d(x)) - self.mean
        return np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", centred, self.precision, centred), 0.0))

    def judge(self, x: np.ndarray) -> list[DomainVerdict]:
        """One verdict per row of `x`: the distance, and a reason where the model abstains."""
        rows = np.atleast_2d(x)
        verdicts = []
        for row, distance in zip(rows, self.distances(rows)):
            signals = self.furthest_signals(row)
            if distance <= self.threshold:
                verdicts.append(DomainVerdict(float(distance), False, None, signals))
                continue
            reason = (
                f"out_of_distribution: {self.input_name} distance {distance:.1f} > {self.threshold:.1f} "
                f"(q{self.quantile:g} of validation); furthest: {signals}"
            )
            verdicts.append(DomainVerdict(float(distance), True, reason, signals))
        return verdicts

    def furthest_signals(self, row: np.ndarray, count: int = _TOP_SIGNALS) -> str:
        """The named signals of one item furthest from the training data, in robust z units
        ("name +4.2, ..."): what stands out in this item, shown to the people who review it."""
        deviations = self._scaled(row[None, :])[0]
        furthest = np.argsort(-np.abs(deviations))[:count]
        return ", ".join(f"{self._name(i)} {deviations[i]:+.1f}" for i in furthest)

    def _name(self, index: int) -> str:
        return self.signal_names[index] if index < len(self.signal_names) else f"[{index}]"

    def save(self, directory: str | Path) -> None:
        np.savez_compressed(
            Path(directory) / GATE_FILE,
            centre=self.centre,
            scale=self.scale,
            mean=self.mean,
            precision=self.precision,
            facts=np.asarray(
                json.dumps(
                    {
                        "modality": self.modality,
                        "threshold": self.threshold,
                        "quantile": self.quantile,
                        "signal_names": list(self.signal_names),
                    }
                )
            ),
        )

    @classmethod
    def load(cls, directory: str | Path) -> DomainGate | None:
        """The gate beside a SavedModel, or None when the directory has none."""
        from models import storage

        path = storage.join(directory, GATE_FILE)
        if not storage.exists(path):
            return None
        with np.load(io.BytesIO(storage.read_bytes(path)), allow_pickle=False) as stored:
            facts = json.loads(str(stored["facts"]))
            return cls(
                modality=facts["modality"],
                centre=stored["centre"],
                scale=stored["scale"],
                mean=stored["mean"],
                precision=stored["precision"],
                threshold=float(facts["threshold"]),
                quantile=float(facts["quantile"]),
                signal_names=tuple(facts.get("signal_names", ())),
            )

    def card(self) -> dict:
        """What the model card says about the gate."""
        return {
            "method": "Mahalanobis distance of robustly scaled, clipped hand-made signals from the training split, "
            "Ledoit-Wolf shrunk covariance",
            "input": self.input_name,
            "threshold": self.threshold,
            "threshold_is": f"q{self.quantile:g} of the validation split's distances",
            "file": GATE_FILE,
        }


def fit_gate(
    modality: str,
    train: np.ndarray,
    validation: np.ndarray,
    quantile: float = DEFAULT_QUANTILE,
    signal_names: Sequence[str] = (),
) -> DomainGate:
    """Fits the gate on the training split's signals; the threshold on the validation split's."""
    from sklearn.covariance import LedoitWolf

    train = np.nan_to_num(np.asarray(train, dtype=np.float64))
    if train.ndim != 2 or len(train) < 10:
        raise ValueError(f"{modality}: a domain gate needs at least 10 training rows, got {len(train)}")
    centre = np.median(train, axis=0)
    q75, q25 = np.percentile(train, [75, 25], axis=0)
    scale = (q75 - q25) / 1.349
    fallback = train.std(axis=0)
    scale = np.where(scale > 1e-9, scale, np.where(fallback > 1e-9, fallback, 1.0))
    scaled = np.clip((train - centre) / scale, -_CLIP, _CLIP)
    estimator = LedoitWolf().fit(scaled)
    gate = DomainGate(
        modality=modality,
        centre=centre,
        scale=scale,
        mean=estimator.location_,
        precision=estimator.precision_,
        threshold=float("inf"),
        quantile=quantile,
        signal_names=tuple(signal_names),
    )
    reference = np.asarray(validation, dtype=np.float64) if len(validation) >= 10 else train
    threshold = float(np.quantile(gate.distances(reference), quantile))
    return dataclasses.replace(gate, threshold=threshold)
