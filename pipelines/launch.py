"""The one launch path of the jobs: flags, checks, what the graph decides with, the warehouse,
and the exit status from the end-of-job account.

    launch = prepare("batch", argv)          # or "streaming"; ends with one line on a bad launch
    ... the job builds its pipeline around detect(events, launch.detection(...)) and runs it ...
    return launch.exit_status(summary)

Each job's flags are the ones `pipelines.options.JOB_FLAGS` names; every check of a flag or of
a combination lives in `check_flags`, so the jobs validate alike.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import functools
import logging
import os
import posixpath
import re
import secrets
import socket
import sys
import urllib.parse
from collections.abc import Callable
from typing import NoReturn

from apache_beam.options.pipeline_options import GoogleCloudOptions, PipelineOptions, SetupOptions, StandardOptions

from enforcement.policy import Policy, load_policy
from models.registry import SERVED_MODEL_DIR, ModelSet, parse_pinned_versions, resolve_model_set, shadow_choice
from pipelines.automation import gate_automation
from pipelines.bank import warehouse_bank, warehouse_suspended_media
from pipelines.graph import Detection
from pipelines.local_runner import remember_stateful_dofns
from pipelines.options import FILE_LOADS, STREAMING_INSERTS, job_parser, media_limits, parse_job_flags
from pipelines.reconcile import Reconciliation
from transforms.hashbank import BankRefresh, HashBank
from transforms.inference import JOIN_TIMEOUT_S
from warehouse.bigquery import BigQueryLocation, is_bigquery_uri
from warehouse.sinks import History, LaunchError, Sink, open_warehouse

# Unless told otherwise the batch job runs on the in-process portable runner: DirectRunner
# would first try to download the Prism runner, which must not happen on an offline machine.
LOCAL_RUNNER = "apache_beam.runners.portability.fn_api_runner.FnApiRunner"
STREAMING_RUNNER = "DirectRunner"
LOCAL_STREAMING_RUNNERS = (STREAMING_RUNNER, "BundleBasedDirectRunner")
SUBSCRIPTION_PATH = re.compile(r"^projects/[a-z][a-z0-9-]{2,62}/subscriptions/[A-Za-z][A-Za-z0-9._~+%-]{2,254}$")
EXIT_UNBALANCED, EXIT_DEAD_LETTERS = 3, 4
ENDPOINT_TIMEOUT_S = 5.0
# Start-up noise of TensorFlow and its libraries, hidden unless --verbose.
QUIET_ENVIRONMENT = {"TF_CPP_MIN_LOG_LEVEL": "3", "GRPC_VERBOSITY": "ERROR", "GLOG_minloglevel": "3"}


class _DropNotes(logging.Filter):
    """Drops log records that say nothing a user can act on: Beam 2.77's RunInference warns on
    every model load that it cannot measure memory (its optional ModelManager import failing
    takes the `resource` module with it)."""

    NOTES = ("Resource module is not available",)

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.NOTES)


def quiet_start_up(verbose: bool) -> None:
    """Hides TensorFlow's, absl's and Beam's start-up logs unless `verbose`: they go to stderr
    from C++ and from loggers the job does not own, and say nothing a user can act on.
    TensorFlow 2.21 writes its C++ start-up lines (oneDNN, CUDA probes) before absl logging is
    initialised, whatever TF_CPP_MIN_LOG_LEVEL says, so it is imported here with the process's
    stderr pointed at /dev/null."""
    if verbose:
        logging.getLogger().setLevel(logging.INFO)
        return
    for name, value in QUIET_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    root = logging.getLogger()
    root.setLevel(logging.WARNING)
    if not any(isinstance(f, _DropNotes) for f in root.filters):  # once a process, however many launches
        root.addFilter(_DropNotes())
    for name in ("apache_beam", "absl", "tensorflow", "h5py", "google"):
        logging.getLogger(name).setLevel(logging.ERROR)
    if "tensorflow" not in sys.modules:
        sys.stderr.flush()
        saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        try:
            import tensorflow  # noqa: F401
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            os.close(devnull)


def check_flags(job: str, options: argparse.Namespace, error: Callable[[str], NoReturn]) -> None:
    """Refuses bad values and combinations with one line: every check of both jobs."""
    if not options.warehouse:
        error("--warehouse is required")
    bigquery = is_bigquery_uri(options.warehouse)
    for name in ("max_media_bytes", "max_pixels", "max_duration_s", "max_decode_s", "max_fetch_s", "max_inline_bytes",
                 "min_batch_size"):  # fmt: skip
        if getattr(options, name) <= 0:
            error(f"--{name} must be positive")
    if options.max_batch_size < options.min_batch_size:
        error("--max_batch_size must be at least --min_batch_size")
    if options.min_cell_count < 1:
        error("--min_cell_count must be at least 1")
    if not 0 <= options.max_dead_letter_share <= 1:
        error("--max_dead_letter_share must be between 0 and 1")
    if options.events_sink == "pubsub" and not options.pubsub_project:
        error("--events_sink pubsub needs --pubsub_project")
    if options.events_sink != "pubsub" and (options.pubsub_project or options.pubsub_topic_prefix):
        error("--pubsub_project and --pubsub_topic_prefix are for --events_sink pubsub")
    if options.gpu_workers == "all" and not options.accelerator:
        error("--gpu_workers all needs --accelerator")
    if options.second_opinion_model:
        from models import storage

        if not storage.exists(storage.join(options.second_opinion_model, "saved_model.pb")):
            error(f"--second_opinion_model: no SavedModel at {options.second_opinion_model}")
    (check_batch_flags if job == "batch" else check_streaming_flags)(options, bigquery, error)
    check_warehouse(options.warehouse, options.bigquery_endpoint, error)


def check_batch_flags(options: argparse.Namespace, bigquery: bool, error: Callable[[str], NoReturn]) -> None:
    if options.input and options.input_query:
        error("--input and --input_query: give one source of upload events")
    if options.appeals and options.appeals_query:
        error("--appeals and --appeals_query: give one source of appeals")
    if not (options.input or options.input_query or options.appeals or options.appeals_query or options.reviews):
        error("--input is required (or --appeals or --reviews alone, for a run without uploads)")
    queries = options.input_query or options.appeals_query
    if queries and not (options.bigquery_project or bigquery):
        error("--input_query and --appeals_query run in --bigquery_project (or a bq:// --warehouse's project)")
    if options.bigquery_project and not queries:
        error("--bigquery_project is where --input_query and --appeals_query run: give one of them")
    if options.input_format and not options.input:
        error("--input_format is the format of an --input manifest")
    if options.input_format and is_bigquery_uri(options.input):
        error("--input_format is for a manifest file, not a BigQuery table")
    if options.features_only and (options.model_dir or options.model_versions or options.shadow_model_dir):
        error("--features_only takes no --model_dir, --model_versions or --shadow_model_dir")
    if options.features_only and not (options.input or options.input_query):
        error("--features_only extracts the features of --input's uploads: give --input")
    if options.features_only and (options.appeals or options.appeals_query or options.reviews):
        error("--features_only decides nothing, so it applies no --appeals or --reviews: run them without it")
    if options.statements_dir and not bigquery:
        error("--statements_dir is for a BigQuery warehouse (the embedded one keeps them under --warehouse)")
    if options.bigquery_write_method and not bigquery:
        error("--bigquery_write_method is for a BigQuery warehouse")


def check_streaming_flags(options: argparse.Namespace, bigquery: bool, error: Callable[[str], NoReturn]) -> None:
    if not options.subscription:
        error("--subscription is required")
    for name in ("subscription", "appeals_subscription", "reviews_subscription"):
        path = getattr(options, name)
        if path and not _is_subscription_path(path):
            error(f"--{name}: {path!r} is not a subscription path (projects/PROJECT/subscriptions/NAME)")
    if not 0 < options.allowed_lateness_s < JOIN_TIMEOUT_S:
        error(f"--allowed_lateness_s must be positive and under {JOIN_TIMEOUT_S} s (the scoring join's wait)")
    if options.max_message_bytes <= 0:
        error("--max_message_bytes must be positive")
    if options.max_delivery_attempts < 1:
        error("--max_delivery_attempts must be at least 1")
    if options.model_refresh_s < 0:
        error("--model_refresh_s must be 0 (off) or positive")
    if options.bank_refresh_s < 0:
        error("--bank_refresh_s must be 0 (off) or positive")
    for name in ("max_run_s", "stop_after_idle_s"):
        if getattr(options, name) is not None and getattr(options, name) <= 0:
            error(f"--{name} must be positive")
    for name in ("expected_rows", "expected_appeals"):
        if getattr(options, name) is not None and getattr(options, name) < 0:
            error(f"--{name} must be 0 or more")
    if options.expected_appeals is not None and not options.appeals_subscription:
        error("--expected_appeals counts the appeals of --appeals_subscription: give it")


def check_warehouse(warehouse: str, endpoint: str | None, error: Callable[[str], NoReturn]) -> None:
    """Refuses, before anything is built, a warehouse the job could not write: a local path
    that is a file or cannot be made a directory, a BigQuery dataset without credentials, or a
    BigQuery-API endpoint nothing answers on."""
    if not is_bigquery_uri(warehouse):
        if "://" in warehouse:
            return
        if os.path.exists(warehouse) and not os.path.isdir(warehouse):
            error(f"--warehouse: {warehouse} is a file, not a warehouse directory")
        try:
            os.makedirs(warehouse, exist_ok=True)
        except OSError as exc:
            error(f"--warehouse: {warehouse} cannot be a warehouse directory ({exc.strerror})")
        if not os.access(warehouse, os.W_OK | os.X_OK):
            error(f"--warehouse: {warehouse} is not writable")
        return
    try:
        BigQueryLocation.parse(warehouse, endpoint)
    except ValueError as exc:
        error(f"--warehouse: {exc}")
    if endpoint:
        url = urllib.parse.urlsplit(endpoint)
        port = url.port or (443 if url.scheme == "https" else 80)
        try:
            socket.create_connection((url.hostname, port), timeout=ENDPOINT_TIMEOUT_S).close()
        except OSError as exc:
            error(f"--bigquery_endpoint: nothing answers at {endpoint} ({exc.strerror or exc})")
        return
    import google.auth
    from google.auth.exceptions import DefaultCredentialsError

    try:
        google.auth.default()
    except DefaultCredentialsError:
        error(f"--warehouse {warehouse}: no Google credentials found (gcloud auth application-default login, or "
              "GOOGLE_APPLICATION_CREDENTIALS); a local BigQuery-API server takes --bigquery_endpoint")  # fmt: skip


def _is_subscription_path(path: str) -> bool:
    return bool(SUBSCRIPTION_PATH.match(path))


@dataclasses.dataclass(frozen=True)
class Launch:
    """A job checked and ready to build: its flags, Beam's options, what it decides with and
    the warehouse it writes, with the history of earlier runs settled."""

    job: str
    options: argparse.Namespace
    pipeline_options: PipelineOptions
    run_id: str
    policy: Policy
    shadow_policy: Policy | None
    model_set: ModelSet
    pinned: frozenset[str]
    hash_bank: HashBank | None
    sink: Sink
    history: History
    error: Callable[[str], NoReturn]
    suspended_media: HashBank | None = None  # the media of suspended accounts (ban evasion)
    shadow_models: ModelSet | None = None  # a challenger scoring in shadow (--shadow_model_dir, or the registry's)
    shadow_until: dt.datetime | None = None  # the registry's shadow period: uploads made before it are shadow-scored

    @property
    def streaming(self) -> bool:
        return self.job == "streaming"

    @property
    def local(self) -> bool:
        """On this machine's streaming runner (bounded pulls, replay from the last clean stop)."""
        return self.pipeline_options.view_as(StandardOptions).runner in LOCAL_STREAMING_RUNNERS

    @property
    def review_media(self) -> str | None:
        """Where the review queue's contact sheets go: --review_media, else beside an embedded
        warehouse; a BigQuery warehouse has none unless given."""
        if self.options.review_media or is_bigquery_uri(self.options.warehouse):
            return self.options.review_media
        return posixpath.join(self.options.warehouse, "review_media")

    def detection(self, default_media_roots: tuple[str, ...] = ()) -> Detection:
        """What the graph decides with, for this run."""
        options = self.options
        refresh_s = {}
        if self.streaming and options.model_refresh_s:
            refresh_s = {m: options.model_refresh_s for m in self.model_set.models if m not in self.pinned}
        return Detection(
            self.policy,
            self.model_set,
            media_limits(options, default_media_roots),
            self.hash_bank,
            options.min_batch_size,
            options.max_batch_size,
            options.accelerator if options.gpu_workers == "inference" else None,
            streaming=self.streaming,
            model_refresh_s=refresh_s,
            shadow_policy=self.shadow_policy,
            bank_refresh=self._bank_refresh(),
            suspended_media=self.suspended_media,
            shadow_models=self.shadow_models,
            shadow_until=self.shadow_until,
        )

    def _bank_refresh(self) -> BankRefresh | None:
        options = self.options
        if not (self.streaming and options.bank_refresh_s):
            return None
        reload, suspended = (functools.partial(read, options.warehouse, options.bigquery_endpoint)
                             for read in (warehouse_bank, warehouse_suspended_media))  # fmt: skip
        return BankRefresh(reload, options.bank_refresh_s, f"{options.warehouse} {options.bigquery_endpoint}",
                           suspended)  # fmt: skip

    def exit_status(self, summary: Reconciliation, balanced: bool | None = None) -> int:
        """0, or why not: 3 when a row is unaccounted for, 4 when the dead-lettered share of the
        upload rows passes --max_dead_letter_share (everything is written by then)."""
        if not (summary.balanced if balanced is None else balanced):
            return EXIT_UNBALANCED
        share = summary.dead_lettered / summary.rows_read if summary.rows_read else 0.0
        if summary.rows_read and share >= self.options.max_dead_letter_share and summary.dead_lettered:
            limit = self.options.max_dead_letter_share
            print(f"{summary.dead_lettered} of {summary.rows_read} upload rows dead-lettered ({share:.0%}), over "
                  f"--max_dead_letter_share {limit:g}: exit {EXIT_DEAD_LETTERS}", file=sys.stderr)  # fmt: skip
            return EXIT_DEAD_LETTERS
        return 0


