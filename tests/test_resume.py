"""A stopped training goes on from its last finished epoch, early stopping's state with it."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from training.resume import STATE_FILE, fingerprint, resumable


class _StopAt(keras.callbacks.Callback):
    """Ends the process's training as a kill would: an exception at the start of an epoch."""

    def __init__(self, epoch: int):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            raise KeyboardInterrupt


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype(np.float32)
    return x, (x[:, 0] > 0).astype(np.float32)


def _model() -> keras.Model:
    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss=keras.losses.BinaryCrossentropy(from_logits=True))
    return model


def _fit(model, callbacks, epochs=12):
    x, y = _data()
    return model.fit(x, y, validation_data=(x, y), epochs=epochs, batch_size=16, callbacks=callbacks, verbose=0)


def _stopper() -> keras.callbacks.EarlyStopping:
    return keras.callbacks.EarlyStopping(monitor="val_loss", patience=100, restore_best_weights=True)


def test_a_stopped_training_resumes_at_its_next_epoch_with_its_weights_and_early_stopping(tmp_path):
    first = _model()
    stopper = _stopper()
    with pytest.raises(KeyboardInterrupt):
        _fit(first, [*resumable(stopper, tmp_path), _StopAt(5)])
    weights_at_stop = [w.copy() for w in first.get_weights()]
    best_at_stop, best_epoch_at_stop = stopper.best, stopper.best_epoch
    assert (tmp_path / STATE_FILE).exists()

    second = _model()  # a new process: fresh weights, fresh early stopping
    assert not all(np.allclose(a, b) for a, b in zip(second.get_weights(), weights_at_stop))
    resumed_stopper = _stopper()

    class _Check(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 5:  # the weights and early stopping's best as the stopped run left them
                for a, b in zip(self.model.get_weights(), weights_at_stop):
                    np.testing.assert_allclose(a, b)
                assert resumed_stopper.best == pytest.approx(best_at_stop)
                assert resumed_stopper.best_epoch == best_epoch_at_stop
                assert resumed_stopper.best_weights is not None

    history = _fit(second, [*resumable(resumed_stopper, tmp_path), _Check()])
    assert len(history.history["loss"]) == 12 - 5
    assert not tmp_path.exists()  # a finished training leaves no backup behind


def test_early_stopping_counts_the_epochs_before_the_stop(tmp_path):
    """Patience spent before a stop is not given back after it: with a validation loss that
    never improves, the resumed run stops where the uninterrupted one would."""
    x, y = _data()

    def flat_fit(stopper, extra):
        model = _model()
        model.compile(optimizer=keras.optimizers.SGD(0.0), loss="mse")  # weights never move: no improvement
        callbacks = [*resumable(stopper, tmp_path), *extra]
        return model.fit(x, y, validation_data=(x, y), epochs=20, batch_size=64, callbacks=callbacks, verbose=0)

    stopper = keras.callbacks.EarlyStopping(monitor="val_loss", patience=3, min_delta=1.0)
    with pytest.raises(KeyboardInterrupt):
        flat_fit(stopper, [_StopAt(2)])
    resumed = keras.callbacks.EarlyStopping(monitor="val_loss", patience=3, min_delta=1.0)
    history = flat_fit(resumed, [])
    # Epoch 0 sets the best; epochs 1.. each wait one more; stop after epoch 3 (wait 3).
    assert resumed.stopped_epoch == 3
    assert len(history.history["loss"]) == 2  # epochs 2 and 3 only


def test_the_fingerprint_changes_with_anything_that_shapes_the_training():
    facts = {"modality": "visual", "seed": 7, "items": {"train": [["a", "b"], [0.0, 1.0]]}}
    assert fingerprint(facts) == fingerprint(dict(reversed(list(facts.items()))))
    assert fingerprint(facts) != fingerprint({**facts, "seed": 8})
    assert fingerprint(facts) != fingerprint({**facts, "items": {"train": [["a", "b"], [1.0, 1.0]]}})
