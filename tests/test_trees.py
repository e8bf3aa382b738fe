"""Boosted trees over hand-made signals: the in-graph walk must equal scikit-learn's."""

from __future__ import annotations

import numpy as np
import pytest

from training.trees import TreeEnsembleLogit, _classifier, cross_fitted_logits, fit_trees, from_sklearn


def _data(seed: int, rows: int = 400, dim: int = 8):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, dim)).astype(np.float32)
    # An interaction a linear read-out cannot see, plus noise.
    y = ((x[:, 0] * x[:, 1] + 0.5 * x[:, 2] + 0.3 * rng.normal(size=rows)) > 0).astype(np.float32)
    return x, y


def test_exported_arrays_and_tf_layer_match_sklearn_including_missing_values():
    x, y = _data(0)
    classifier = _classifier(seed=0, max_trees=40).fit(x[:300], y[:300])
    trees = from_sklearn(classifier, 40, x.shape[1])
    test = x[300:].copy()
    test[::7, 0] = np.nan  # missing values follow each split's learned default direction
    expected = classifier.decision_function(test)
    np.testing.assert_allclose(trees.predict(test), expected, atol=1e-5)
    np.testing.assert_allclose(np.asarray(TreeEnsembleLogit(trees)(test))[:, 0], expected, atol=1e-5)
    truncated = from_sklearn(classifier, 10, x.shape[1])
    assert truncated.tree_count == 10
    tenth = list(classifier.staged_decision_function(test))[9]
    np.testing.assert_allclose(truncated.predict(test), tenth, atol=1e-5)


def test_tree_count_is_chosen_on_validation_and_learns_the_interaction():
    x, y = _data(1, rows=900)
    trees = fit_trees(x[:500], y[:500], x[500:700], y[500:700], seed=0)
    assert 1 <= trees.tree_count <= 400
    from sklearn.linear_model import LogisticRegression

    accuracy = float(np.mean((trees.predict(x[700:]) > 0) == (y[700:] > 0.5)))
    linear = LogisticRegression().fit(x[:500], y[:500]).score(x[700:], y[700:])
    assert accuracy > 0.75 and accuracy > linear + 0.1


def test_cross_fitted_logits_do_not_remember_the_rows_they_score():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(300, 6)).astype(np.float32)
    y = (rng.random(300) < 0.5).astype(np.float32)  # labels carry no signal at all
    in_sample = _classifier(seed=0, max_trees=100).fit(x, y).decision_function(x)
    honest = cross_fitted_logits(x, y, tree_count=100, seed=0)

    def accuracy(logits):
        return float(np.mean((logits > 0) == (y > 0.5)))

    assert accuracy(in_sample) > 0.9  # memorised
    assert accuracy(honest) == pytest.approx(0.5, abs=0.1)  # chance, as it should be
