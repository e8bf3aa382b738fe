"""The production infrastructure (infra/) checked against the code it serves.

No Docker daemon runs on this machine and Terraform cannot fetch its Google provider here, so
nothing is built or applied: the Terraform is parsed (python-hcl2), the Dockerfiles and the
Flex Template metadata are read, and each is compared with what it has to agree with: the table
contracts in schemas/, the view SQL of `schemas.bigquery`, the shipped policy's targets, the
job's flags, requirements.txt and setup.py.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import functools
import importlib.util
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import hcl2
import pytest
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from hcl2.utils import SerializationOptions

from enforcement.policy import load_policy
from pipelines.launch import check_flags
from pipelines.options import DEFAULT_POLICY, flag_actions, job_parser
from schemas import INPUT_TABLES, SCHEMA_DIR, SCHEMA_OF, TABLES, bigquery_schema
from schemas import bigquery as schemas_bigquery
from schemas.vocabulary import SUSPENSION_TARGET
from transforms.pubsub import topic_path

ROOT = Path(__file__).resolve().parents[1]
INFRA = ROOT / "infra"
TERRAFORM = INFRA / "terraform"
FLEX = INFRA / "flex-template"
DOCKERFILES = {
    "cpu": INFRA / "worker-cpu.Dockerfile",
    "gpu": INFRA / "worker-gpu.Dockerfile",
    "launcher": FLEX / "Dockerfile",
}
LIBROSA_WARM_UP = "import numpy as np, librosa; librosa.stft(np.zeros(4000, np.float32), n_fft=512)"
BEAM_SDK_IMAGE = "apache/beam_python3.11_sdk"
BEAM_BOOT = "/opt/apache/beam"


# --- Terraform, parsed ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Terraform:
    locals: dict[str, Any]
    variables: dict[str, dict[str, Any]]
    resources: dict[tuple[str, str], dict[str, Any]]  # (type, name) -> body


@functools.cache
def terraform() -> Terraform:
    options = SerializationOptions(strip_string_quotes=True, explicit_blocks=False, with_comments=False)
    locals_, variables, resources = {}, {}, {}
    for path in sorted(TERRAFORM.glob("*.tf")):
        with path.open() as file:
            document = hcl2.load(file, serialization_options=options)
        for block in document.get("locals", []):
            assert not locals_.keys() & block.keys(), f"{path.name}: a local defined twice"
            locals_.update(block)
        for block in document.get("variable", []):
            variables.update(block)
        for block in document.get("resource", []):
            for kind, named in block.items():
                for name, body in named.items():
                    assert (kind, name) not in resources, f"{path.name}: {kind}.{name} defined twice"
                    resources[kind, name] = body
    return Terraform(locals_, variables, resources)


def resolve(expression: str) -> str:
    """`expression` with `${path.module}` and `${local.NAME}` of string locals filled in, as
    Terraform would (path.module is infra/terraform)."""
    string_locals = {f"local.{name}": value for name, value in terraform().locals.items() if isinstance(value, str)}

    def substitute(match: re.Match) -> str:
        name = match.group(1)
        if name == "path.module":
            return str(TERRAFORM)
        return resolve(string_locals[name]) if name in string_locals else match.group(0)

    return re.sub(r"\$\{(path\.module|local\.[a-z_]+)\}", substitute, expression)


def read_path(expression: str) -> Path:
    """The file a `file("...")` inside `expression` reads."""
    match = re.search(r'file\("(.+?)"\)', resolve(expression))
    assert match, f"no file(...) in {expression}"
    return Path(match.group(1)).resolve()


def for_each_keys(body: dict[str, Any]) -> list[str]:
    """The keys of a `for_each` over a literal list or a list local (toset(...) or not)."""
    expression = body["for_each"]
    local = re.fullmatch(r"\$\{(?:toset\()?local\.([a-z_]+)\)?\}", expression)
    if local:
        return list(terraform().locals[local.group(1)])
    return re.findall(r'"([^"]+)"', expression)


def test_the_tables_are_the_ones_in_schemas_bigquery_tables_json():
    tables_json = read_path(terraform().locals["tables"])
    assert tables_json == SCHEMA_DIR / "bigquery_tables.json"
    table = terraform().resources["google_bigquery_table", "table"]
    assert table["for_each"] == "${local.tables}"
    assert table["table_id"] == '${lookup(each.value, "physical_table", each.key)}'
    assert table["description"] == "${each.value.why}"
    assert table["clustering"] == "${each.value.clustering}"
    assert table["time_partitioning"] == [
        {"type": "${each.value.time_partitioning.type}", "field": "${each.value.time_partitioning.field}"}
    ]
    # Every table the code writes or reads is created, and nothing else.
    assert set(json.loads(tables_json.read_text())) == {*TABLES, *INPUT_TABLES}


def test_each_table_gets_the_schema_file_the_code_validates_rows_with():
    schema = terraform().resources["google_bigquery_table", "table"]["schema"]
    match = re.fullmatch(r'\$\{file\("(.+)/\$\{lookup\(local\.schema_of, each\.key, each\.key\)\}\.json"\)\}', schema)
    assert match, f"unexpected schema expression {schema}"
    schema_dir = Path(resolve(match.group(1))).resolve()
    assert terraform().locals["schema_of"] == SCHEMA_OF
    for table in json.loads((SCHEMA_DIR / "bigquery_tables.json").read_text()):
        schema_file = schema_dir / f"{terraform().locals['schema_of'].get(table, table)}.json"
        assert schema_file.exists(), f"{table}: Terraform reads {schema_file}, which does not exist"
        assert json.loads(schema_file.read_text()) == list(bigquery_schema(table))


def test_tables_are_protected_from_deletion_in_production():
    assert (
        terraform().resources["google_bigquery_table", "table"]["deletion_protection"] == "${var.deletion_protection}"
    )
    assert terraform().variables["deletion_protection"]["default"] is True


def test_views_json_is_what_schemas_bigquery_prints_now(capsys):
    """Stale views.json: `python -m schemas.bigquery > infra/terraform/views.json`."""
    assert schemas_bigquery.main() == 0
    assert (TERRAFORM / "views.json").read_text() == capsys.readouterr().out


def test_every_view_lands_in_the_main_or_the_compliance_dataset():
    locals_ = terraform().locals
    assert read_path(locals_["views"]) == TERRAFORM / "views.json"
    assert read_path(locals_["compliance_layout"]) == SCHEMA_DIR / "compliance_views.json"
    assert locals_["compliance_dataset"] == "${var.dataset}${local.compliance_layout.dataset_suffix}"
    main, compliance = schemas_bigquery.DATASET_PLACEHOLDER, schemas_bigquery.compliance_dataset("__DATASET__")
    datasets = {name.split(".")[0] for name in json.loads((TERRAFORM / "views.json").read_text())}
    assert datasets == {main, compliance}


def test_compliance_views_are_authorized_and_wait_for_what_they_read():
    resources = terraform().resources
    compliance_view = resources["google_bigquery_table", "compliance_view"]
    assert compliance_view["for_each"] == "${local.compliance_views}"
    assert set(compliance_view["depends_on"]) == {"${google_bigquery_table.table}", "${google_bigquery_table.view}"}
    assert "${google_bigquery_table.table}" in resources["google_bigquery_table", "view"]["depends_on"]
    access = resources["google_bigquery_dataset_access", "compliance_view"]
    assert access["for_each"] == "${google_bigquery_table.compliance_view}"
    assert access["dataset_id"] == "${google_bigquery_dataset.main.dataset_id}"
    assert access["view"][0]["table_id"] == "${each.value.table_id}"
    analysts = resources["google_bigquery_dataset_iam_member", "compliance_analysts"]
    assert analysts["dataset_id"] == "${google_bigquery_dataset.compliance.dataset_id}"
    assert analysts["role"] == "roles/bigquery.dataViewer"
    # Analysts are granted nothing on the main dataset.
    for (kind, _), body in resources.items():
        if "compliance_analysts" in json.dumps(body) and kind != "google_bigquery_dataset_iam_member":
            pytest.fail(f"{kind} grants the compliance analysts more than the compliance dataset")


def test_every_target_of_the_shipped_policy_has_a_topic():
    policy = load_policy(ROOT / DEFAULT_POLICY)
    targets = {target for names in policy.targets.values() for target in names} | {SUSPENSION_TARGET}
    default = terraform().variables["enforcement_targets"]["default"]
    assert targets <= set(default), f"enforcement_targets lacks {sorted(targets - set(default))}"
    topics = terraform().resources["google_pubsub_topic", "enforcement"]
    assert topics["for_each"] == "${toset(var.enforcement_targets)}"


def test_topic_ids_are_the_ones_the_job_publishes_to():
    prefix_default = terraform().variables["topic_prefix"]["default"]
    assert prefix_default == job_parser("batch").get_default("pubsub_topic_prefix")
    name = terraform().resources["google_pubsub_topic", "enforcement"]["name"]
    for prefix in ("", "prod-"):
        topic_id = name.replace("${var.topic_prefix}", prefix).replace("${each.key}", "takedown")
        assert f"projects/p/topics/{topic_id}" == topic_path("p", "takedown", prefix)


def test_each_target_subscription_dead_letters_to_the_dead_letter_topic():
    resources = terraform().resources
    subscription = resources["google_pubsub_subscription", "enforcement"]
    assert subscription["for_each"] == "${google_pubsub_topic.enforcement}"
    policy = subscription["dead_letter_policy"][0]
    assert policy["dead_letter_topic"] == "${google_pubsub_topic.dead_letters.id}"
    assert resources["google_pubsub_topic", "dead_letters"]["name"] == "dead-letters"
    assert resources["google_pubsub_topic", "upload_events"]["name"] == "upload-events"


# What the jobs' service account holds, as (resource type, role, on what).
WORKER_GRANTS = {
    ("google_project_iam_member", "roles/dataflow.worker", "${var.project}"),
    ("google_project_iam_member", "roles/bigquery.jobUser", "${var.project}"),
    ("google_project_iam_member", "roles/bigquery.readSessionUser", "${var.project}"),
    # WRITER is how BigQuery names roles/bigquery.dataEditor in a dataset's access list.
    ("google_bigquery_dataset_access", "WRITER", "${google_bigquery_dataset.main.dataset_id}"),
    ("google_pubsub_topic_iam_member", "roles/pubsub.publisher", "${google_pubsub_topic.enforcement}"),
    ("google_pubsub_subscription_iam_member", "roles/pubsub.subscriber", "${google_pubsub_subscription.upload_events.name}"),
    ("google_pubsub_subscription_iam_member", "roles/pubsub.viewer", "${google_pubsub_subscription.upload_events.name}"),
    ("google_storage_bucket_iam_member", "roles/storage.objectAdmin", "${google_storage_bucket.dataflow.name}"),
    ("google_storage_bucket_iam_member", "roles/storage.objectViewer", "${var.media_bucket}"),
    ("google_artifact_registry_repository_iam_member", "roles/artifactregistry.reader", "${google_artifact_registry_repository.images.name}"),
}  # fmt: skip
# Narrowest first: a dataset access entry names its project too.
SCOPE_ATTRIBUTES = ("repository", "bucket", "subscription", "topic", "dataset_id", "project")


def worker_grants() -> set[tuple[str, str, str]]:
    grants = set()
    for (kind, _), body in terraform().resources.items():
        is_worker = body.get("member") == "${local.worker}" or body.get("user_by_email", "").startswith(
            "${google_service_account.worker."
        )
        if not is_worker:
            continue
        roles = for_each_keys(body) if body["role"] == "${each.key}" else [body["role"]]
        scope = next(body[name] for name in SCOPE_ATTRIBUTES if name in body)
        if scope.startswith("${each.value"):
            scope = body["for_each"]
        grants |= {(kind, role, scope) for role in roles}
    return grants


def test_the_service_account_holds_the_least_it_needs_where_it_needs_it():
    assert terraform().locals["worker"] == "serviceAccount:${google_service_account.worker.email}"
    assert worker_grants() == WORKER_GRANTS


def test_nobody_gets_editor_owner_or_admin_on_the_project():
    broad = re.compile(r"roles/(editor|owner|[A-Za-z.]*admin[A-Za-z.]*)$", re.IGNORECASE)
    for (kind, name), body in terraform().resources.items():
        if not kind.startswith("google_project_iam"):
            continue
        assert kind == "google_project_iam_member", f"{kind}.{name}: authoritative project IAM"
        roles = for_each_keys(body) if body["role"] == "${each.key}" else [body["role"]]
        assert roles, f"{kind}.{name}: no roles found"
        for role in roles:
            assert not broad.match(role), f"{kind}.{name} grants {role} on the project"


# --- Flex Template ----------------------------------------------------------------------------


def load_script(path: Path):
    spec = importlib.util.spec_from_file_location(f"infra_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@functools.cache
def launcher():
    return load_script(FLEX / "launch.py")


def job_flags() -> list[argparse.Action]:
    return flag_actions(job_parser("batch"))


@functools.cache
def committed_metadata() -> dict[str, Any]:
    return json.loads((FLEX / "metadata.json").read_text())


def parameters() -> dict[str, dict[str, Any]]:
    return {parameter["name"]: parameter for parameter in committed_metadata()["parameters"]}


def accepts(parameter: dict[str, Any], value: str) -> bool:
    return all(re.fullmatch(pattern, value) for pattern in parameter.get("regexes", []))


def test_metadata_json_is_what_the_generator_writes_now():
    """Stale: `python infra/flex-template/generate_metadata.py > infra/flex-template/metadata.json`."""
    command = [sys.executable, str(FLEX / "generate_metadata.py")]
    written = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert (FLEX / "metadata.json").read_text() == written


def test_one_parameter_per_flag_of_the_job():
    names = [parameter["name"] for parameter in committed_metadata()["parameters"]]
    assert len(names) == len(set(names))
    assert set(names) == {action.dest for action in job_flags()}
    for parameter in committed_metadata()["parameters"]:
        assert parameter["label"] and parameter["helpText"] and "%(" not in parameter["helpText"]


def test_choices_become_a_regex_that_takes_each_choice_and_nothing_else():
    with_choices = [action for action in job_flags() if action.choices]
    assert with_choices
    for action in with_choices:
        parameter = parameters()[action.dest]
        for choice in action.choices:
            assert accepts(parameter, str(choice)), f"{action.dest} refuses {choice}"
        assert not accepts(parameter, "something_else")
        assert not accepts(parameter, f"{action.choices[0]}x")


def test_numbers_take_numbers_only():
    numeric = [action for action in job_flags() if action.type in (int, float)]
    assert numeric
    for action in numeric:
        parameter = parameters()[action.dest]
        assert accepts(parameter, str(action.default)), f"{action.dest} refuses its default {action.default}"
        assert not accepts(parameter, "ten")
        assert accepts(parameter, "2.5") == (action.type is float)


def test_the_warehouse_is_required_because_the_job_refuses_to_run_without_it():
    assert parameters()["warehouse"]["isOptional"] is False
    assert [name for name, parameter in parameters().items() if not parameter["isOptional"]] == ["warehouse"]

    def refuse(message):
        raise ValueError(message)

    options = job_parser("batch").parse_args(["--input", "manifest.jsonl"])
    with pytest.raises(ValueError, match="--warehouse"):
        check_flags("batch", options, refuse)


def test_switches_arrive_as_true_or_false_and_reach_the_job_as_bare_flags():
    switches = [action for action in job_flags() if action.nargs == 0]
    assert switches
    flags = launcher().switches(launcher().job_parser())
    for action in switches:
        parameter = parameters()[action.dest]
        assert accepts(parameter, "true") and accepts(parameter, "false") and not accepts(parameter, "yes")
        flag = action.option_strings[0]
        on = launcher().command_line([f"{flag}=true", "--warehouse=bq://p.d", "--runner=DataflowRunner"], flags)
        assert on == [flag, "--warehouse=bq://p.d", "--runner=DataflowRunner"]
        assert getattr(job_parser("batch").parse_known_args(on)[0], action.dest) is True
        off = launcher().command_line([f"{flag}=false", "--warehouse=bq://p.d"], flags)
        assert getattr(job_parser("batch").parse_known_args(off)[0], action.dest) is False


def test_a_template_launch_runs_on_dataflow_unless_told_otherwise():
    argv = launcher().command_line(["--input=gs://b/m.jsonl", "--warehouse=bq://p.d"], set())
    assert PipelineOptions(argv).view_as(StandardOptions).runner == "DataflowRunner"
    argv = launcher().command_line(["--runner=DirectRunner", "--warehouse=bq://p.d"], set())
    assert PipelineOptions(argv).view_as(StandardOptions).runner == "DirectRunner"


# --- Dockerfiles ------------------------------------------------------------------------------


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    lines = [line for line in path.read_text().splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n\s*", " ", "\n".join(lines))
    return [
        (keyword.upper(), arguments.strip())
        for keyword, arguments in (line.strip().split(None, 1) for line in joined.splitlines() if line.strip())
    ]


def environment(path: Path) -> dict[str, str]:
    env = {}
    for keyword, arguments in instructions(path):
        if keyword == "ENV":
            env.update(word.split("=", 1) for word in shlex.split(arguments))
    return env


def copied(path: Path) -> set[str]:
    """What a Dockerfile copies from the build context (not from other images or stages)."""
    sources = set()
    for keyword, arguments in instructions(path):
        words = shlex.split(arguments)
        if keyword == "COPY" and not any(word.startswith("--from") for word in words):
            sources.update(word.rstrip("/") for word in words[:-1] if not word.startswith("--"))
    return sources


def pins() -> dict[str, str]:
    pinned = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        match = re.match(r"([A-Za-z0-9_.-]+)(\[[^\]]*\])?==(\S+)", line.strip())
        if match:
            pinned[match.group(1).lower()] = match.group(3)
    return pinned


def setup_constant(name: str):
    """A module-level constant of setup.py, read statically."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    return next(ast.literal_eval(node.value) for node in tree.body
                if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == name)  # fmt: skip


