"""Model releases: a challenger against the champion, a promotion gate written as data,
promotion and rollback of the registry's current choice, every step a `model_releases` row.

    deepfake release gate --challenger DIR --model_dir REGISTRY --set NAME=KIND:WAREHOUSE:LABELS ... \
        --warehouse W --out DIR [--gate policies/promotion_gate.yaml] [--challenger_policy P]
    deepfake release shadow --challenger DIR --model_dir REGISTRY --until 2026-12-14 --approved_by NAME --warehouse W
    deepfake release promote --release DIR/release.json --model_dir REGISTRY --approved_by NAME --warehouse W
    deepfake release rollback --to RELEASE_ID --model_dir REGISTRY --approved_by NAME --warehouse W
    deepfake release history --model_dir REGISTRY

`gate` scores the challenger (a training's output directory) and the champion (what the registry
serves now) on the same sets with the project's own metrics, judges every criterion of the gate
file (`policies/promotion_gate.yaml`) and writes `release.json` and a `model_releases` row: the
figures, each criterion's verdict and the release's verdict. `shadow` puts a challenger beside
the champion until a date (`<model_dir>/shadow.json`): every job launched from the registry
before then scores the uploads made before then with it too, into `shadow_scores` only, which
`gate --shadow_warehouse` reads. `promote` refuses a release the gate
failed; it copies the challenger's versions into the registry and writes the registry's current
choice (`<model_dir>/current.json`), which the jobs serve from then on (a streaming job's model
refresh within `--model_refresh_s`). Every release promoted is kept under
`<model_dir>/releases/`, the set served before the first promotion included, so `rollback` to any
of them is one command. TensorFlow Model Analysis does not install beside this TensorFlow (its
newest release pins an older one), so the sliced figures are the project's own
(`training.evaluate`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from schemas.config import refuse_unknown
from schemas.version import PIPELINE_VERSION

SET_KINDS = ("held_out", "traffic", "curated")
CONTENT_FIGURES = ("visual", "audio")
GATED_FIGURES = (*CONTENT_FIGURES, "metadata", "fused")
RELEASES_DIR = "releases"


class GateError(ValueError):
    """A gate file that cannot be applied; the message names the field."""


def _fraction(document: Mapping[str, Any], field: str, where: str) -> float:
    value = document.get(field)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise GateError(f"{where}{field}: expected a number in [0, 1], got {value!r}")
    return float(value)


@dataclasses.dataclass(frozen=True)
class ShadowCriteria:
    min_items: int
    min_agreement: float
    max_mean_score_shift: float


@dataclasses.dataclass(frozen=True)
class Gate:
    """The promotion gate file (see policies/promotion_gate.yaml)."""

    gate_id: str
    version: str
    held_out_max_auc_drop: float
    max_removal_fpr_on_real: float
    modality_auc_tolerance: Mapping[str, float]
    shadow: ShadowCriteria
    # An AUC on fewer real or synthetic items than this is reported, not judged.
    min_items_per_class: int

    @classmethod
    def parse(cls, document: Any) -> Gate:
        """Raises GateError naming the field."""
        if not isinstance(document, Mapping):
            raise GateError("expected a mapping")
        fields = ("gate_id", "version", "held_out_max_auc_drop", "max_removal_fpr_on_real",
                  "modality_auc_tolerance", "min_items_per_class", "shadow")  # fmt: skip
        refuse_unknown(document, fields, "", GateError)
        for field in fields:
            if field not in document:
                raise GateError(f"{field}: required")
        for field in ("gate_id", "version"):
            if not isinstance(document[field], str) or not document[field].strip():
                raise GateError(f"{field}: expected a name")
        tolerance = document["modality_auc_tolerance"]
        if not isinstance(tolerance, Mapping):
            raise GateError("modality_auc_tolerance: expected a mapping of " + ", ".join(GATED_FIGURES))
        refuse_unknown(tolerance, GATED_FIGURES, "modality_auc_tolerance.", GateError)
        shadow = document["shadow"]
        if not isinstance(shadow, Mapping):
            raise GateError("shadow: expected a mapping with min_items, min_agreement, max_mean_score_shift")
        refuse_unknown(shadow, ("min_items", "min_agreement", "max_mean_score_shift"), "shadow.", GateError)
        items, per_class = shadow.get("min_items"), document["min_items_per_class"]
        for field, value in (("shadow.min_items", items), ("min_items_per_class", per_class)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise GateError(f"{field}: expected a whole number of at least 1, got {value!r}")
        return cls(
            document["gate_id"], document["version"],
            _fraction(document, "held_out_max_auc_drop", ""), _fraction(document, "max_removal_fpr_on_real", ""),
            {name: _fraction(tolerance, name, "modality_auc_tolerance.") for name in tolerance},
            ShadowCriteria(items, _fraction(shadow, "min_agreement", "shadow."),
                           _fraction(shadow, "max_mean_score_shift", "shadow.")), per_class,
        )  # fmt: skip


def load_gate(path: str) -> Gate:
    try:
        return Gate.parse(yaml.safe_load(Path(path).read_text()))
    except GateError as exc:
        raise GateError(f"{path}: {exc}") from None


@dataclasses.dataclass(frozen=True)
class EvaluationSet:
    """Items both model sets are scored on: labels over a warehouse's features."""

    name: str
    kind: str  # SET_KINDS
    warehouse: str
    labels: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> EvaluationSet:
        """`NAME=KIND:WAREHOUSE:LABELS[,LABELS...]`."""
        name, sep, rest = text.partition("=")
        parts = rest.split(":", 2)
        if not sep or not name or len(parts) != 3 or not all(parts):
            raise ValueError(f"expected NAME=KIND:WAREHOUSE:LABELS[,LABELS], got {text!r}")
        kind, warehouse, labels = parts
        if kind not in SET_KINDS:
            raise ValueError(f"{name}: kind {kind!r} is not one of {', '.join(SET_KINDS)}")
        return cls(name, kind, warehouse, tuple(labels.split(",")))


