"""The jobs' command-line flags, declared once, and the strict parser that reads them.

Each flag is declared once in `FLAGS` (its group and argparse keywords); each job names the
flags it takes in `JOB_FLAGS`, and `job_parser` builds its parser from them, so a flag that
does not apply to a job is not in its parser and is refused like a misspelt one. Beam's own
pipeline options (--runner, --project, --temp_location, ...) are parsed by Beam's parser;
whatever neither parser knows ends the launch with one line naming the nearest flag.

Tools reuse the shared declarations with `add_flags(parser, "warehouse", ...)`.
"""

from __future__ import annotations

import argparse
import difflib
import posixpath
import sys
from collections.abc import Iterable, Mapping
from typing import Any, NoReturn

from transforms.limits import MediaLimits
from transforms.messages import DEFAULT_MAX_ATTEMPTS, DEFAULT_MAX_MESSAGE_BYTES
from transforms.parse import MANIFEST_FORMATS
from warehouse.bigquery import FILE_LOADS, STREAMING_INSERTS

DEFAULT_POLICY = "policies/synthetic_media_v1.yaml"
DEFAULT_MIN_CELL_COUNT = 10
_LIMITS = MediaLimits()

# Group titles, in the order `--help` prints them.
UPLOADS, WAREHOUSE, MODELS, LIMITS, STREAM, LOCAL_RUN, OUTPUT = (
    "upload events, appeals and verdicts",
    "warehouse and enforcement events",
    "models and policy",
    "per-item limits (an item over one is dead-lettered, naming it)",
    "streaming",
    "local streaming runs (when to stop)",
    "output",
)

