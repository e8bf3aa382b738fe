"""What the probe's scores would act on: thresholds chosen on the validation split's real uploads
only (review: at most 1% of them at or above; removal: at most 0.1%, i.e. above every one of a
few hundred), applied to the held-out set. An experiment, not served code.

    python reports/experiments/f12_gan_here_20261206/acted_on.py data/f12/probe_seed1_scores.jsonl
"""

from __future__ import annotations

import json
import sys

import numpy as np


def main(path: str) -> None:
    with open(path) as handle:
        rows = [json.loads(line) for line in handle]
    reals = np.array([r["logit"] for r in rows if r["split"] == "validation" and r["label"] == 0])
    review = float(np.quantile(reals, 0.99, method="higher"))
    remove = float(reals.max()) + 1e-6
    figures = {"validation_reals": len(reals), "review_at": round(review, 3), "remove_above": round(remove, 3)}
    for source in sorted({r["source"] for r in rows if r["split"] == "heldout"}):
        logits = np.array([r["logit"] for r in rows if r["split"] == "heldout" and r["source"] == source])
        figures[source] = {"items": len(logits), "review_or_removal": int((logits >= review).sum()),
                           "removal": int((logits >= remove).sum())}  # fmt: skip
    print(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main(sys.argv[1])