def _load(flag: str, loader: Callable, path: str, error: Callable[[str], NoReturn]):
    try:
        return loader(path)
    except (OSError, ValueError) as exc:
        error(f"--{flag}: {exc}")


def _models(options: argparse.Namespace, error) -> tuple[ModelSet, frozenset[str]]:
    if getattr(options, "features_only", False):
        return ModelSet({}), frozenset()
    model_dir = options.model_dir or str(SERVED_MODEL_DIR)
    try:
        pinned = parse_pinned_versions(options.model_versions)
        model_set = resolve_model_set(model_dir, pinned)
    except (OSError, ValueError) as exc:
        error(f"--model_dir: {exc}")
    if not model_set.models:
        hint = " (--features_only extracts features without models)" if "features_only" in options else ""
        error(f"--model_dir: no model versions found under {model_dir}{hint}")
    return model_set, frozenset(pinned)


def _shadow_models(options: argparse.Namespace, error) -> tuple[ModelSet | None, dt.datetime | None]:
    """The challenger scoring in shadow: --shadow_model_dir's for the whole run, else the one the
    registry's release put in shadow (`deepfake release shadow`) while its period lasts."""
    if getattr(options, "features_only", False):
        return None, None
    if options.shadow_model_dir:
        models = _load("shadow_model_dir", resolve_model_set, options.shadow_model_dir, error)
        if not models.models:
            error(f"--shadow_model_dir: no model versions found under {options.shadow_model_dir}")
        return models, None
    model_dir = options.model_dir or str(SERVED_MODEL_DIR)
    try:
        choice = shadow_choice(model_dir)
        if choice is None:
            return None, None
        until = dt.datetime.fromisoformat(choice["until"])
        if until <= dt.datetime.now(dt.UTC):
            return None, None
        return resolve_model_set(model_dir, dict(choice["versions"])), until
    except (OSError, ValueError, KeyError, TypeError) as exc:
        error(f"--model_dir: the registry's shadow.json cannot be served: {exc!r}")