def set_figures(model_dir: str, evaluation: EvaluationSet, thresholds: Mapping[str, float],
                bigquery_endpoint: str | None = None) -> dict[str, Any]:  # fmt: skip
    """A model set's figures on one evaluation set: each modality's and the fused score's AUC,
    the content score's AUC, and the removal tier's false-positive rate on real items at
    `thresholds`. A held-out set scores every item; the others their test split."""
    from models.examples import load_labels
    from models.handlers import LoadedSignature
    from models.registry import resolve_model
    from schemas.vocabulary import MODALITIES
    from training.evaluate import evaluate_items, evaluate_modality
    from training.train import read_features

    examples, _ = read_features(evaluation.warehouse, bigquery_endpoint)
    labels = load_labels(list(evaluation.labels))
    if evaluation.kind == "held_out":
        labels = {cid: {**row, "split": "test"} for cid, row in labels.items()}
    cards = {m: resolve_model(model_dir, m) for m in MODALITIES}
    loaded = {m: LoadedSignature(card.path) for m, card in cards.items() if card is not None}
    seed = int(next(iter(cards.values())).card.get("training_data", {}).get("seed", 7))
    tests = {m: evaluate_modality(m, examples, labels, cards[m], loaded[m], seed)["test"] for m in loaded}
    items = evaluate_items(examples, labels, model_dir, loaded, seed, {}, dict(thresholds))
    removal = items["at_policy"]["content"].get("remove") or {}
    tests.update(fused=items["test"], content=items["content"])
    return {
        "auc": {m: tests[m].get("auc") for m in (*loaded, "fused")},
        "content_auc": items["content"]["auc"],
        # [real, synthetic] items behind each AUC
        "classes": {m: [t.get("count", 0) - t.get("positives", 0), t.get("positives", 0)] for m, t in tests.items()},
        "items": items["test"]["count"],
        "real_items": items["at_policy"]["content"]["real"],
        "removal_fpr_on_real": removal.get("fpr"),
        "versions": model_versions(model_dir),
    }