FLAGS: Mapping[str, tuple[str, dict[str, Any]]] = {
    # -- where uploads, appeals and verdicts come from
    "input": (UPLOADS, dict(
        help="Upload events: a manifest file or glob (JSON Lines, CSV or Parquet; local or gs://), or a BigQuery "
        "table bq://PROJECT.DATASET.TABLE. Relative media_uri values resolve against the manifest's directory. May "
        "be left out when --appeals or --reviews is given: a run without uploads.")),
    "input_query": (UPLOADS, dict(
        help="Upload events from a BigQuery standard SQL query (instead of --input), run in --bigquery_project.")),
    "input_format": (UPLOADS, dict(choices=MANIFEST_FORMATS, help="Manifest format (default: from extension).")),
    "appeals": (UPLOADS, dict(
        help="Appeal outcomes (JSON Lines, CSV or Parquet, or bq://PROJECT.DATASET.TABLE): decision_id, outcome "
        "(upheld|overturned), decided_at. Overturned decisions are reversed downstream, lose their strike, and "
        "label the item real for retraining.")),
    "appeals_query": (UPLOADS, dict(help="Appeal outcomes from a BigQuery standard SQL query (instead of --appeals).")),
    "reviews": (UPLOADS, dict(
        help="Reviewers' verdicts (JSON Lines, CSV or Parquet, or bq://PROJECT.DATASET.TABLE): review_id, "
        "decision_id, violating, category, action, reviewer (pseudonymous), decided_at. Each becomes the item's "
        "final decision; one that disagrees with an automated action reverses it.")),
    "bigquery_project": (UPLOADS, dict(
        help="Project that runs --input_query and --appeals_query (default: the --warehouse project).")),
    "subscription": (UPLOADS, dict(help="Upload events: projects/P/subscriptions/S.")),
    "appeals_subscription": (UPLOADS, dict(
        help="Appeal outcomes (JSON: decision_id, outcome, decided_at; the decided_at attribute is the event time).")),
    "reviews_subscription": (UPLOADS, dict(
        help="Reviewers' verdicts (JSON, as --reviews takes; the decided_at attribute is the event time).")),
    # -- where everything goes
    "warehouse": (WAREHOUSE, dict(
        help="Embedded warehouse directory (Parquet files per table plus DIR/warehouse.duckdb), or a BigQuery "
        "dataset bq://PROJECT.DATASET (a job creates its tables and views from schemas/).")),
    "bigquery_endpoint": (WAREHOUSE, dict(
        help="URL of a BigQuery-API server other than Google's (a local one, e.g. http://127.0.0.1:9050). "
        "Default: Google, with the worker's credentials.")),
    "bigquery_write_method": (WAREHOUSE, dict(
        choices=(FILE_LOADS, STREAMING_INSERTS),
        help="How rows reach a BigQuery warehouse: load jobs (the default: free; rows checked against the schema "
        "first) or streaming inserts with insert ids (rows BigQuery refuses come back as dead letters with its "
        "reason). The streaming job always inserts.")),
    "statements_dir": (WAREHOUSE, dict(
        help="Directory (local or gs://) for the statements of reasons in Transparency Database API batches, with a "
        "BigQuery warehouse (the embedded one writes them under DIR/statements_of_reasons_batches).")),
    "write_disposition": (WAREHOUSE, dict(
        choices=("append", "truncate"), default="append",
        help="append adds this run's files to the tables; truncate empties the tables first.")),
    "strike_ledger": (WAREHOUSE, dict(
        help="Prior strike ledger (Parquet file or glob). Default: the newest ledger in --warehouse; with "
        "--write_disposition truncate and no ledger given, strikes start from none.")),
    "review_media": (WAREHOUSE, dict(
        help="Where the review queue's contact sheets (PNG of the sampled frames) go, local or gs:// (default: "
        "DIR/review_media beside an embedded warehouse; none for BigQuery unless given).")),
    "run_id": (WAREHOUSE, dict(
        help="Name of this run's files and rows (default: UTC time and a random tag). Run ids must sort in run "
        "order: the newest run's strike ledger is the current one.")),
    "events_sink": (WAREHOUSE, dict(
        choices=("warehouse", "pubsub"), default="warehouse",
        help="Where enforcement events go: the warehouse's enforcement_events table only, or also one Pub/Sub "
        "topic per target (--pubsub_project; PUBSUB_EMULATOR_HOST for the emulator).")),
    "pubsub_project": (WAREHOUSE, dict(help="Project of the enforcement topics (--events_sink pubsub).")),
    "pubsub_topic_prefix": (WAREHOUSE, dict(
        default="", help="Prefix of each target's topic id (default: the target's name).")),
    "min_cell_count": (WAREHOUSE, dict(
        type=int, default=DEFAULT_MIN_CELL_COUNT,
        help="Transparency cells with fewer decisions are suppressed (default %(default)s).")),
    # -- what decides
    "model_dir": (MODELS, dict(
        help="Directory with <modality>/<version>/ SavedModels and model cards; the newest version of each "
        "modality is served. Default: the model set shipped with the package (models/served).")),
    "features_only": (MODELS, dict(
        action="store_true",
        help="Extract and write features only, with no model (to build training data): nothing is scored, decided "
        "or enforced, and the run counts in no transparency figure (a curated corpus is not anyone's upload).")),
    "model_versions": (MODELS, dict(
        help="Pin versions instead of the newest, e.g. visual=20261121T2200,fusion=20261121T2200.")),
    "model_refresh_s": (MODELS, dict(
        type=float, default=60.0,
        help="Every this many seconds each worker looks in --model_dir for the registry's current choice (the "
        "release promoted last, else the newest version) of each model it serves and serves it from the next batch "
        "on; every score names the version that produced it. Versions "
        "pinned with --model_versions never change; 0 turns refresh off (default %(default)s).")),
    "bank_refresh_s": (MODELS, dict(
        type=float, default=30.0,
        help="Every this many seconds each worker reads the bank of confirmed violations and the media of suspended "
        "accounts from --warehouse again, so a removal confirmed while the job runs matches its re-uploads, and an "
        "account suspended while it runs links its media's re-uploads from other accounts, from then on; 0 keeps "
        "what was read at launch (default %(default)s).")),
    "hash_bank": (MODELS, dict(
        help="JSON Lines of known synthetic media PDQ hashes ({'pdq': hex, 'label': ...}), matched beside the "
        "bank of confirmed violations the job reads from --warehouse at launch; a match is the policy signal "
        "hash_match.")),
    "policy": (MODELS, dict(default=DEFAULT_POLICY, help="Enforcement policy YAML file (default %(default)s).")),
    "shadow_policy": (MODELS, dict(
        help="A candidate policy YAML run beside --policy on the same scores: its decisions go to shadow_decisions "
        "only (never fanned out, queued or struck), for the simulation's --shadow comparison.")),
    "shadow_model_dir": (MODELS, dict(
        help="A challenger's model directory (a training's --out) scoring every upload of this run beside the served "
        "models; the live policy says what it would have done, into shadow_scores only (nothing acts on it), for the "
        "promotion gate's shadow criteria (deepfake release gate --shadow_warehouse). Without it, a challenger the "
        "registry's release put in shadow (deepfake release shadow) does the same until the release's date.")),
    "second_opinion_model": (MODELS, dict(
        help="A SavedModel (models/second_opinion.py's signature: evidence and the category's policy text in, "
        "probability and rationale out) consulted on every review-queue item; its answer is stored with the row "
        "as advice.")),
    "accelerator": (MODELS, dict(
        help="GPU for inference, in Dataflow's worker_accelerator form, e.g. \"type:nvidia-tesla-t4;count:1;"
        'install-nvidia-driver". With --gpu_workers inference (default) it is a resource hint on the RunInference '
        "steps only: Dataflow right fitting runs them on GPU workers and decoding on CPU workers. Local runners "
        "ignore it.")),
    "gpu_workers": (MODELS, dict(
        choices=("inference", "all"), default="inference",
        help="inference: only the RunInference steps get GPU workers (resource hint). all: one worker pool, every "
        "worker with the GPU (the worker_accelerator service option), for runners without right fitting.")),
    "min_batch_size": (MODELS, dict(type=int, default=1, help="Smallest RunInference batch (default %(default)s).")),
    "max_batch_size": (MODELS, dict(type=int, default=32, help="Largest RunInference batch (default %(default)s).")),
    # -- per-item limits
    "media_root": (LIMITS, dict(
        action="append",
        help="A folder local media may be read from (repeatable; symlinks are resolved before the check). "
        "Default: the manifest's folder (batch); the streaming job reads no local media unless given one. Media "
        "elsewhere, and schemes other than local and gs://, are dead-lettered uri_not_allowed without being "
        "opened.")),
    "media_bucket": (LIMITS, dict(
        action="append",
        help="A gs:// bucket media may be read from (repeatable; default: any bucket the workers can read).")),
    "max_media_bytes": (LIMITS, dict(type=int, default=_LIMITS.max_media_bytes, help="Default %(default)s bytes.")),
    "max_pixels": (LIMITS, dict(type=int, default=_LIMITS.max_pixels, help="Default %(default)s pixels.")),
    "max_duration_s": (LIMITS, dict(type=float, default=_LIMITS.max_duration_s, help="Default %(default)s seconds.")),
    "max_decode_s": (LIMITS, dict(
        type=float, default=_LIMITS.max_decode_s, help="Decode time per item and track; default %(default)s seconds.")),
    "max_fetch_s": (LIMITS, dict(
        type=float, default=_LIMITS.max_fetch_s,
        help="Time to fetch one remote object (gs://), retries included; default %(default)s seconds.")),
    "max_inline_bytes": (LIMITS, dict(
        type=int, default=_LIMITS.max_inline_bytes,
        help="Media larger than this is read from storage by each extractor instead of carried in the element "
        "(memory flat in an upload's length); default %(default)s bytes.")),
    # -- the streaming job's door and windows
    "allowed_lateness_s": (STREAM, dict(
        type=int, default=6 * 3600,
        help="How late (event time) a decision may arrive and still update its window's cells; older events are "
        "dead-lettered for the batch job (default %(default)s).")),
    "max_message_bytes": (STREAM, dict(
        type=int, default=DEFAULT_MAX_MESSAGE_BYTES,
        help="A message body over this is dead-lettered message_too_large, never parsed (default %(default)s).")),
    "max_delivery_attempts": (STREAM, dict(
        type=int, default=DEFAULT_MAX_ATTEMPTS,
        help="A message delivered this many times without an outcome (the job stopped with it in flight each time) "
        "is dead-lettered delivery_attempts_exceeded on the next (default %(default)s).")),
    "max_run_s": (LOCAL_RUN, dict(type=float, help="Stop cleanly after this long.")),
    "stop_after_idle_s": (LOCAL_RUN, dict(
        type=float, help="Stop cleanly once nothing new has been accounted for in this long.")),
    "expected_rows": (LOCAL_RUN, dict(
        type=int,
        help="Stop once this many upload messages of the subscription's history are accounted for (scored, "
        "dead-lettered or skipped), and balance the reconciliation against it.")),
    "expected_appeals": (LOCAL_RUN, dict(
        type=int, help="Stop once this many appeals are accounted for (applied, dead-lettered or skipped).")),
    # -- what the launch prints and how it ends
    "max_dead_letter_share": (OUTPUT, dict(
        type=float, default=1.0,
        help="Exit with status 4 (after writing everything) when more than this share of the upload rows read "
        "were dead-lettered (default %(default)s: only when every row was).")),
    "verbose": (OUTPUT, dict(
        action="store_true",
        help="Show TensorFlow's and Beam's start-up logs and the traceback of a launch error.")),
}  # fmt: skip

