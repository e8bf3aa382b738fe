"""A training set from the warehouse: every upload of a period that a person labelled, its
newest label joined to its features, split by time (a Beam job: it reads months of traffic).

    deepfake training-set --warehouse DIR|bq://PROJECT.DATASET --start 2026-11-01 --end 2026-12-01 \
        --test_from 2026-11-24 --out DIR [--curated LABELS.jsonl ...]

Labels come only from people: reviewers' verdicts and appeal outcomes (`retraining_labels`: a
verdict, real or synthetic, and an overturned appeal, real; `appeals`: an upheld appeal against
a restrictive decision, synthetic). Never from the model's own decisions. An upload's newest
label stands (an appeal decided after a verdict overrides it); the older ones are skipped with
that reason, as is a label whose upload is outside the period, was never scored here, or has no
features of the version the trainer reads, or belongs to the curated corpus (`--curated`, whose
own label trains beside the set). Every label row read is in the set or in `skipped.jsonl` with
its reason, and `training_set.json` counts both.

Only what people looked at carries a label, and people look at what the detectors and the
policy sent them (routed reviews, appeals) far more than at what they let through: the set is
biased towards the model's own positives. The blind quality sample is the unbiased part (a
random share of automated actions, reviewed without seeing them): its rows carry
`reviewed_blind` and the evaluation reports them apart. Items the model cleared reach the set
only when someone appealed or reported them; the curated corpus and sources (`--curated`) are
what keeps both classes and every generator in the training data.

The split is by time: uploads from `--test_from` on are the test split (trained on older,
tested on newer, as the model will meet traffic); older ones are split 85/15 between train and
validation by content id. Each row names its split (`split`), which `training.train` honours.
Per-modality labels: a still or a silent video labels the visual detector, a sound file the
audio detector, the item's label the metadata detector and the fusion; a video with sound
labels neither content detector, since a person's "synthetic" does not say which track is.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import sys
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from schemas.records import as_utc
from training.splits import split_of

LABEL_SOURCES = ("review_verdict", "appeal_overturned", "appeal_upheld")
# On the same moment the appeal's outcome is the final word.
_PRECEDENCE = {"review_verdict": 0, "appeal_upheld": 1, "appeal_overturned": 1}
RESTRICTIVE = ("label", "reduce_reach", "remove", "suspend_account")
SKIP_REASONS = ("superseded_label", "outside_period", "not_scored_here", "no_features", "curated_item")


@dataclasses.dataclass(frozen=True)
class HumanLabel:
    """What a person decided about an upload."""

    content_id: str
    label: str  # real | synthetic
    source: str  # LABEL_SOURCES
    labelled_at: dt.datetime
    decision_id: str
    reviewed_blind: bool = False  # a blind quality-sample or sampled-rule review: the unbiased part

    def key(self) -> tuple:
        return self.labelled_at, _PRECEDENCE.get(self.source, 0), self.decision_id


def label_of_row(row: Mapping[str, Any]) -> HumanLabel:
    """A `retraining_labels` row."""
    return HumanLabel(str(row["content_id"]), str(row["label"]), str(row["source"]), as_utc(row["labelled_at"]),
                      str(row["decision_id"]))  # fmt: skip


def label_of_appeal(row: Mapping[str, Any]) -> Iterable[HumanLabel]:
    """An `appeals` row: an upheld appeal against a restrictive decision says the item was
    synthetic (an overturned one is in `retraining_labels` already)."""
    if row.get("outcome") == "upheld" and row.get("action") in RESTRICTIVE and row.get("content_id"):
        yield HumanLabel(str(row["content_id"]), "synthetic", "appeal_upheld", as_utc(row["appeal_decided_at"]),
                         str(row["decision_id"]))  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Upload:
    content_id: str
    media_type: str
    uploaded_at: dt.datetime
    modalities: tuple[str, ...]


def upload_of_row(row: Mapping[str, Any]) -> Upload:
    """A `media_scores` row."""
    return Upload(str(row["content_id"]), str(row["media_type"]), as_utc(row["uploaded_at"]),
                  tuple(row.get("modalities_present") or ()))  # fmt: skip


def modality_labels(label: str, upload: Upload) -> dict[str, int | None]:
    """Which detectors a person's label trains (see the module's docstring)."""
    value = int(label == "synthetic")
    content = [m for m in ("visual", "audio") if m in upload.modalities]
    return {
        "visual_label": value if content == ["visual"] else None,
        "audio_label": value if content == ["audio"] else None,
        "metadata_label": value,
    }


def time_split(upload: Upload, test_from: dt.datetime, seed: int) -> str:
    """test from `test_from` on; before it, train or validation by content id (85/15)."""
    if upload.uploaded_at >= test_from:
        return "test"
    return split_of(upload.content_id, seed, (0.85, 0.15))


@dataclasses.dataclass(frozen=True)
class SetSpec:
    """The period (upload time, `start` included, `end` excluded), where the test split starts,
    the split seed and the feature version the trainer reads."""

    start: dt.datetime
    end: dt.datetime
    test_from: dt.datetime
    seed: int
    feature_version: str
    # Content ids of the curated corpus and sources (--curated): their own labels train with the
    # set, so a person's label of one of them is skipped, never a second label of the same item.
    curated: frozenset[str] = frozenset()


def skipped(label: HumanLabel, reason: str) -> dict[str, Any]:
    return {"content_id": label.content_id, "decision_id": label.decision_id, "source": label.source,
            "label": label.label, "labelled_at": label.labelled_at.isoformat(), "reason": reason}  # fmt: skip


def assemble(labels: Sequence[HumanLabel], uploads: Sequence[Upload], versions: Sequence[str],
             spec: SetSpec) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:  # fmt: skip
    """One upload's training row (or None) and the labels skipped, with their reasons."""
    if not labels:
        return None, []
    ordered = sorted(labels, key=HumanLabel.key)
    newest, older = ordered[-1], ordered[:-1]
    left_out = [skipped(label, "superseded_label") for label in older]
    if newest.content_id in spec.curated:
        return None, [*left_out, skipped(newest, "curated_item")]
    if not uploads:
        return None, [*left_out, skipped(newest, "not_scored_here")]
    upload = min(uploads, key=lambda u: u.uploaded_at)  # a rerun scores the same upload again
    if not spec.start <= upload.uploaded_at < spec.end:
        return None, [*left_out, skipped(newest, "outside_period")]
    if spec.feature_version not in versions:
        return None, [*left_out, skipped(newest, "no_features")]
    row = {
        "content_id": upload.content_id,
        "label": newest.label,
        **modality_labels(newest.label, upload),
        "media_type": upload.media_type,
        "uploaded_at": upload.uploaded_at.isoformat(),
        "split": time_split(upload, spec.test_from, spec.seed),
        "label_source": newest.source,
        "labelled_at": newest.labelled_at.isoformat(),
        "decision_id": newest.decision_id,
        "reviewed_blind": newest.reviewed_blind,
        "source": "warehouse",
    }
    return row, left_out