def model_versions(model_dir: str) -> dict[str, str]:
    """The versions `model_dir` serves (each modality's and the fusion's)."""
    from models.registry import resolve_model_set

    return resolve_model_set(model_dir).versions()


@dataclasses.dataclass(frozen=True)
class Criterion:
    """One line of the gate's verdict."""

    name: str
    subject: str
    challenger: float | None
    champion: float | None
    limit: float
    passed: bool
    detail: str
    judged: bool = True  # False: too few items of a class to judge (reported, not counted in the verdict)


def judge(gate: Gate, figures: Mapping[str, Mapping[str, Any]], kinds: Mapping[str, str],
          shadow: Mapping[str, Any] | None = None) -> list[Criterion]:  # fmt: skip
    """Every criterion of `gate` on the figures per set ({set: {"champion": ..., "challenger":
    ...}}, `kinds`: set -> kind). A figure a set cannot give (no real items, a modality absent)
    is not judged; a held-out AUC the challenger cannot give where the champion could fails."""
    criteria = []
    for name, pair in figures.items():
        champion, challenger = pair["champion"], pair["challenger"]
        if kinds[name] == "held_out":
            # what removes (content), what reviews (fused) and each content detector, so a gain in
            # one cannot hide a loss in the other (a visual release must not cost the audio set). The
            # metadata detector is judged on traffic and curated sets: a held-out file's metadata
            # is as made elsewhere, or stripped on purpose in the evasion sets.
            scores = [("content", challenger["content_auc"], champion["content_auc"])]
            scores += [(f, challenger["auc"].get(f), champion["auc"].get(f)) for f in ("fused", *CONTENT_FIGURES)]
            for score, ours, theirs in scores:
                if ours is None and theirs is None:
                    continue
                passed = ours is not None and (theirs is None or ours >= theirs - gate.held_out_max_auc_drop)
                criteria.append(_auc_criterion(gate, "held_out_auc", name, kinds[name], score, challenger, ours, theirs,
                                               gate.held_out_max_auc_drop, passed,
                                               f"{score} AUC {_text(ours)} against the champion's {_text(theirs)} "
                                               f"(at most {gate.held_out_max_auc_drop} lower)"))  # fmt: skip
        else:
            for modality, tolerance in gate.modality_auc_tolerance.items():
                ours, theirs = challenger["auc"].get(modality), champion["auc"].get(modality)
                if ours is None and theirs is None:
                    continue
                passed = ours is not None and (theirs is None or ours >= theirs - tolerance)
                criteria.append(_auc_criterion(gate, "modality_auc", name, kinds[name], modality, challenger, ours, theirs,
                                               tolerance, passed, f"{modality} AUC {_text(ours)} against "
                                               f"{_text(theirs)} (at most {tolerance} lower)"))  # fmt: skip
        fpr = challenger["removal_fpr_on_real"]
        if challenger["real_items"] and fpr is not None:
            criteria.append(Criterion("removal_fpr", name, fpr, champion["removal_fpr_on_real"],
                                      gate.max_removal_fpr_on_real, fpr <= gate.max_removal_fpr_on_real,
                                      f"{fpr:.4%} of {challenger['real_items']} real items removed "
                                      f"(budget {gate.max_removal_fpr_on_real:.2%})"))  # fmt: skip
    if shadow is not None:
        criteria += _shadow_criteria(gate.shadow, shadow)
    return criteria


