"""A network's training that survives a stop: the run started again goes on from the last
finished epoch, and stops and restores as the uninterrupted run would have.

A visual detector trained on the model report's ten thousand items takes hours on two cores;
a stopped run that kept nothing would start again from nothing. Keras's `BackupAndRestore`
keeps the weights, the optimiser's state and the epoch count at each epoch's end, but not
early stopping's own state (the best validation loss, the epochs since it improved, the best
weights to restore at the end): `EarlyStoppingState` keeps that beside it.

The backup lives in a folder named by a fingerprint of everything that shapes the training
(`fingerprint`): a run on other data, another seed or other settings starts afresh instead of
resuming a different training. Keras deletes the backup when training ends.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path
from types import ModuleType
from typing import Any

import keras
import numpy as np

STATE_FILE = "early_stopping.json"
BEST_WEIGHTS_FILE = "early_stopping_best.npz"


def fingerprint(facts: dict[str, Any]) -> str:
    """A short digest of `facts` (JSON-able): equal facts, equal folder."""
    return hashlib.sha256(json.dumps(facts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def source_digest(*modules: ModuleType) -> str:
    """A digest of the modules' source: a network built by other code does not resume from this
    one's weights."""
    return hashlib.sha256(b"".join(Path(m.__file__).read_bytes() for m in modules)).hexdigest()[:16]


class EarlyStoppingState(keras.callbacks.Callback):
    """Writes `early_stopping`'s state to `folder` at each epoch's end and puts it back when a
    stopped training starts again. List it after the `EarlyStopping` it keeps (its
    `on_train_begin` resets the state this one restores) and before the `BackupAndRestore`
    that shares `folder` (a stop between the two then leaves this state no older than the
    epoch count)."""

    def __init__(self, early_stopping: keras.callbacks.EarlyStopping, folder: str | Path):
        super().__init__()
        self.early_stopping = early_stopping
        self.folder = Path(folder)
        self._saved_best_epoch: int | None = None

    def on_train_begin(self, logs=None):
        state_path = self.folder / STATE_FILE
        if not state_path.exists():
            return
        state = json.loads(state_path.read_text())
        stopper = self.early_stopping
        stopper.best, stopper.wait, stopper.best_epoch = state["best"], state["wait"], state["best_epoch"]
        weights_path = self.folder / BEST_WEIGHTS_FILE
        if weights_path.exists():
            with np.load(weights_path) as saved:
                stopper.best_weights = [saved[f"w{i}"] for i in range(len(saved.files))]
        self._saved_best_epoch = stopper.best_epoch

    def on_epoch_end(self, epoch, logs=None):
        stopper = self.early_stopping
        self.folder.mkdir(parents=True, exist_ok=True)
        if stopper.best_weights is not None and stopper.best_epoch != self._saved_best_epoch:
            _replace(self.folder / BEST_WEIGHTS_FILE, _npz_bytes(stopper.best_weights))
            self._saved_best_epoch = stopper.best_epoch
        state = {"best": None if stopper.best is None else float(stopper.best), "wait": stopper.wait,
                 "best_epoch": stopper.best_epoch}  # fmt: skip
        _replace(self.folder / STATE_FILE, json.dumps(state).encode())


def holds_stopped_training(folder: str | Path) -> bool:
    """Whether `folder` keeps a stopped training's backup (Keras writes its epoch count last)."""
    return (Path(folder) / "training_metadata.json").exists()


def resumable(early_stopping: keras.callbacks.EarlyStopping | None, folder: str | Path) -> list:
    """The callbacks of a training that resumes from `folder`: early stopping (when given) with
    its state kept, then the backup of weights, optimiser and epoch."""
    backup = keras.callbacks.BackupAndRestore(str(folder))
    if early_stopping is None:
        return [backup]
    return [early_stopping, EarlyStoppingState(early_stopping, folder), backup]


def _npz_bytes(arrays: list[np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **{f"w{i}": a for i, a in enumerate(arrays)})
    return buffer.getvalue()


def _replace(path: Path, data: bytes) -> None:
    """Writes `path` whole or not at all: a stop mid-write leaves the previous file."""
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(data)
    os.replace(partial, path)
