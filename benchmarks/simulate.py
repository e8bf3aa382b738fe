"""How long a policy simulation takes on a million stored decisions.

    python -m benchmarks.simulate [--rows 1000000] [--dir /tmp/sim-bench]

Builds an embedded warehouse of `--rows` `media_scores` rows (scores drawn from two overlapping
distributions, every optional field sometimes absent, a few hash matches, 2% of the items
labelled in `retraining_labels`) and times `tools.simulate` comparing the shipped policy
with a stricter candidate (every score threshold 0.1 lower), end to end: the SQL over the
catalog, every figure, the JSON and the HTML. The rows are made up; the timing is what counts.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from enforcement.policy import load_policy, parse_policy
from schemas import arrow_schema
from tools import simulate
from warehouse.embedded import write_catalog
from warehouse.reader import EmbeddedReader


def _column(rng, values, count, absent=0.0):
    picked = rng.choice(np.asarray(values, dtype=object), count)
    if absent:
        picked[rng.random(count) < absent] = None
    return picked


def build_warehouse(directory: Path, rows: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    synthetic = rng.random(rows) < 0.1

    def score(spread):
        return np.clip(
            np.where(synthetic, rng.beta(6, 1.5, rows), rng.beta(1.2, 8, rows)) + rng.normal(0, spread, rows), 0, 1
        )

    visual, audio, metadata = score(0.05), score(0.08), score(0.1)
    has_visual, has_audio = rng.random(rows) < 0.8, rng.random(rows) < 0.5
    content = np.where(has_visual, visual, np.where(has_audio, audio, np.nan))
    start = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    uploaded = [start + dt.timedelta(seconds=int(s)) for s in rng.integers(0, 14 * 86400, rows)]
    ids = [f"c{i:08d}" for i in range(rows)]
    columns = {
        "content_id": ids,
        "account_id": [f"a{i}" for i in rng.integers(0, rows // 20, rows)],
        "media_type": _column(rng, ["video", "image", "audio"], rows),
        "uploaded_at": uploaded,
        "scored_at": uploaded,
        "modalities_present": [["visual"]] * rows,
        "visual_score": np.where(has_visual, visual, np.nan),
        "visual_abstained": np.where(has_visual, rng.random(rows) < 0.02, None),
        "audio_score": np.where(has_audio, audio, np.nan),
        "audio_abstained": np.where(has_audio, rng.random(rows) < 0.03, None),
        "metadata_score": metadata,
        "metadata_abstained": rng.random(rows) < 0.01,
        "fused_score": np.clip(0.8 * np.nan_to_num(content, nan=0.5) + 0.2 * metadata, 0, 1),
        "content_score": content,
        "fusion_method": ["fusion_logistic"] * rows,
        "fusion_version": ["bench"] * rows,
        "declared_ai": _column(rng, [True, False], rows, absent=0.6),
        "c2pa_present": rng.random(rows) < 0.05,
        "digital_source_type": _column(rng, ["trainedAlgorithmicMedia", "digitalCapture"], rows, absent=0.9),
        "content_sha256": ["0" * 64] * rows,
        "hash_match": np.where(rng.random(rows) < 0.001, "case-1", None),
        "surface": _column(rng, ["feed", "stories", "messaging", "ads", "live"], rows, absent=0.2),
        "country": _column(rng, ["US", "IN", "BR", "DE", "FR", "NG"], rows, absent=0.2),
        "detection_method": _column(rng, ["automated"] * 18 + ["user_report", "trusted_flagger"], rows),
        "high_profile": rng.random(rows) < 0.01,
        "verified": rng.random(rows) < 0.1,
        "prior_strikes": rng.integers(0, 3, rows),
        "pipeline_version": ["bench"] * rows,
        "run_id": ["bench"] * rows,
    }
    schema = arrow_schema("media_scores")
    for name in ("visual_score", "audio_score", "content_score"):
        columns[name] = [None if np.isnan(v) else float(v) for v in columns[name]]
    table = pa.table({f.name: columns.get(f.name, [None] * rows) for f in schema}, schema=schema)
    (directory / "media_scores").mkdir(parents=True, exist_ok=True)
    pq.write_table(table, directory / "media_scores" / "bench-00000-of-00001.parquet")
    labelled = rng.random(rows) < 0.02
    labels = pa.table(
        {
            "content_id": [i for i, keep in zip(ids, labelled) if keep],
            "decision_id": [i for i, keep in zip(ids, labelled) if keep],
            "label": ["synthetic" if s else "real" for s, keep in zip(synthetic, labelled) if keep],
            "source": ["review_verdict"] * int(labelled.sum()),
            "labelled_at": [start] * int(labelled.sum()),
            "pipeline_version": ["bench"] * int(labelled.sum()),
            "run_id": ["bench"] * int(labelled.sum()),
        },
        schema=arrow_schema("retraining_labels"),
    )
    (directory / "retraining_labels").mkdir(parents=True, exist_ok=True)
    pq.write_table(labels, directory / "retraining_labels" / "bench-00000-of-00001.parquet")
    write_catalog(str(directory))


def stricter(path: str, by: float = 0.1):
    document = yaml.safe_load(Path(path).read_text())
    document["version"] = f"{document['version']}-stricter"
    for rule in document["rules"]:
        for name in ("min_content_score", "min_fused_score"):
            if name in rule.get("when", {}):
                rule["when"][name] = round(max(0.0, rule["when"][name] - by), 4)
    return parse_policy(document)


def run(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.simulate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dir", default="/tmp/sim-bench")
    args = parser.parse_args(argv)
    directory = Path(args.dir)
    if not (directory / "warehouse.duckdb").exists():
        started = time.perf_counter()
        build_warehouse(directory, args.rows)
        print(f"built a warehouse of {args.rows:,} stored decisions in {time.perf_counter() - started:.1f} s")
    policies = {"baseline": load_policy("policies/synthetic_media_v1.yaml"),
                "candidate": stricter("policies/synthetic_media_v1.yaml")}  # fmt: skip
    for attempt in range(2):
        started = time.perf_counter()
        result = simulate.simulate(EmbeddedReader(str(directory)), policies, None, "policies/error_costs.yaml", 2000)
        html = simulate.render_html(result)
        (directory / "simulation.json").write_text(json.dumps(result, default=str))
        (directory / "simulation.html").write_text(html)
        seconds = time.perf_counter() - started
        print(f"run {attempt + 1}: {result['items']:,} decisions replayed under two policies, "
              f"{result['changed_items']:,} changed, every figure + JSON + HTML in {seconds:.1f} s")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(run())
