"""The domain gate: a model abstains on input unlike its training data, and says why."""

from __future__ import annotations

import os
import shutil
import time

import numpy as np
import pytest

from models.domain import GATE_FILE, DomainGate, fit_gate
from models.handlers import SavedModelSignatureHandler
from models.registry import export_saved_model, resolve_model, write_card
from tests.test_models import _separable_dataset
from training.train import train_modality


def _cloud(count: int, seed: int, dim: int = 12) -> np.ndarray:
    """Correlated, heavy-tailed signals, as hand-made signals are."""
    rng = np.random.default_rng(seed)
    base = rng.standard_t(5, size=(count, dim))
    base[:, 1] = base[:, 0] * 0.9 + rng.normal(0, 0.2, count)  # two signals that move together
    base[:, 2] = (rng.random(count) < 0.3).astype(float)  # a binary one
    return base


def test_about_the_chosen_share_of_in_distribution_items_abstain():
    gate = fit_gate("audio", _cloud(3000, 0), _cloud(1000, 1), quantile=0.95)
    fresh = gate.distances(_cloud(4000, 2))
    assert 0.02 < float(np.mean(fresh > gate.threshold)) < 0.09


def test_far_input_abstains_and_the_reason_names_the_signal():
    gate = fit_gate("metadata", _cloud(2000, 0), _cloud(500, 1), signal_names=[f"s{i}" for i in range(12)])
    far = _cloud(1, 3)[0]
    far[5] = 40.0
    (verdict,) = gate.judge(far[None, :])
    assert verdict.abstained and verdict.distance > gate.threshold
    assert "out_of_distribution" in verdict.reason and "s5 +" in verdict.reason.split("furthest:")[1].split(",")[0]


def test_a_combination_never_seen_abstains_though_each_signal_is_in_range():
    gate = fit_gate("visual", _cloud(3000, 0), _cloud(1000, 1))
    usual = _cloud(1, 4)[0]
    broken = usual.copy()
    broken[0], broken[1] = 2.0, -2.0  # each alone is common; together they never happen
    (seen,), (unseen,) = gate.judge(usual[None, :]), gate.judge(broken[None, :])
    assert not seen.abstained and unseen.abstained


def test_the_gate_round_trips_through_its_file(tmp_path):
    gate = fit_gate("audio", _cloud(500, 0), _cloud(200, 1), signal_names=["a"] * 12)
    gate.save(tmp_path)
    loaded = DomainGate.load(tmp_path)
    probe = _cloud(50, 5)
    np.testing.assert_allclose(loaded.distances(probe), gate.distances(probe))
    assert (loaded.threshold, loaded.quantile, loaded.modality) == (gate.threshold, gate.quantile, "audio")
    assert DomainGate.load(tmp_path / "elsewhere") is None


def test_a_gate_needs_enough_training_rows():
    with pytest.raises(ValueError, match="at least 10 training rows"):
        fit_gate("audio", _cloud(5, 0), _cloud(5, 1))


@pytest.fixture(scope="module")
def gated_metadata_model(tmp_path_factory):
    dataset = _separable_dataset(count=64)
    model, facts = train_modality("metadata", dataset, epochs=10, batch_size=16, seed=1, verbose=0)
    root = tmp_path_factory.mktemp("gated")
    path = root / "metadata" / "20260101T000000"
    path.mkdir(parents=True)
    export_saved_model(model, path, facts["calibration"]["scale"], facts["calibration"]["bias"])
    write_card(path, {"name": "metadata_detector", "modality": "metadata", "version": "20260101T000000"})
    fit_gate("metadata", dataset["train"]["inputs"]["metadata"], dataset["validation"]["inputs"]["metadata"]).save(path)
    return root, dataset


def test_the_handler_answers_with_the_gate_verdict(gated_metadata_model):
    root, dataset = gated_metadata_model
    handler = SavedModelSignatureHandler(resolve_model(root, "metadata").path, "metadata")
    model = handler.load_model()
    usual = dataset["test"]["inputs"]["metadata"][:8]
    unusual = usual.copy() + 50.0  # every signal far outside what training saw
    answers = [r.inference for r in handler.run_inference([{"metadata": row} for row in np.r_[usual, unusual]], model)]
    assert all(0.0 <= a.probability <= 1.0 for a in answers)
    assert sum(a.domain.abstained for a in answers[:8]) <= 2
    assert all(a.domain.abstained and a.domain.reason for a in answers[8:])


def test_a_model_directory_is_loaded_once_a_process_until_a_file_in_it_changes(gated_metadata_model, tmp_path):
    """Several jobs in one process share a version's load; a directory rewritten in place (its
    gate refitted here) is loaded anew, gate and all."""
    root, dataset = gated_metadata_model
    copy = tmp_path / "metadata" / "20260101T000000"
    shutil.copytree(resolve_model(root, "metadata").path, copy)
    first = SavedModelSignatureHandler(str(copy), "metadata").load_model().current()
    assert SavedModelSignatureHandler(str(copy), "metadata").load_model().current() is first
    inputs = dataset["train"]["inputs"]["metadata"]
    gate = fit_gate("metadata", inputs + 1.0, dataset["validation"]["inputs"]["metadata"] + 1.0)
    gate.save(copy)
    os.utime(copy / GATE_FILE, ns=(time.time_ns() + 10**9,) * 2)  # a later time, whatever the clock's grain
    again = SavedModelSignatureHandler(str(copy), "metadata").load_model().current()
    assert again is not first and np.allclose(again.domain.centre, gate.centre)