def with_blindness(keyed) -> Iterable[HumanLabel]:
    """Labels of one decision id, marked blind when the verdict behind them was."""
    _, grouped = keyed
    blind = any(grouped["blind"])
    for label in grouped["labels"]:
        yield dataclasses.replace(label, reviewed_blind=blind and label.source == "review_verdict")


def summarise(rows: Sequence[Mapping[str, Any]], left_out: Sequence[Mapping[str, Any]], spec: SetSpec,
              warehouse: str, curated: Sequence[str]) -> dict[str, Any]:  # fmt: skip
    """What `training_set.json` says of a set."""
    return {
        "warehouse": warehouse,
        "period": {"start": spec.start.isoformat(), "end": spec.end.isoformat()},
        "test_from": spec.test_from.isoformat(),
        "seed": spec.seed,
        "feature_version": spec.feature_version,
        "labels_read": len(rows) + len(left_out),
        "items": len(rows),
        "by_split_and_label": dict(sorted(Counter(f"{r['split']}/{r['label']}" for r in rows).items())),
        "by_label_source": dict(sorted(Counter(r["label_source"] for r in rows).items())),
        "reviewed_blind": sum(bool(r["reviewed_blind"]) for r in rows),
        "skipped": dict(sorted(Counter(r["reason"] for r in left_out).items())),
        "curated": list(curated),
    }