def _auc_criterion(gate: Gate, criterion: str, name: str, kind: str, figure: str, challenger: Mapping[str, Any],
                   ours: float | None, theirs: float | None, limit: float, passed: bool, detail: str) -> Criterion:  # fmt: skip
    """An AUC's criterion; on traffic (whose labels follow what reviewers were sent) not judged
    when a class has fewer items than the gate asks for. The fixed held-out and curated sets are
    chosen, and judged whatever their size."""
    real, synthetic = challenger.get("classes", {}).get(figure, (None, None))
    judged = kind != "traffic" or real is None or min(real, synthetic) >= gate.min_items_per_class
    if not judged:
        detail += f"; not judged: {real} real and {synthetic} synthetic items, fewer than {gate.min_items_per_class}"
    return Criterion(criterion, f"{name}:{figure}", ours, theirs, limit, passed, detail, judged)


def verdict_of(criteria: Sequence[Criterion]) -> str:
    """pass when every judged criterion passed (and at least one was judged)."""
    judged = [c for c in criteria if c.judged]
    return "pass" if judged and all(c.passed for c in judged) else "fail"


def _shadow_criteria(rule: ShadowCriteria, shadow: Mapping[str, Any]) -> list[Criterion]:
    items = shadow["items"]
    enough = items >= rule.min_items
    agreement, shift = shadow.get("agreement"), shadow.get("mean_score_shift")
    return [
        Criterion("shadow_items", "shadow", items, None, rule.min_items, enough,
                  f"{items} uploads scored by both (at least {rule.min_items})"),
        Criterion("shadow_agreement", "shadow", agreement, None, rule.min_agreement,
                  enough and agreement is not None and agreement >= rule.min_agreement,
                  f"the same action tier on {_text(agreement)} of them (at least {rule.min_agreement})"),
        Criterion("shadow_score_shift", "shadow", shift, None, rule.max_mean_score_shift,
                  enough and shift is not None and abs(shift) <= rule.max_mean_score_shift,
                  f"mean content score moved by {_text(shift)} (at most {rule.max_mean_score_shift})"),
    ]  # fmt: skip


def _text(value: float | None) -> str:
    if value is None:
        return "n/a"
    return str(value) if isinstance(value, int) else f"{value:.4f}"


def release_id(versions: Mapping[str, str], at: dt.datetime) -> str:
    digest = hashlib.sha256(json.dumps(dict(sorted(versions.items()))).encode()).hexdigest()[:8]
    return f"{at.strftime('%Y%m%dT%H%M%SZ')}-{digest}"


@dataclasses.dataclass(frozen=True)
class ReleaseEvent:
    """One row of `model_releases`: a release gated, promoted or rolled back to."""

    release_id: str
    event: str  # gated | shadowed | promoted | rolled_back
    versions: Mapping[str, str]
    champion_versions: Mapping[str, str]
    verdict: str | None  # pass | fail (gated); the gate's verdict of a promoted release
    criteria: Sequence[Mapping[str, Any]]
    figures: Mapping[str, Any]
    gate: str | None  # gate_id@version
    approved_by: str | None
    model_dir: str
    at: dt.datetime

    def to_row(self) -> dict[str, Any]:
        return {
            "release_id": self.release_id, "event": self.event, "versions": json.dumps(dict(self.versions)),
            "champion_versions": json.dumps(dict(self.champion_versions)), "verdict": self.verdict,
            "criteria": json.dumps(list(self.criteria)), "figures": json.dumps(self.figures, default=str),
            "gate": self.gate, "approved_by": self.approved_by, "model_dir": self.model_dir, "happened_at": self.at,
            "pipeline_version": PIPELINE_VERSION,
        }  # fmt: skip


def record(warehouse: str, events: Sequence[ReleaseEvent], bigquery_endpoint: str | None = None) -> None:
    """Appends `events` to the warehouse's `model_releases` table."""
    from warehouse.sinks import open_tool_sink

    open_tool_sink(warehouse, "release", bigquery_endpoint).write_records("model_releases", list(events))