def shipped_directories() -> set[str]:
    """The packages of setup.py's serving build (what workers install), and the directories of
    its data files, read statically from setup.py."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    setup_call = next(
        node for node in ast.walk(tree) if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "setup"
    )
    keywords = {keyword.arg: keyword.value for keyword in setup_call.keywords}
    data_dirs = {element.elts[0].value for element in keywords["data_files"].elts}
    return set(setup_constant("SERVING")) | data_dirs


def test_the_packages_setup_py_ships_are_read_from_it():
    assert {"pipelines", "transforms", "enforcement", "models", "schemas", "policies"} <= shipped_directories()


@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_each_image_has_every_package_setup_py_ships(image):
    sources = copied(DOCKERFILES[image])
    missing = shipped_directories() - sources
    assert not missing, f"{DOCKERFILES[image].name} does not copy {sorted(missing)}"
    offline = set(setup_constant("OFFLINE")) & sources
    assert not offline, f"{DOCKERFILES[image].name} copies offline code {sorted(offline)}"
    assert {"requirements.txt", "setup.py"} <= sources
    runs = " ".join(arguments for keyword, arguments in instructions(DOCKERFILES[image]) if keyword == "RUN")
    assert "-r requirements.txt" in runs
    assert re.search(r"DEEPFAKE_PACKAGE=serving pip install [^&]*--no-deps \.", runs), "the serving build is installed"


@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_no_image_restates_a_pin_of_requirements_txt(image):
    runs = " ".join(arguments for keyword, arguments in instructions(DOCKERFILES[image]) if keyword == "RUN")
    restated = set(re.findall(r"([A-Za-z0-9_.-]+(?:\[[^\]]*\])?)==", runs)) - {"tensorflow[and-cuda]"}
    assert not restated, f"{DOCKERFILES[image].name} pins {sorted(restated)} beside requirements.txt"


@pytest.mark.parametrize("image", ["cpu", "gpu"])
def test_worker_images_run_the_jobs_beam_and_warm_librosa(image):
    path = DOCKERFILES[image]
    beam_images = [arguments.split()[0] for keyword, arguments in instructions(path) if keyword == "FROM"]
    beam_images = [name for name in beam_images if name.startswith(BEAM_SDK_IMAGE)]
    assert beam_images == [f"{BEAM_SDK_IMAGE}:{pins()['apache-beam']}"]
    runs = [arguments for keyword, arguments in instructions(path) if keyword == "RUN"]
    warm_up = next(i for i, run in enumerate(runs) if LIBROSA_WARM_UP in run)
    assert warm_up > next(i for i, run in enumerate(runs) if "--no-deps ." in run), "warmed after installing"
    cache = environment(path)["NUMBA_CACHE_DIR"]
    assert cache.startswith("/") and not cache.startswith("/tmp")
    assert environment(path).get("NUMBA_CPU_NAME") == "generic"


def test_gpu_image_has_cuda_tensorflow_at_the_pinned_version_and_beams_boot():
    path = DOCKERFILES["gpu"]
    steps = instructions(path)
    runs = " ".join(arguments for keyword, arguments in steps if keyword == "RUN")
    assert f"tensorflow[and-cuda]=={pins()['tensorflow']}" in runs
    assert "python3.11" in runs
    froms = [arguments.split() for keyword, arguments in steps if keyword == "FROM"]
    stages = {words[2]: words[0] for words in froms if len(words) == 3 and words[1].upper() == "AS"}
    final_base = froms[-1][0]
    assert re.fullmatch(r"nvidia/cuda:12\.[0-9.]+-cudnn[0-9]*-runtime-ubuntu22\.04", final_base)
    boot_copies = [
        shlex.split(arguments) for keyword, arguments in steps if keyword == "COPY" and "--from" in arguments
    ]
    assert len(boot_copies) == 1
    stage = boot_copies[0][0].removeprefix("--from=")
    assert stages[stage].startswith(BEAM_SDK_IMAGE)
    assert boot_copies[0][1:] == [BEAM_BOOT, BEAM_BOOT]
    assert steps[-1] == ("ENTRYPOINT", '["/opt/apache/beam/boot"]')


def test_flex_template_image_runs_the_launcher_with_the_setup_file():
    path = DOCKERFILES["launcher"]
    steps = instructions(path)
    assert steps[0] == ("FROM", "gcr.io/dataflow-templates-base/python311-template-launcher-base")
    workdir = next(arguments for keyword, arguments in steps if keyword == "ARG" and arguments.startswith("WORKDIR="))
    workdir = workdir.split("=", 1)[1]
    env = {name: value.replace("${WORKDIR}", workdir) for name, value in environment(path).items()}
    launch = Path(env["FLEX_TEMPLATE_PYTHON_PY_FILE"]).relative_to(workdir)
    assert (ROOT / launch).resolve() == FLEX / "launch.py"
    assert str(launch) in copied(path)
    assert env["FLEX_TEMPLATE_PYTHON_SETUP_FILE"] == f"{workdir}/setup.py"
    launch_source = (FLEX / "launch.py").read_text()
    assert "from pipelines.batch import run" in launch_source


def _help_of(argv: list[str], capsys) -> str:
    """What `deepfake ARGV --help` prints."""
    from tools.cli import main

    with pytest.raises(SystemExit):
        main([*argv, "--help"])
    return capsys.readouterr().out


def test_the_retraining_build_runs_commands_and_flags_the_code_has(capsys):
    """infra/retrain.cloudbuild.yaml: each `deepfake` step names a command (and a verb) that
    exists, with flags it or Beam takes; the Vertex job's `deepfake train` likewise."""
    import yaml

    from pipelines.options import beam_parser

    build = yaml.safe_load((INFRA / "retrain.cloudbuild.yaml").read_text())
    beam_flags = {flag for action in beam_parser()._actions for flag in action.option_strings}
    commands = [step["args"] for step in build["steps"] if step.get("entrypoint") == "deepfake"]
    (train,) = [step["args"][1] for step in build["steps"] if step["id"] == "train"]
    vertex = re.search(r"--args=(\S+)", train).group(1).split(",")
    commands.append(vertex)
    assert [c[0] for c in commands] == ["training-set", "release", "train"]
    for argv in commands:
        named = argv[:2] if argv[0] == "release" else argv[:1]
        own = set(re.findall(r"--\w+", _help_of(named, capsys)))
        for flag in (a for a in argv if a.startswith("--")):
            assert flag in own or flag in beam_flags, f"deepfake {' '.join(named)} takes no {flag}"
    substitutions = set(build["substitutions"])
    used = set(re.findall(r"\$\{(_\w+)\}", (INFRA / "retrain.cloudbuild.yaml").read_text()))
    assert used == substitutions  # MUST_MATCH: every one declared, none left over