_SHARED = ("warehouse", "bigquery_endpoint", "strike_ledger", "review_media", "run_id", "events_sink",
           "pubsub_project", "pubsub_topic_prefix", "min_cell_count", "model_dir", "model_versions", "hash_bank",
           "policy", "shadow_policy", "shadow_model_dir", "second_opinion_model", "accelerator", "gpu_workers",
           "min_batch_size", "max_batch_size", "media_root", "media_bucket", "max_media_bytes", "max_pixels", "max_duration_s",
           "max_decode_s", "max_fetch_s", "max_inline_bytes", "max_dead_letter_share", "verbose")  # fmt: skip
JOB_FLAGS: Mapping[str, tuple[str, ...]] = {
    "batch": ("input", "input_query", "input_format", "appeals", "appeals_query", "reviews", "bigquery_project",
              "bigquery_write_method", "statements_dir", "write_disposition", "features_only", *_SHARED),
    "streaming": ("subscription", "appeals_subscription", "reviews_subscription", "model_refresh_s", "bank_refresh_s",
                  "allowed_lateness_s", "max_message_bytes", "max_delivery_attempts", "max_run_s",
                  "stop_after_idle_s", "expected_rows", "expected_appeals", *_SHARED),
}  # fmt: skip
JOB_USAGE = {
    "batch": "%(prog)s --input MANIFEST --warehouse DIR|bq://PROJECT.DATASET [flags]",
    "streaming": "%(prog)s --subscription projects/P/subscriptions/S --warehouse DIR|bq://PROJECT.DATASET [flags]",
}
JOB_DESCRIPTIONS = {
    "batch": "Score uploads for synthetic media, decide under a policy, write the warehouse.",
    "streaming": "Score uploads from Pub/Sub as they arrive, decide under a policy, write the warehouse.",
}
BEAM_EPILOG = (
    "Beam's own pipeline options pass through to the runner (--runner, --project, --region, --temp_location, "
    "--setup_file, --direct_num_workers, --direct_running_mode, ...): --help_beam lists them all."
)