def publish(challenger_dir: str, model_dir: str, versions: Mapping[str, str]) -> None:
    """Copies the challenger's versions into the registry beside the others (never over one)."""
    from models import storage

    for name, version in versions.items():
        target = storage.join(model_dir, name, version)
        if not storage.exists(target):
            storage.copy_tree(storage.join(challenger_dir, name, version), target)


def choose(model_dir: str, release: Mapping[str, Any], approved_by: str, at: dt.datetime) -> None:
    """Writes the registry's current choice: the release's versions, who approved them, when."""
    from models import storage
    from models.registry import CURRENT_FILE

    choice = {"release_id": release["release_id"], "versions": release["versions"], "approved_by": approved_by,
              "chosen_at": at.isoformat(), "verdict": release.get("verdict")}  # fmt: skip
    storage.write_bytes(storage.join(model_dir, CURRENT_FILE), json.dumps(choice, indent=2).encode())


def keep(model_dir: str, release: Mapping[str, Any]) -> None:
    """Keeps a release record under `<model_dir>/releases/`, what rollback reads."""
    from models import storage

    path = storage.join(model_dir, RELEASES_DIR, f"{release['release_id']}.json")
    if not storage.exists(path):
        storage.write_bytes(path, json.dumps(release, indent=2, default=str).encode())


def kept(model_dir: str, release: str) -> dict[str, Any]:
    from models import storage

    path = storage.join(model_dir, RELEASES_DIR, f"{release}.json")
    if not storage.exists(path):
        raise FileNotFoundError(f"no release {release!r} under {storage.join(model_dir, RELEASES_DIR)}")
    return json.loads(storage.read_bytes(path))


def _serving_release(model_dir: str, at: dt.datetime) -> dict[str, Any]:
    """The release the registry serves now: its current choice, else its newest versions as the
    baseline release (so a rollback can return to what served before the first promotion)."""
    from models.registry import current_choice

    choice = current_choice(model_dir)
    if choice is not None:
        return kept(model_dir, choice["release_id"])
    versions = model_versions(model_dir)
    return {"release_id": f"baseline-{release_id(versions, at)}", "versions": versions, "verdict": None}


def shadow_on_traffic(warehouse: str, versions: Mapping[str, str], bigquery_endpoint: str | None = None) -> dict:
    """What the challenger (`versions`) did in shadow on a warehouse's traffic (`shadow_scores`,
    `--shadow_model_dir` of the jobs) against what the served models did to the same uploads:
    the items, the share given the same action, the mean content score's shift."""
    from enforcement.shadow import shadow_figures, versions_text
    from enforcement.simulation import sql_literal
    from warehouse.reader import open_reader

    rows = (
        open_reader(warehouse, bigquery_endpoint)
        .query(
            "SELECT s.action AS shadow_action, d.action AS live_action, s.content_score AS shadow_content, "
            "m.content_score AS live_content FROM shadow_scores AS s "
            "JOIN media_scores AS m ON m.content_id = s.content_id "
            "JOIN enforcement_decisions AS d ON d.content_id = s.content_id AND d.supersedes IS NULL "
            f"WHERE s.model_versions = {sql_literal(versions_text(dict(versions)))}"
        )
        .to_pylist()
    )
    return shadow_figures(rows)


REPORT_BEGIN, REPORT_END = (
    "<!-- release section: written by deepfake release gate -->",
    "<!-- end of release section -->",
)


