"""Command-line options of the deepfake detection jobs."""

from __future__ import annotations

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

    def media_limits(self) -> MediaLimits:
        return MediaLimits(
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
    if not (options.input or options.input_query or options.appeals or options.appeals_query):
        parser_error("--input is required (or --appeals alone, for an appeals-only run)")
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
    if options.statements_dir and not is_bigquery_uri(options.warehouse):
        parser_error("--statements_dir is for a BigQuery warehouse (the embedded one keeps them under --warehouse)")