def _pipeline_options(job: str, options: argparse.Namespace, beam_argv: list[str]) -> PipelineOptions:
    pipeline_options = PipelineOptions(beam_argv)
    if pipeline_options.view_as(SetupOptions).setup_file:
        # Beam builds the workers' package from setup.py in a child process: the serving build,
        # without the operator tools and the training code (setup.py's SERVING).
        os.environ["DEEPFAKE_PACKAGE"] = "serving"
    standard = pipeline_options.view_as(StandardOptions)
    if job == "streaming":
        standard.streaming = True
    standard.runner = standard.runner or (STREAMING_RUNNER if job == "streaming" else LOCAL_RUNNER)
    if options.accelerator and options.gpu_workers == "all":  # one pool: every worker gets the GPU
        google = pipeline_options.view_as(GoogleCloudOptions)
        google.dataflow_service_options = [*(google.dataflow_service_options or []),
                                           f"worker_accelerator={options.accelerator}"]  # fmt: skip
    return pipeline_options


def prepare(job: str, argv: list[str] | None = None) -> Launch:
    """Parses and checks the job's flags, loads the policy, models and hash bank, opens the
    warehouse and settles its history (a truncating batch run reads it before clearing).
    A bad launch ends here with one line and exit status 2."""
    argv = sys.argv[1:] if argv is None else list(argv)
    options, beam_argv = parse_job_flags(job, argv)
    quiet_start_up(options.verbose)
    error = job_parser(job).error
    check_flags(job, options, error)
    pipeline_options = _pipeline_options(job, options, beam_argv)
    if pipeline_options.view_as(StandardOptions).runner in (LOCAL_RUNNER, *LOCAL_STREAMING_RUNNERS):
        remember_stateful_dofns()

    policy = _load("policy", load_policy, options.policy, error)
    shadow_policy = None
    if options.shadow_policy:
        shadow_policy = _load("shadow_policy", load_policy, options.shadow_policy, error)
        if (shadow_policy.policy_id, shadow_policy.version) == (policy.policy_id, policy.version):
            error("--shadow_policy has the live policy's id and version: give the candidate a version of its own")
    model_set, pinned = _models(options, error)
    shadow_models, shadow_until = _shadow_models(options, error)
    hash_bank = _load("hash_bank", HashBank.load, options.hash_bank, error) if options.hash_bank else None

    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ-") + ("stream-" if job == "streaming" else "")
    run_id = options.run_id or stamp + secrets.token_hex(3)
    truncate = getattr(options, "write_disposition", "append") == "truncate"
    try:
        sink = open_warehouse(
            options.warehouse,
            run_id,
            bigquery_endpoint=options.bigquery_endpoint,
            write_method=STREAMING_INSERTS if job == "streaming" else options.bigquery_write_method or FILE_LOADS,
            temp_location=pipeline_options.view_as(GoogleCloudOptions).temp_location,
            statements_dir=getattr(options, "statements_dir", None),
            pubsub_project=options.pubsub_project,
            topic_prefix=options.pubsub_topic_prefix,
        )
    except ValueError as exc:
        error(f"--warehouse: {exc}")
    try:
        # Appeals refer to decisions of earlier runs (and may repeat appeals already applied):
        # the history is settled before a truncating run clears the tables.
        history = sink.history(options.strike_ledger, truncate)
    except LaunchError as exc:
        error(str(exc))
    policy = gate_automation(policy, sink, options.warehouse, options.bigquery_endpoint)
    # The bank of confirmed violations as of this launch (before a truncating run clears the
    # tables), beside any --hash_bank file.
    hash_bank = HashBank.combined(hash_bank, warehouse_bank(options.warehouse, options.bigquery_endpoint))
    suspended = warehouse_suspended_media(options.warehouse, options.bigquery_endpoint)
    return Launch(job, options, pipeline_options, run_id, policy, shadow_policy, model_set, pinned, hash_bank, sink,
                  history, error, suspended, shadow_models, shadow_until)  # fmt: skip


def main(job: str, run: Callable[[list[str]], int]) -> int:
    """The command line of `python -m pipelines.<job>`: the run's exit status, or 1 with one
    line naming what failed (the traceback only with --verbose)."""
    argv = sys.argv[1:]
    try:
        return run(argv)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if "--verbose" in argv:
            raise
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        said = lines[-1][:400] if lines else ""
        print(f"python -m pipelines.{job}: failed: {type(exc).__name__}: {said} (--verbose shows the traceback)",
              file=sys.stderr)  # fmt: skip
        return 1