class StrictParser(argparse.ArgumentParser):
    """An argument parser that ends a bad command line with one line (the usage block only
    with --help), refuses abbreviations, and names the nearest flag to a misspelt one."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(2)

    def known_flags(self) -> list[str]:
        return [flag for action in self._actions for flag in action.option_strings if flag.startswith("--")]

    def refuse_unknown(
        self, unknown: list[str], also_known: Iterable[str] = (), elsewhere: Mapping[str, str] = {}
    ) -> None:
        """Ends the launch on the first argument nobody parsed: a flag of another command
        (`elsewhere`: flag -> where it belongs) says so; a misspelt one names the nearest of
        this parser's flags, else of `also_known`."""
        if not unknown:
            return
        flag = unknown[0].split("=", 1)[0]
        if not flag.startswith("-"):
            self.error(f"unexpected argument {flag!r} (flags take the form --name value)")
        if flag in elsewhere:
            self.error(f"{flag} is not a flag of this job: it belongs to {elsewhere[flag]}")
        nearest = (difflib.get_close_matches(flag, self.known_flags(), n=1, cutoff=0.6)
                   or difflib.get_close_matches(flag, list(also_known), n=1, cutoff=0.75))  # fmt: skip
        hint = f"; did you mean {nearest[0]}?" if nearest else "; --help lists the flags"
        self.error(f"unrecognized flag {flag}{hint}")

    def parse_args(self, args=None, namespace=None):
        parsed, unknown = self.parse_known_args(args, namespace)
        self.refuse_unknown(unknown)
        return parsed