def release_section(release: Mapping[str, Any]) -> str:
    """The model report's release section: the verdict, each criterion, and the champion's and
    the challenger's figures set by set (Markdown)."""
    lines = [REPORT_BEGIN, f"## Release {release['release_id']}: {release['verdict'].upper()} under {release['gate']}", "",
             f"Gated {release['gated_at'][:19].replace('T', ' ')} UTC: challenger "
             + ", ".join(f"{k} {v}" for k, v in sorted(release["versions"].items()))
             + "; champion " + ", ".join(f"{k} {v}" for k, v in sorted(release["champion_versions"].items()))
             + f"; thresholds of `{release['policy']}`.", "",
             "| criterion | on | challenger | champion | limit | verdict |", "| --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for c in release["criteria"]:
        verdict = "not judged (too few items)" if not c.get("judged", True) else "pass" if c["passed"] else "**fail**"
        lines.append(f"| {c['name']} | {c['subject']} | {_text(c['challenger'])} | {_text(c['champion'])} | "
                     f"{c['limit']} | {verdict} |")  # fmt: skip
    lines += ["", "| set (kind) | figure | champion | challenger |", "| --- | --- | --- | --- |"]
    kinds = {s["name"]: s["kind"] for s in release["sets"]}
    for name, pair in release["figures"].items():
        champion, challenger = pair["champion"], pair["challenger"]
        rows = [(f"{m} AUC", champion["auc"].get(m), challenger["auc"].get(m)) for m in GATED_FIGURES]
        rows += [("content AUC", champion["content_auc"], challenger["content_auc"]),
                 ("removal FPR on real items", champion["removal_fpr_on_real"], challenger["removal_fpr_on_real"])]  # fmt: skip
        for figure, theirs, ours in rows:
            lines.append(f"| {name} ({kinds.get(name, '?')}, {challenger['items']} items) | {figure} | "
                         f"{_text(theirs)} | {_text(ours)} |")  # fmt: skip
    lines += ["", f"Made by `deepfake release gate` with the sets {', '.join(sorted(kinds))}; the release record "
                  "is its `release.json` and the `model_releases` table.", REPORT_END]  # fmt: skip
    return "\n".join(lines) + "\n"


def write_section(report: Path, section: str) -> None:
    """Puts `section` into the report in place of the one the last gate wrote (after the
    report's title when it has none yet)."""
    text = report.read_text() if report.exists() else ""
    if REPORT_BEGIN in text and REPORT_END in text:
        before, rest = text.split(REPORT_BEGIN, 1)
        text = before + section.rstrip("\n") + rest.split(REPORT_END, 1)[1]
    else:
        title, _, body = text.partition("\n\n")
        text = f"{title}\n\n{section}\n{body}" if body else f"{text}\n\n{section}"
    report.write_text(text)


def gate_command(args, parser) -> int:
    from training.thresholds import policy_thresholds

    try:
        gate = load_gate(args.gate)
        sets = [EvaluationSet.parse(text) for text in args.set]
    except (OSError, ValueError) as exc:
        parser.error(str(exc))
    at = dt.datetime.now(dt.UTC)
    thresholds = {"champion": policy_thresholds(args.policy),
                  "challenger": policy_thresholds(args.challenger_policy or args.policy)}  # fmt: skip
    dirs = {"champion": args.model_dir, "challenger": args.challenger}
    figures = {s.name: {side: set_figures(dirs[side], s, thresholds[side], args.bigquery_endpoint) for side in dirs}
               for s in sets}  # fmt: skip
    versions, champion = model_versions(args.challenger), model_versions(args.model_dir)
    shadow = (
        shadow_on_traffic(args.shadow_warehouse, versions, args.bigquery_endpoint) if args.shadow_warehouse else None
    )
    criteria = judge(gate, figures, {s.name: s.kind for s in sets}, shadow)
    verdict = verdict_of(criteria)
    release = {
        "release_id": release_id(versions, at), "verdict": verdict, "versions": versions,
        "champion_versions": champion, "challenger_dir": args.challenger, "gate": f"{gate.gate_id}@{gate.version}",
        "criteria": [dataclasses.asdict(c) for c in criteria], "figures": figures,
        "sets": [dataclasses.asdict(s) for s in sets], "shadow": shadow, "policy": args.challenger_policy or args.policy,
        "gated_at": at.isoformat(),
    }  # fmt: skip
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "release.json").write_text(json.dumps(release, indent=2, default=str) + "\n")
    if args.report:
        write_section(Path(args.report), release_section(release))
    record(args.warehouse, [ReleaseEvent(release["release_id"], "gated", versions, champion, verdict,
                                         release["criteria"], figures, release["gate"], None, args.model_dir, at)],
           args.bigquery_endpoint)  # fmt: skip
    for c in criteria:
        print(
            f"  {'SKIP' if not c.judged else 'PASS' if c.passed else 'FAIL'}  {c.name:<18} {c.subject:<24} {c.detail}"
        )
    print(f"release {release['release_id']}: {verdict.upper()} under {release['gate']} -> {out / 'release.json'}")
    return 0 if verdict == "pass" else 1