def build_pipeline(p, sink, spec: SetSpec, out: Path) -> None:
    """Adds the training-set job to `p`: the warehouse's human labels, its scored uploads and
    its features (ids and versions only), joined per upload, to `out`."""
    import apache_beam as beam

    labels = (
        p | "ReadLabels" >> sink.read_rows("retraining_labels") | "Labels" >> beam.Map(label_of_row),
        p | "ReadAppeals" >> sink.read_rows("appeals") | "UpheldAppeals" >> beam.FlatMap(label_of_appeal),
    ) | "HumanLabels" >> beam.Flatten()
    blind = (
        p
        | "ReadReviews" >> sink.read_rows("reviews", ("verdict_decision_id", "blind"))
        | "BlindByDecision" >> beam.Map(_blind_by_decision)
    )
    labels = (
        {"labels": labels | "ByDecision" >> beam.Map(_keyed, "decision_id"), "blind": blind}
        | "JoinReviews" >> beam.CoGroupByKey()
        | "MarkBlind" >> beam.FlatMap(with_blindness)
    )
    uploads = (
        p
        | "ReadScores"
        >> sink.read_rows("media_scores", ("content_id", "media_type", "uploaded_at", "modalities_present"))
        | "Uploads" >> beam.Map(upload_of_row)
    )
    versions = (
        p
        | "ReadFeatures" >> sink.read_rows("features", ("content_id", "feature_version"))
        | "Versions" >> beam.Map(_version_by_upload)
    )
    joined = (
        {
            "labels": labels | "LabelsById" >> beam.Map(_keyed, "content_id"),
            "uploads": uploads | "UploadsById" >> beam.Map(_keyed, "content_id"),
            "versions": versions,
        }
        | "ByUpload" >> beam.CoGroupByKey()
        | "Assemble" >> beam.FlatMap(_assembled, spec).with_outputs("skipped", main="rows")
    )
    for name, rows in (("labels", joined.rows), ("skipped", joined.skipped)):
        _ = (
            rows
            | f"{name.capitalize()}Json" >> beam.Map(json.dumps, sort_keys=True)
            | f"Write{name.capitalize()}" >> beam.io.WriteToText(str(out / name), ".jsonl", shard_name_template="")
        )


def _keyed(item, key: str) -> tuple[str, Any]:
    return getattr(item, key), item


def _blind_by_decision(row: Mapping[str, Any]) -> tuple[str, bool]:
    return row["verdict_decision_id"], bool(row["blind"])


def _version_by_upload(row: Mapping[str, Any]) -> tuple[str, str]:
    return row["content_id"], row["feature_version"]


def _assembled(keyed, spec: SetSpec):
    import apache_beam as beam

    _, grouped = keyed
    row, left_out = assemble(list(grouped["labels"]), list(grouped["uploads"]), list(grouped["versions"]), spec)
    if row is not None:
        yield row
    for skip in left_out:
        yield beam.pvalue.TaggedOutput("skipped", skip)


def _day(text: str) -> dt.datetime:
    return dt.datetime.combine(dt.date.fromisoformat(text), dt.time(), dt.UTC)


def run(argv: list[str] | None = None) -> int:
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    from models.examples import load_labels
    from models.signature import FEATURE_VERSION
    from pipelines.options import StrictParser, add_flags, parse_with_beam
    from warehouse.sinks import open_warehouse

    parser = StrictParser(prog="deepfake training-set", description=__doc__.split("\n\n")[0])
    add_flags(parser, "warehouse", "bigquery_endpoint", required=("warehouse",))
    parser.add_argument("--start", required=True, type=_day, help="First upload day of the period (UTC, included).")
    parser.add_argument("--end", required=True, type=_day, help="First day after the period (UTC).")
    parser.add_argument("--test_from", type=_day, default=None,
                        help="Uploads from this day on are the test split (default: the period's last seventh).")  # fmt: skip
    parser.add_argument("--out", required=True, help="Directory for labels.jsonl, skipped.jsonl, training_set.json.")
    parser.add_argument("--curated", nargs="*", default=[],
                        help="labels.jsonl of the curated corpus and sources trained with the set.")  # fmt: skip
    parser.add_argument("--seed", type=int, default=7, help="Seed of the train/validation split.")
    args, beam_args = parse_with_beam(parser, argv)
    if args.end <= args.start:
        parser.error("--end: must come after --start")
    test_from = args.test_from or args.end - (args.end - args.start) / 7
    if not args.start < test_from <= args.end:
        parser.error("--test_from: must fall within the period")
    for path in args.curated:
        if not Path(path).is_file():
            parser.error(f"--curated: no such file {path}")
    try:
        curated = frozenset(load_labels(args.curated))
    except ValueError as exc:
        parser.error(f"--curated: {exc}")
    spec = SetSpec(args.start, args.end, test_from, args.seed, FEATURE_VERSION, curated)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sink = open_warehouse(args.warehouse, "training-set", bigquery_endpoint=args.bigquery_endpoint)
    with beam.Pipeline(options=PipelineOptions(beam_args)) as p:
        build_pipeline(p, sink, spec, out)
    rows, left_out = ([json.loads(line) for line in (out / f"{name}.jsonl").read_text().splitlines() if line]
                      for name in ("labels", "skipped"))  # fmt: skip
    summary = summarise(rows, left_out, spec, args.warehouse, args.curated)
    (out / "training_set.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"training set {args.start.date()} to {args.end.date()}: {summary['items']} items "
          f"{summary['by_split_and_label']}, {summary['reviewed_blind']} from blind reviews; "
          f"labels read {summary['labels_read']} = in the set {summary['items']} + skipped "
          f"{len(left_out)} {summary['skipped']} -> {out}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(run())