def add_flags(parser: argparse.ArgumentParser, *names: str, required: Iterable[str] = ()) -> None:
    """Adds the declared flags `names` to `parser` (in their groups when it has them), the
    ones in `required` as required: how every command takes --warehouse, --bigquery_endpoint,
    --min_cell_count and the like, declared once here."""
    groups = {group.title: group for group in parser._action_groups}
    required = frozenset(required)
    for name in names:
        title, keywords = FLAGS[name]
        target = groups.get(title) or parser
        target.add_argument(f"--{name}", **keywords, **({"required": True} if name in required else {}))


def job_parser(job: str) -> StrictParser:
    """The parser of `python -m pipelines.<job>`: exactly the flags the job takes."""
    parser = StrictParser(prog=f"python -m pipelines.{job}", usage=JOB_USAGE[job], description=JOB_DESCRIPTIONS[job],
                          epilog=BEAM_EPILOG)  # fmt: skip
    names = JOB_FLAGS[job]
    titles = dict.fromkeys(FLAGS[name][0] for name in FLAGS)  # the declaration order
    for title in titles:
        if any(FLAGS[name][0] == title for name in names):
            parser.add_argument_group(title)
    add_flags(parser, *names)
    parser.add_argument("--help_beam", action=_BeamHelp, nargs=0, help="List Beam's pipeline options and exit.")
    return parser


def flag_actions(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """The parser's flags that configure a run (--help and --help_beam left out)."""
    return [action for action in parser._actions if action.dest not in ("help", "help_beam")]


def beam_parser() -> argparse.ArgumentParser:
    """Beam's own pipeline options, as Beam itself parses them."""
    from apache_beam.options.pipeline_options import PipelineOptions, _BeamArgumentParser

    parser = _BeamArgumentParser(prog="Beam pipeline options", allow_abbrev=False, add_help=False)
    seen = {}
    for cls in PipelineOptions.__subclasses__():
        seen.setdefault(str(cls), cls)
    for cls in seen.values():
        cls._add_argparse_args(parser)
    return parser


class _BeamHelp(argparse.Action):
    def __call__(self, parser, namespace, values, option_string=None):
        beam_parser().print_help()
        parser.exit()


def parse_with_beam(parser: StrictParser, argv: list[str] | None,
                    elsewhere: Mapping[str, str] = {}) -> tuple[argparse.Namespace, list[str]]:  # fmt: skip
    """(`parser`'s flags, the arguments for Beam's PipelineOptions) of a command that runs a
    Beam job. Anything neither takes ends the command with one line (`elsewhere`: flags of
    other commands, flag -> where it belongs)."""
    options, rest = parser.parse_known_args(argv)
    beam = beam_parser()
    _, unknown = beam.parse_known_args(rest)
    parser.refuse_unknown(unknown, also_known=[f for a in beam._actions for f in a.option_strings], elsewhere=elsewhere)
    return options, rest


def parse_job_flags(job: str, argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """(the job's own flags, the arguments for Beam's PipelineOptions). Anything neither the
    job nor Beam takes ends the launch with one line."""
    elsewhere = {f"--{name}": f"python -m pipelines.{other}"
                 for other, names in JOB_FLAGS.items() if other != job for name in names}  # fmt: skip
    return parse_with_beam(job_parser(job), argv, elsewhere)


def media_limits(options: argparse.Namespace, default_roots: tuple[str, ...] = ()) -> MediaLimits:
    """The per-item limits, with where media may be read from: --media_root, else
    `default_roots`; --media_bucket, else any bucket."""
    roots = tuple(options.media_root) if options.media_root else tuple(default_roots)
    return MediaLimits(
        media_roots=tuple(posixpath.abspath(root) for root in roots),
        media_buckets=tuple(options.media_bucket) if options.media_bucket else None,
        max_media_bytes=options.max_media_bytes,
        max_pixels=options.max_pixels,
        max_duration_s=options.max_duration_s,
        max_decode_s=options.max_decode_s,
        max_fetch_s=options.max_fetch_s,
        max_inline_bytes=options.max_inline_bytes,
    )