def shadow_command(args, parser) -> int:
    from models import storage
    from models.registry import SHADOW_FILE, current_choice

    if not storage.exists(args.challenger):
        parser.error(f"--challenger: no such model directory {args.challenger}")
    at = dt.datetime.now(dt.UTC)
    versions = model_versions(args.challenger)
    if not versions:
        parser.error(f"--challenger: no model versions found under {args.challenger}")
    champion = _serving_release(args.model_dir, at)
    if current_choice(args.model_dir) is None:  # pin what serves, or the newer versions copied in would serve
        keep(args.model_dir, champion)
        choose(args.model_dir, champion, args.approved_by, at)
    publish(args.challenger, args.model_dir, versions)
    shadow = {"release_id": release_id(versions, at), "versions": versions, "challenger_dir": args.challenger,
              "since": at.isoformat(), "until": args.until.isoformat(), "approved_by": args.approved_by}  # fmt: skip
    storage.write_bytes(storage.join(args.model_dir, SHADOW_FILE), json.dumps(shadow, indent=2).encode())
    record(args.warehouse, [ReleaseEvent(shadow["release_id"], "shadowed", versions, champion["versions"], None, [],
                                         {"shadow_until": shadow["until"]}, None, args.approved_by, args.model_dir,
                                         at)], args.bigquery_endpoint)  # fmt: skip
    state = "in shadow" if args.until > at else "out of shadow (its date has passed)"
    print(f"{shadow['release_id']} {state} until {args.until.isoformat()}: jobs launched from {args.model_dir} "
          "score the uploads made before then with it into shadow_scores")  # fmt: skip
    return 0


def _moment(text: str) -> dt.datetime:
    """A day or an ISO moment, as UTC (a day means its start)."""
    import argparse

    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a day (2026-12-14) or an ISO moment, got {text!r}") from None
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


def promote_command(args, parser) -> int:
    release = json.loads(Path(args.release).read_text())
    if release.get("verdict") != "pass":
        parser.error(f"--release: {release.get('release_id')} failed its gate; it cannot be promoted")
    at = dt.datetime.now(dt.UTC)
    previous = _serving_release(args.model_dir, at)
    keep(args.model_dir, previous)
    publish(release["challenger_dir"], args.model_dir, release["versions"])
    keep(args.model_dir, release)
    choose(args.model_dir, release, args.approved_by, at)
    record(args.warehouse, [ReleaseEvent(release["release_id"], "promoted", release["versions"],
                                         previous["versions"], release["verdict"], release["criteria"],
                                         release["figures"], release["gate"], args.approved_by, args.model_dir, at)],
           args.bigquery_endpoint)  # fmt: skip
    print(f"promoted {release['release_id']} (was {previous['release_id']}), approved by {args.approved_by}")
    return 0


def rollback_command(args, parser) -> int:
    try:
        release = kept(args.model_dir, args.to)
    except FileNotFoundError as exc:
        parser.error(f"--to: {exc}")
    at = dt.datetime.now(dt.UTC)
    previous = _serving_release(args.model_dir, at)
    choose(args.model_dir, release, args.approved_by, at)
    record(args.warehouse, [ReleaseEvent(release["release_id"], "rolled_back", release["versions"],
                                         previous["versions"], release.get("verdict"), release.get("criteria", []),
                                         release.get("figures", {}), release.get("gate"), args.approved_by,
                                         args.model_dir, at)], args.bigquery_endpoint)  # fmt: skip
    print(f"rolled back to {release['release_id']} (from {previous['release_id']}), approved by {args.approved_by}")
    return 0


