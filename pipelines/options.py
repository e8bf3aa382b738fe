"""Command-line options of the deepfake detection jobs."""

from __future__ import annotations

import posixpath

from apache_beam.options.pipeline_options import PipelineOptions

from transforms.bigquery import FILE_LOADS, STREAMING_INSERTS, is_bigquery_uri
from transforms.limits import MediaLimits
from transforms.parse import MANIFEST_FORMATS

DEFAULT_POLICY = "policies/synthetic_media_v1.yaml"
_LIMITS = MediaLimits()


class DetectionOptions(PipelineOptions):
    """Flags of `python -m pipelines.batch`, next to Beam's own (--runner, --direct_num_workers, ...)."""

    @classmethod
    def _add_argparse_args(cls, parser):
        io = parser.add_argument_group("input and output")
        io.add_argument(
            "--input",
            help="Upload events: a manifest file or glob (JSON Lines, CSV or Parquet; local or gs://), or a "
            "BigQuery table bq://PROJECT.DATASET.TABLE. Relative media_uri values resolve against the manifest's "
            "directory. May be left out when --appeals is given: an appeals-only run.",
        )
        io.add_argument(
            "--input_query",
            default=None,
            help="Upload events from a BigQuery standard SQL query (instead of --input), run in --bigquery_project.",
        )
        io.add_argument(
            "--input_format", choices=MANIFEST_FORMATS, default=None, help="Manifest format (default: from extension)."
        )
        io.add_argument(
            "--warehouse",
            help="Embedded warehouse directory (Parquet files per table plus DIR/warehouse.duckdb), or a BigQuery "
            "dataset bq://PROJECT.DATASET (tables and views are created from schemas/ at launch).",
        )
        io.add_argument(
            "--bigquery_endpoint",
            default=None,
            help="URL of a BigQuery-API server other than Google's (a local one, e.g. http://127.0.0.1:9050). "
            "Default: Google, with the worker's credentials.",
        )
        io.add_argument(
            "--bigquery_project",
            default=None,
            help="Project that runs --input_query and --appeals_query (default: the --warehouse project).",
        )
        io.add_argument(
            "--bigquery_write_method",
            choices=(FILE_LOADS, STREAMING_INSERTS),
            default=FILE_LOADS,
            help="How rows reach BigQuery: load jobs (free; rows checked against the schema first) or streaming "
            "inserts with insert ids (rows BigQuery refuses come back as dead letters with its reason).",
        )
        io.add_argument(
            "--statements_dir",
            default=None,
            help="Directory (local or gs://) for the statements of reasons in Transparency Database API batches, "
            "with a BigQuery warehouse (the embedded one writes them under DIR/statements_of_reasons_batches).",
        )
        io.add_argument(
            "--write_disposition",
            choices=("append", "truncate"),
            default="append",
            help="append adds this run's files to the tables; truncate empties the tables first.",
        )
        io.add_argument(
            "--strike_ledger",
            default=None,
            help="Prior strike ledger (Parquet file or glob). Default: the newest ledger in --warehouse; "
            "with --write_disposition truncate and no ledger given, strikes start from none.",
        )
        io.add_argument(
            "--appeals",
            default=None,
            help="Appeal outcomes (JSON Lines, CSV or Parquet, or bq://PROJECT.DATASET.TABLE): decision_id, outcome "
            "(upheld|overturned), decided_at. Overturned decisions are reversed downstream, lose their strike, and "
            "label the item real for retraining.",
        )
        io.add_argument(
            "--appeals_query",
            default=None,
            help="Appeal outcomes from a BigQuery standard SQL query (instead of --appeals).",
        )
        io.add_argument(
            "--reviews",
            default=None,
            help="Reviewers' verdicts (JSON Lines, CSV or Parquet, or bq://PROJECT.DATASET.TABLE): review_id, "
            "decision_id, violating, category, action, reviewer (pseudonymous), decided_at. Each becomes the item's "
            "final decision; one that disagrees with an automated action reverses it.",
        )
        io.add_argument(
            "--review_media",
            default=None,
            help="Where the review queue's contact sheets (PNG of the sampled frames) go, local or gs:// (default: "
            "DIR/review_media beside an embedded warehouse; none for BigQuery unless given).",
        )
        io.add_argument(
            "--run_id",
            default=None,
            help="Name of this run's files and rows (default: UTC time and a random tag). Run ids must sort in run "
            "order: the newest run's strike ledger is the current one.",
        )
        io.add_argument(
            "--events_sink",
            choices=("warehouse", "pubsub"),
            default="warehouse",
            help="Where enforcement events go: the warehouse's enforcement_events table only, or also one Pub/Sub "
            "topic per target (--pubsub_project; PUBSUB_EMULATOR_HOST for the emulator).",
        )
        io.add_argument(
            "--pubsub_project", default=None, help="Project of the enforcement topics (--events_sink pubsub)."
        )
        io.add_argument(
            "--pubsub_topic_prefix", default="", help="Prefix of each target's topic id (default: the target's name)."
        )

        models = parser.add_argument_group("models and policy")
        models.add_argument(
            "--model_dir",
            default=None,
            help="Directory with <modality>/<version>/ SavedModels and model cards; the newest version of each "
            "modality is served. Default: the model set shipped with the package (models/served).",
        )
        models.add_argument(
            "--features_only",
            action="store_true",
            help="Extract and write features only, with no model (to build training data): items get no scores, "
            "so only rules that need none (declared or credentialed AI) can act.",
        )
        models.add_argument(
            "--model_versions",
            default=None,
            help="Pin versions instead of the newest, e.g. visual=20261121T2200,fusion=20261121T2200.",
        )
        models.add_argument(
            "--hash_bank",
            default=None,
            help="JSON Lines of known synthetic media PDQ hashes ({'pdq': hex, 'label': ...}); a match is the "
            "policy signal hash_match.",
        )
        models.add_argument("--policy", default=DEFAULT_POLICY, help="Enforcement policy YAML file.")
        models.add_argument(
            "--second_opinion_model",
            default=None,
            help="A SavedModel (models/second_opinion.py's signature: evidence and the category's policy text in, "
            "probability and rationale out) consulted on every review-queue item; its answer is stored with the "
            "row as advice.",
        )
        models.add_argument(
            "--shadow_policy",
            default=None,
            help="A candidate policy YAML run beside --policy on the same scores: its decisions go to "
            "shadow_decisions only (never fanned out, queued or struck), for pipelines.simulate --shadow.",
        )
        models.add_argument(
            "--accelerator",
            default=None,
            help="GPU for inference, in Dataflow's worker_accelerator form, e.g. \"type:nvidia-tesla-t4;count:1;"
            'install-nvidia-driver". With --gpu_workers inference (default) it is a resource hint on the '
            "RunInference steps only: Dataflow right fitting runs them on GPU workers and decoding on CPU workers. "
            "Local runners ignore it.",
        )
        models.add_argument(
            "--gpu_workers",
            choices=("inference", "all"),
            default="inference",
            help="inference: only the RunInference steps get GPU workers (resource hint). all: one worker pool, "
            "every worker with the GPU (the worker_accelerator service option), for runners without right fitting.",
        )
        models.add_argument(
            "--min_batch_size", type=int, default=1, help="Smallest RunInference batch (default %(default)s)."
        )
        models.add_argument(
            "--max_batch_size", type=int, default=32, help="Largest RunInference batch (default %(default)s)."
        )
        models.add_argument(
            "--min_cell_count",
            type=int,
            default=10,
            help="Transparency cells with fewer decisions are suppressed (default %(default)s).",
        )

        limits = parser.add_argument_group("per-item limits (an item over one is dead-lettered, naming it)")
        limits.add_argument(
            "--media_root",
            action="append",
            default=None,
            help="A folder local media may be read from (repeatable; symlinks are resolved before the check). "
            "Default: the manifest's folder (batch), none (streaming). Media elsewhere, and schemes other than "
            "local and gs://, are dead-lettered uri_not_allowed without being opened.",
        )
        limits.add_argument(
            "--media_bucket",
            action="append",
            default=None,
            help="A gs:// bucket media may be read from (repeatable; default: any bucket the workers can read).",
        )
        limits.add_argument(
            "--max_media_bytes", type=int, default=_LIMITS.max_media_bytes, help="Default %(default)s bytes."
        )
        limits.add_argument("--max_pixels", type=int, default=_LIMITS.max_pixels, help="Default %(default)s pixels.")
        limits.add_argument(
            "--max_duration_s", type=float, default=_LIMITS.max_duration_s, help="Default %(default)s seconds."
        )
        limits.add_argument(
            "--max_decode_s",
            type=float,
            default=_LIMITS.max_decode_s,
            help="Decode time per item and track; default %(default)s seconds.",
        )
        limits.add_argument(
            "--max_fetch_s",
            type=float,
            default=_LIMITS.max_fetch_s,
            help="Time to fetch one remote object (gs://), retries included; default %(default)s seconds.",
        )
        limits.add_argument(
            "--max_inline_bytes",
            type=int,
            default=_LIMITS.max_inline_bytes,
            help="Media larger than this is read from storage by each extractor instead of carried in "
            "the element (memory flat in an upload's length); default %(default)s bytes.",
        )

    def media_limits(self, default_roots: tuple[str, ...] = ()) -> MediaLimits:
        """The per-item limits, with where media may be read from: --media_root, else
        `default_roots`; --media_bucket, else any bucket."""
        roots = tuple(self.media_root) if self.media_root else tuple(default_roots)
        return MediaLimits(
            media_roots=tuple(posixpath.abspath(root) for root in roots),
            media_buckets=tuple(self.media_bucket) if self.media_bucket else None,
            max_media_bytes=self.max_media_bytes,
            max_pixels=self.max_pixels,
            max_duration_s=self.max_duration_s,
            max_decode_s=self.max_decode_s,
            max_fetch_s=self.max_fetch_s,
            max_inline_bytes=self.max_inline_bytes,
        )


