"""Gradient-boosted trees over an item's hand-made signals, served inside the SavedModel.

Small neural read-outs use a few dozen hand-made forensic signals badly: the signals are
heavy-tailed and act through thresholds and interactions (a noise level means little without
the brightness it was measured at). Boosted trees are the standard tool for such tabular
evidence. They are fitted with scikit-learn's histogram gradient boosting, the number of trees
chosen on the validation split, and then exported as plain arrays that `TreeEnsembleLogit`
walks with TensorFlow ops, so the served model is still one SavedModel with the documented
signature and no Python at serving time.

`cross_fitted_logits` gives every training item a tree logit from trees that did not see it
(k-fold): the neural part of a detector is trained next to these honest logits, so it learns
what the trees miss instead of leaning on logits that have memorised the training set.
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np

_MAX_LEAF_NODES = 15
_MAX_DEPTH = 6
_LEARNING_RATE = 0.1
_MAX_TREES = 400
_L2 = 1.0


@dataclasses.dataclass(frozen=True)
class TreeArrays:
    """A fitted ensemble as padded arrays, one row per tree, one column per node.

    Node 0 is each tree's root. At an inner node an input goes left when
    `x[feature] <= threshold` (a NaN goes where `missing_left` says); a leaf points to
    itself on both sides, so walking `depth` steps from the root always ends on a leaf.
    The logit is `baseline` plus the sum of the reached leaves' `value`.
    """

    feature: np.ndarray  # int32 [trees, nodes]
    threshold: np.ndarray  # float32
    missing_left: np.ndarray  # bool
    left: np.ndarray  # int32
    right: np.ndarray  # int32
    value: np.ndarray  # float32
    depth: int
    baseline: float
    input_dim: int

    @property
    def tree_count(self) -> int:
        return int(self.feature.shape[0])

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Reference walk in numpy (the TF layer must agree with it)."""
        x = np.asarray(x, np.float32)
        rows = np.arange(len(x))[:, None]
        trees = np.arange(self.tree_count)[None, :]
        node = np.zeros((len(x), self.tree_count), np.int64)
        for _ in range(self.depth):
            values = x[rows, self.feature[trees, node]]
            go_left = np.where(np.isnan(values), self.missing_left[trees, node], values <= self.threshold[trees, node])
            node = np.where(go_left, self.left[trees, node], self.right[trees, node])
        return self.baseline + self.value[trees, node].sum(axis=1)


def _classifier(seed: int, max_trees: int):
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(
        learning_rate=_LEARNING_RATE,
        max_iter=max_trees,
        max_leaf_nodes=_MAX_LEAF_NODES,
        max_depth=_MAX_DEPTH,
        l2_regularization=_L2,
        early_stopping=False,
        random_state=seed,
    )


def _log_loss(labels: np.ndarray, logits: np.ndarray) -> float:
    return float(np.mean(np.logaddexp(0.0, logits) - labels * logits))


def fit_trees(
    x_train: np.ndarray, y_train: np.ndarray, x_validation: np.ndarray, y_validation: np.ndarray, seed: int
) -> TreeArrays:
    """Boosts up to `_MAX_TREES` trees on train and keeps the count with the lowest validation
    log loss (all of them when there is no validation data)."""
    classifier = _classifier(seed, _MAX_TREES).fit(x_train, y_train)
    count = classifier.n_iter_
    if len(y_validation) and len(set(np.asarray(y_validation).tolist())) == 2:
        losses = [_log_loss(y_validation, z) for z in classifier.staged_decision_function(x_validation)]
        count = int(np.argmin(losses)) + 1
    return from_sklearn(classifier, count, x_train.shape[1])


def cross_fitted_logits(x: np.ndarray, y: np.ndarray, tree_count: int, seed: int, folds: int = 5) -> np.ndarray:
    """Tree logits for every row of (x, y) from trees fitted on the other folds."""
    order = np.random.default_rng(seed).permutation(len(y))
    logits = np.zeros(len(y), np.float32)
    for fold in range(folds):
        held_out = order[fold::folds]
        kept = np.setdiff1d(order, held_out)
        if len(set(y[kept].tolist())) < 2:
            logits[held_out] = 0.0
            continue
        classifier = _classifier(seed, tree_count).fit(x[kept], y[kept])
        logits[held_out] = classifier.decision_function(x[held_out])
    return logits