def history_command(args, parser) -> int:
    from apache_beam.io.filesystems import FileSystems

    from models import storage
    from models.registry import current_choice

    choice = current_choice(args.model_dir) or {}
    (found,) = FileSystems.match([storage.join(args.model_dir, RELEASES_DIR, "*.json")])
    for path in sorted(m.path for m in found.metadata_list):
        release = json.loads(storage.read_bytes(path))
        mark = "*" if release["release_id"] == choice.get("release_id") else " "
        print(
            f"{mark} {release['release_id']}  {release.get('verdict') or '-':<4}  "
            + ", ".join(f"{k}={v}" for k, v in sorted(release["versions"].items()))
        )
    return 0


def run(argv: list[str] | None = None) -> int:
    from pipelines.options import StrictParser, add_flags

    parser = StrictParser(prog="deepfake release", description=__doc__.split("\n\n")[0])
    verbs = parser.add_subparsers(dest="verb", required=True)
    commands = {}
    for verb, text, command in (
        ("gate", "Score the challenger and the champion on the same sets and judge the gate.", gate_command),
        ("shadow", "Score uploads with a challenger beside the champion until a date.", shadow_command),
        ("promote", "Serve a release that passed its gate.", promote_command),
        ("rollback", "Serve an earlier release again.", rollback_command),
        ("history", "The releases kept in a registry, the one served marked.", history_command),
    ):
        sub = verbs.add_parser(verb, help=text, description=text)
        sub.error = parser.error  # one line, as every command's errors
        sub.add_argument("--model_dir", required=True, help="The registry: what the jobs serve from.")
        commands[verb] = (sub, command)
    gate, shadow, promote, rollback = (commands[v][0] for v in ("gate", "shadow", "promote", "rollback"))
    for sub in (gate, shadow, promote, rollback):
        add_flags(sub, "warehouse", "bigquery_endpoint", required=("warehouse",))
    add_flags(gate, "policy")
    for sub in (gate, shadow):
        sub.add_argument("--challenger", required=True, help="The challenger's model directory (a training's --out).")
    shadow.add_argument("--until", required=True, type=_moment,
                        help="End of the shadow period (UTC day or ISO moment): uploads made before it are scored.")  # fmt: skip
    gate.add_argument("--set", required=True, action="append", help="NAME=KIND:WAREHOUSE:LABELS[,LABELS] (repeat).")
    gate.add_argument("--gate", default="policies/promotion_gate.yaml", help="The gate file (default %(default)s).")
    gate.add_argument("--challenger_policy", default=None,
                      help="The policy the challenger ships with (its thresholds); default --policy.")  # fmt: skip
    gate.add_argument("--shadow_warehouse", default=None,
                      help="A warehouse where the jobs scored traffic with the challenger in shadow "
                      "(--shadow_model_dir): the gate's shadow criteria judge it.")  # fmt: skip
    gate.add_argument("--out", required=True, help="Directory for release.json.")
    gate.add_argument("--report", default=None,
                      help="A model report (Markdown) whose release section the gate writes (reports/MODEL_REPORT.md).")  # fmt: skip
    promote.add_argument("--release", required=True, help="release.json of a gate that passed.")
    rollback.add_argument("--to", required=True, help="A release id kept under <model_dir>/releases/.")
    for sub in (shadow, promote, rollback):
        sub.add_argument("--approved_by", required=True, help="Who approved it (a pseudonymous id).")
    args = parser.parse_args(argv)
    return commands[args.verb][1](args, commands[args.verb][0])


if __name__ == "__main__":
    sys.exit(run())
