"""How much of a test split's content its training split saw: the content-score AUC of the
source items whose split group has a member in the training split (by content id, as models
were split before split groups), against the items whose group has none.

    python reports/experiments/f14_clips_splits_20261206/leak.py SCORES.jsonl GROUPED_LABELS.jsonl...

SCORES: `training.evaluate`'s test_scores.jsonl; GROUPED_LABELS: the source corpora's labels
with `split_group` (`python -m training.source_corpus --relabel`).
"""

import json
import sys
from collections import defaultdict

from sklearn.metrics import roc_auc_score

from training.splits import split_of

SEED = 7


def main() -> None:
    scores_path, label_paths = sys.argv[1], sys.argv[2:]
    rows = {}
    for path in label_paths:
        with open(path) as handle:
            rows.update({r["content_id"]: r for r in map(json.loads, handle)})
    splits_of_group = defaultdict(set)
    for content_id, row in rows.items():
        splits_of_group[row["split_group"]].add(split_of(content_id, SEED))
    seen, unseen = [], []
    with open(scores_path) as handle:
        for score in map(json.loads, handle):
            row = rows.get(score["content_id"])
            if row is None or score["content_score"] is None:
                continue
            part = seen if "train" in splits_of_group[row["split_group"]] else unseen
            part.append((score["label"], score["content_score"], row["media_type"]))
    for name, part in (("group seen in train", seen), ("group unseen", unseen)):
        for kind in ("image", "video", "audio", None):
            chosen = [p for p in part if kind is None or p[2] == kind]
            labels = [p[0] for p in chosen]
            if len(set(labels)) == 2:
                auc = roc_auc_score(labels, [p[1] for p in chosen])
                print(f"{name:22s} {kind or 'all':6s} items={len(chosen):5d} synthetic={sum(labels):4d} AUC={auc:.3f}")
            elif chosen:
                print(f"{name:22s} {kind or 'all':6s} items={len(chosen):5d} (one class)")


if __name__ == "__main__":
    main()