def check_options(options: DetectionOptions, parser_error) -> None:
    """Rejects bad flag combinations with a clear message (via the argument parser's error)."""
    if options.input and options.input_query:
        parser_error("--input and --input_query: give one source of upload events")
    if options.appeals and options.appeals_query:
        parser_error("--appeals and --appeals_query: give one source of appeals")
    if not (options.input or options.input_query or options.appeals or options.appeals_query or options.reviews):
        parser_error("--input is required (or --appeals or --reviews alone, for a run without uploads)")
    queries = options.input_query or options.appeals_query
    if queries and not (options.bigquery_project or is_bigquery_uri(options.warehouse)):
        parser_error("--input_query and --appeals_query run in --bigquery_project (or a bq:// --warehouse's project)")
    if not options.warehouse:
        parser_error("--warehouse is required")
    for name in ("max_media_bytes", "max_pixels", "max_duration_s", "max_decode_s", "max_fetch_s", "max_inline_bytes",
                 "min_batch_size"):  # fmt: skip
        if getattr(options, name) <= 0:
            parser_error(f"--{name} must be positive")
    if options.max_batch_size < options.min_batch_size:
        parser_error("--max_batch_size must be at least --min_batch_size")
    if options.features_only and (options.model_dir or options.model_versions):
        parser_error("--features_only takes no --model_dir or --model_versions")
    if options.min_cell_count < 1:
        parser_error("--min_cell_count must be at least 1")
    if options.events_sink == "pubsub" and not options.pubsub_project:
        parser_error("--events_sink pubsub needs --pubsub_project")
    if options.gpu_workers == "all" and not options.accelerator:
        parser_error("--gpu_workers all needs --accelerator")
    if options.second_opinion_model:
        from models import storage

        if not storage.exists(storage.join(options.second_opinion_model, "saved_model.pb")):
            parser_error(f"--second_opinion_model: no SavedModel at {options.second_opinion_model}")
    if options.statements_dir and not is_bigquery_uri(options.warehouse):
        parser_error("--statements_dir is for a BigQuery warehouse (the embedded one keeps them under --warehouse)")


def review_media_dir(options: DetectionOptions) -> str | None:
    """Where the review queue's contact sheets go: --review_media, else beside an embedded
    warehouse; a BigQuery warehouse has none unless given."""
    if options.review_media or is_bigquery_uri(options.warehouse):
        return options.review_media
    return posixpath.join(options.warehouse, "review_media")


def load_shadow_policy(options: DetectionOptions, live, parser_error):
    """The `--shadow_policy` beside the live policy, or None; it must be another version of a
    policy or another policy, so its decision ids differ from the live ones."""
    if not options.shadow_policy:
        return None
    from enforcement.policy import load_policy

    try:
        shadow = load_policy(options.shadow_policy)
    except (OSError, ValueError) as exc:
        parser_error(f"--shadow_policy: {exc}")
    if (shadow.policy_id, shadow.version) == (live.policy_id, live.version):
        parser_error("--shadow_policy has the live policy's id and version: give the candidate a version of its own")
    return shadow
