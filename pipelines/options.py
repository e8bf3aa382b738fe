"""Command-line options of the deepfake detection jobs."""

from __future__ import annotations

from apache_beam.options.pipeline_options import PipelineOptions

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
            help="Upload events: a manifest file or glob (JSON Lines, CSV or Parquet; local or gs://). "
            "Relative media_uri values resolve against the manifest's directory. May be left out when "
            "--appeals is given: an appeals-only run.",
        )
        io.add_argument(
            "--input_format", choices=MANIFEST_FORMATS, default=None, help="Manifest format (default: from extension)."
        )
        io.add_argument(
            "--warehouse",
            help="Embedded warehouse directory: Parquet files per table plus DIR/warehouse.duckdb.",
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
            help="Appeal outcomes (JSON Lines, CSV or Parquet): decision_id, outcome (upheld|overturned), "
            "decided_at. Overturned decisions are reversed downstream, lose their strike, and label the item "
            "real for retraining.",
        )
        io.add_argument("--run_id", default=None, help="Name of this run's files (default: UTC time and a random tag).")
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
            "--inference_accelerator",
            default=None,
            help='Accelerator resource hint for the inference steps only, e.g. "type:nvidia-tesla-t4;count:1;'
            'install-nvidia-driver": on Dataflow (with right fitting) RunInference runs on GPU workers and '
            "decoding stays on CPU workers. Ignored by local runners.",
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

    def media_limits(self) -> MediaLimits:
        return MediaLimits(
            max_media_bytes=self.max_media_bytes,
            max_pixels=self.max_pixels,
            max_duration_s=self.max_duration_s,
            max_decode_s=self.max_decode_s,
            max_fetch_s=self.max_fetch_s,
        )


def check_options(options: DetectionOptions, parser_error) -> None:
    """Rejects bad flag combinations with a clear message (via the argument parser's error)."""
    if not options.input and not options.appeals:
        parser_error("--input is required (or --appeals alone, for an appeals-only run)")
    if not options.warehouse:
        parser_error("--warehouse is required")
    for name in ("max_media_bytes", "max_pixels", "max_duration_s", "max_decode_s", "max_fetch_s", "min_batch_size"):
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
