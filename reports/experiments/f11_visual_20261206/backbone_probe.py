"""Frozen MobileNetV2 blocks 0-10 (nsfwjs 4.3.0, ImageNet values) and a logistic probe.

    python reports/experiments/f11_visual_20261206/backbone_probe.py \
        block_3_expand_relu,block_6_expand_relu,block_10_project_BN

WEIGHTS: an .npz of the nsfwjs MobileNetV2 weights by Keras layer name (8-bit values
de-quantised from the tarball's model files); DATA: the directory of the source corpora.
"""

import os
import random
import sys
import time

import numpy as np
import tensorflow as tf
from PIL import Image
from sklearn.linear_model import LogisticRegressionCV
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from patch_probe import uploads

W = np.load(os.environ["WEIGHTS"])
base = tf.keras.applications.MobileNetV2(input_shape=(None, None, 3), include_top=False, weights=None)
n = 0
for layer in base.layers:
    ws = layer.weights
    if not ws:
        continue
    vals = []
    for w in ws:
        leaf = w.name.split("/")[-1].split(":")[0]
        key = f"{layer.name}/{leaf}"
        if key not in W and leaf == "kernel" and "depthwise" in layer.name:
            key = f"{layer.name}/depthwise_kernel"
        vals.append(W[key].reshape(w.shape))
    layer.set_weights(vals)
    n += 1
print("layers loaded", n)
taps = [base.get_layer(n).output for n in sys.argv[1].split(",")]
tapper = tf.keras.Model(base.input, taps)


def extractor(x):
    outs = tapper(x, training=False)
    outs = outs if isinstance(outs, (list, tuple)) else [outs]
    return [tf.concat([tf.reduce_mean(t, [1, 2]), tf.math.reduce_std(t, [1, 2])], -1) for t in outs]


MAX = 512


def feature(path):
    a = np.asarray(Image.open(path).convert("RGB"))
    h, w = a.shape[:2]
    top, left = max(0, (h - MAX) // 2), max(0, (w - MAX) // 2)
    a = a[top : top + MAX, left : left + MAX]
    x = a[None].astype(np.float32) / 127.5 - 1
    out = extractor(x)
    out = out if isinstance(out, (list, tuple)) else [out]
    return np.concatenate([o.numpy()[0] for o in out])


data = os.environ.get("DATA", "data/mr28")
items = uploads(f"{data}/sources_a") + uploads(f"{data}/sources_b")
random.Random(1).shuffle(items)
val, tr = items[: len(items) // 6], items[len(items) // 6 :]
t = time.time()


def feats(items):
    return np.stack([feature(p) for p, _, _ in items]), np.array([y for _, y, _ in items]), [s for _, _, s in items]


Xtr, Ytr, _ = feats(tr)
print("features", Xtr.shape, time.time() - t, flush=True)
Xv, Yv, Sv = feats(val)
H = uploads(f"{data}/heldout_visual")
Xh, Yh, Sh = feats(H)
clf = make_pipeline(StandardScaler(), LogisticRegressionCV(Cs=[0.001, 0.01, 0.1, 1], cv=4, max_iter=3000))
clf.fit(Xtr, Ytr)
print("C", clf[-1].C_)
pv = clf.decision_function(Xv)
ph = clf.decision_function(Xh)
print("val AUC", roc_auc_score(Yv, pv), "heldout AUC", roc_auc_score(Yh, ph))
for s in sorted(set(Sh)):
    v = ph[np.array(Sh) == s]
    print(s, np.round(np.percentile(v, [10, 50, 90]), 2))