def from_sklearn(classifier, tree_count: int, input_dim: int) -> TreeArrays:
    """The first `tree_count` trees of a fitted binary HistGradientBoostingClassifier.

    scikit-learn keeps fitted trees in private attributes (`_predictors`, `_baseline_prediction`);
    its version is pinned in requirements.txt and tests/test_trees.py checks that the exported
    walk reproduces `decision_function`, so an upgrade that moves them fails loudly.
    """
    trees = [predictors[0].nodes for predictors in classifier._predictors[:tree_count]]
    if any(nodes["is_categorical"].any() for nodes in trees):
        raise ValueError("categorical splits are not supported")
    width = max(len(nodes) for nodes in trees)
    shape = (len(trees), width)
    arrays = {
        "feature": np.zeros(shape, np.int32),
        "threshold": np.zeros(shape, np.float32),
        "missing_left": np.zeros(shape, bool),
        "left": np.tile(np.arange(width, dtype=np.int32), (len(trees), 1)),
        "right": np.tile(np.arange(width, dtype=np.int32), (len(trees), 1)),
        "value": np.zeros(shape, np.float32),
    }
    for row, nodes in enumerate(trees):
        inner = ~nodes["is_leaf"].astype(bool)
        count = len(nodes)
        arrays["feature"][row, :count] = np.where(inner, nodes["feature_idx"], 0)
        arrays["threshold"][row, :count] = np.where(inner, nodes["num_threshold"], 0.0)
        arrays["missing_left"][row, :count] = nodes["missing_go_to_left"].astype(bool)
        arrays["left"][row, :count] = np.where(inner, nodes["left"], np.arange(count))
        arrays["right"][row, :count] = np.where(inner, nodes["right"], np.arange(count))
        arrays["value"][row, :count] = np.where(inner, 0.0, nodes["value"])
    depth = max(int(nodes["depth"].max()) for nodes in trees)
    baseline = float(np.asarray(classifier._baseline_prediction).ravel()[0])
    return TreeArrays(**arrays, depth=depth, baseline=baseline, input_dim=input_dim)


class TreeEnsembleLogit(keras.layers.Layer):
    """[batch, input_dim] float32 -> [batch, 1] logit of a fixed tree ensemble (not trained)."""

    def __init__(self, trees: TreeArrays, **kwargs):
        super().__init__(trainable=False, **kwargs)
        self._depth = trees.depth
        self._tree_count = trees.tree_count
        self._width = int(trees.feature.shape[1])
        flat = {name: getattr(trees, name).reshape(-1) for name in ("feature", "left", "right")}
        self.feature = self._constant("feature", flat["feature"], "int32")
        self.left = self._constant("left", flat["left"], "int32")
        self.right = self._constant("right", flat["right"], "int32")
        self.threshold = self._constant("threshold", trees.threshold.reshape(-1), "float32")
        self.missing_left = self._constant("missing_left", trees.missing_left.reshape(-1).astype(np.int32), "int32")
        self.value = self._constant("value", trees.value.reshape(-1), "float32")
        self.baseline = self._constant("baseline", np.asarray([trees.baseline], np.float32), "float32")

    def _constant(self, name: str, array: np.ndarray, dtype: str):
        return self.add_weight(
            name=name, shape=array.shape, dtype=dtype, trainable=False, initializer=keras.initializers.Constant(array)
        )

    def call(self, x):
        ops = keras.ops
        x = ops.cast(x, "float32")
        batch = ops.shape(x)[0]
        offsets = ops.arange(self._tree_count, dtype="int32")[None, :] * self._width
        node = ops.zeros((batch, self._tree_count), dtype="int32") + offsets
        for _ in range(self._depth):
            feature = ops.take(self.feature, node)
            values = ops.take_along_axis(x, feature, axis=1)
            threshold = ops.take(self.threshold, node)
            missing_left = ops.take(self.missing_left, node) > 0
            go_left = ops.where(ops.isnan(values), missing_left, values <= threshold)
            child = ops.where(go_left, ops.take(self.left, node), ops.take(self.right, node))
            node = child + offsets
        return self.baseline + ops.sum(ops.take(self.value, node), axis=1, keepdims=True)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 1)
