"""The DSA transparency template (Implementing Regulation (EU) 2024/2835, Annex I), its eleven
CSV parts filled from this system's decisions, notices, appeals, reviews and suspensions, and
the provider file's answers to the qualitative part.

The template has no row codes of its own: a row is named by its part and its category code
(`TOTAL`, `STATEMENT_CATEGORY_*`, `KEYWORD_*`, parts 3 to 6) or its Section / Indicator /
Scope labels (parts 7 to 10), a figure by its column header. Those names, and every official
row in its order, are kept exactly as the Commission's files have them, trailing spaces
included; the placeholders stand for one row per Member State or official language.

What goes in a cell follows Annex II: a count the system made is a number (0 where something
could have happened and did not); a figure that cannot apply here (a restriction never
imposed, a category the policy never files on its own initiative, a legal ground) or that is
kept outside this system (orders, out-of-court disputes, moderators, recipients) is blank, with
the reason in the contextual information and in `blank_cells.csv`. Every count carries the
items it counts; a count under the minimum is withheld (blank, never 0), and disclosure control
over all the parts at once (`enforcement.disclosure`) withholds whatever would let it be worked
out.

Counting rules (each also said in the cell's contextual information where it matters):

* a measure is a restrictive decision (label, reduce reach, remove, account suspension) made in
  the period; a reviewer's verdict that confirms the automated action it reviewed is not a
  second measure;
* own initiative is detection by this system's classifiers (no notice), and every suspension;
  a notice is an upload someone reported, received in the period, counted once under the
  illegality its notifier alleged ("not specified" when the notice said none);
* complaints are appeals decided in the period; their median time runs from the complaint's
  submission (the appealed decision's time where the input gave none) to the outcome;
* an automated means is what took a decision: the media-matching bank, the visual or audio
  classifier, or the metadata and context signals.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import functools
import io
import json
import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from enforcement.disclosure import Figure, complementary_suppression
from enforcement.dsa_categories import (
    CATEGORIES,
    ILLEGAL_CATEGORIES,
    KEYWORD_OTHER,
    KEYWORDS_OF,
    NAMES,
    NAMES_HEADER,
    NOT_SPECIFIED_NOTICE,
    NOT_SPECIFIED_ORDER,
    TOTAL,
    category_rows,
)
from enforcement.transparency import hours_between
from schemas.config import refuse_unknown
from schemas.vocabulary import DECISION_VISIBILITY, NOTICE_SOURCES, SUSPEND_ACTION

FILLED, WITHHELD, NOT_RECORDED, NOT_APPLICABLE = "filled", "withheld", "not_recorded", "not_applicable"
EMPTY = "empty"  # a provider's answer not yet written (part 11)
ALL = "All"
HOSTING = "Only for providers of hosting services, including online platforms"
PLATFORMS = "Only for providers of online platforms"
VLOPS = "Only for VLOPs"
VLOPS_VLOSES = "Only for VLOPs and VLOSEs"
ILLEGAL_GROUND = "DECISION_GROUND_ILLEGAL_CONTENT"  # any other ground is the terms and conditions
MEASURE_ACTIONS = (*DECISION_VISIBILITY, SUSPEND_ACTION)

# The restriction column each action of this system fills (sheets 5 and 6); the template's
# other restrictions (disabling, age or interaction restriction, monetary, provision of the
# service, account termination) are never imposed here, so they stay blank (Annex II).
RESTRICTION_COLUMN = {
    "remove": "Visibility restriction Removal",
    "reduce_reach": "Visibility restriction Demoted",
    "label": "Visibility restriction Labelled ",
    SUSPEND_ACTION: "Account restriction Suspension",
}
RESTRICTIONS = (
    "Visibility restriction Removal", "Visibility restriction Disable", "Visibility restriction Demoted",
    "Visibility restriction Age restricted", "Visibility restriction Interaction restricted",
    "Visibility restriction Labelled ", "Visibility restriction Other", "Monetary restriction Suspension",
    "Monetary restriction Termination", "Monetary restriction Other", "Provision of the service Suspension",
    "Provision of the service Termination", "Account restriction Suspension", "Account restriction Termination",
)  # fmt: skip
OWN_MEASURES = "Number of measures taken at the provider's own initiative "
OWN_AUTOMATED = "Number of measures taken after detection with solely automated means "
ORDER_COLUMNS = (
    "Number of orders to act against illegal content received",
    "Number of specific items of information included in the total number of orders to act against illegal content",
    "Median time to inform the authority of the receipt of the order to act against illegal content",
    "Median time to give effect to the order to act against illegal content",
    "Number of orders to provide information",
    "Median time to inform the authority of the receipt of the order to provide information",
    "Median time to give effect to the order to provide information",
)
NOTICES, NOTICES_TF = "Number of notices received ", "Number of notices received from Trusted flaggers"
ITEMS = "Number of specific items of information included in the total number of notices"
ITEMS_TF = ("Number of specific items of information included in the total number of notices by Trusted Flaggers "
            "(Trusted Flagger notices)")  # fmt: skip
MEDIAN, MEDIAN_TF = "Median time to take action", "Median time to take action (Trusted Flagger notices)"
LAW, LAW_TF = ("Number of actions taken on the basis of the law",
               "Number of actions taken on the basis of the law (Trusted Flagger notices)")  # fmt: skip
TC = "Number of actions taken on the basis of the terms and conditions of the service"
TC_TF = f"{TC} (Trusted Flagger notices)"
NOTICE_COLUMNS = (NOTICES, NOTICES_TF, ITEMS, ITEMS_TF, MEDIAN, MEDIAN_TF, LAW, LAW_TF, TC, TC_TF)

COMPLAINTS = "Internal complaints mechanism"
SUBMITTED = "Number of complaints submitted to the internal-complaints mechanism"
NEWLY_IMPOSED = "Number of restrictions newly imposed as a result of an internal complaint"
ON_VISIBILITY = "Complaint regarding a decision to remove or disable access to or restrict visibility of information"
ON_PROVISION = "Complaint regarding a decision to suspend or terminate the provision of the service"
ON_ACCOUNT = "Complaint regarding a decision to suspend or terminate an account "
ON_MONETISING = "Complaint regarding a decision to restrict the ability to monetise information"
ON_NOTICE = "Complaint regarding a decision not to take action on a notice submitted in accordance with Article 16"
ON_NOTICE_TF = ("Complaint regarding a decision not to take action on a notice submitted by a Trusted Flagger in "
                "accordance with Article 16")  # fmt: skip
TOTAL_NUMBER, UPHELD, PARTIALLY, REVERSED = (
    "Total number",
    "Decisions upheld",
    "Decisions partially reversed",
    "Decisions reversed",
)
MEDIAN_TIME, OMITTED = "Median time", "Decision omitted"
ODS = "Out-of-court dispute settlement bodies"
ODS_DISPUTES = "Number of disputes submitted to out-of-court dispute settlement bodies"
SUSPENSIONS = "Suspensions imposed on repeated offenders"
SUSPENDED_ILLEGAL = "Number of suspensions enacted for the provision of manifestly illegal content "
SUSPENDED_NOTICES = "Number of suspensions enacted for the provision of manifestly unfounded notices"
SUSPENDED_COMPLAINTS = "Number of suspensions enacted for the provision of manifestly unfounded complaints"

AUTOMATED_MEANS = "Use of automated means for content moderation"
SOLELY, NOT_SOLELY = (
    "Number of measures solely taken by automated means ",
    "Number of measures not taken by automated means",
)
NOTICES_SOLELY = "Number of notices solely processed by automated means "
NOTICES_NOT = "Number of notices not processed by automated means"
ACCURACY = "Accuracy of the automated means - Accuracy"
PRECISION = "Accuracy of the automated means - Precision"
RECALL = "Accuracy of the automated means - Recall"
OWN_INITIATIVE, NAM_TOTAL, NAM_TF = "Own-initiative ", "NAM Total", "NAM Trusted Flagger"

NOT_RECORDED_HERE = "Not recorded by this system"
# Why sheet 5 and sheet 4's law columns are blank: no decision here can rest on a legal ground.
ON_TERMS_ONLY = ("not applicable: this system decides on the terms and conditions (sheet 6), never on a legal ground, "
                 "so it takes no action on the basis of the law")  # fmt: skip
# (file stem, the columns naming a row, the value columns) of the wide sheets.
WIDE = {
    "3_member_states_orders": ("Category of illegal content", ORDER_COLUMNS, "Contextual information on"),
    "4_notices": ("Category of illegal content", NOTICE_COLUMNS, "Contextual information on"),
    "5_own_initiative_illegal": ("Category of illegal content", (OWN_MEASURES, OWN_AUTOMATED, *RESTRICTIONS),
                                 "Contextual Information on"),
    "6_own_initiative_TC": ("Category of incompatibility with the provider's terms and conditions",
                            (OWN_MEASURES, OWN_AUTOMATED, *RESTRICTIONS), "Contextual Information on"),
}  # fmt: skip
LONG_CONTEXT = {"7_appeals_and_recidivism": "Contextual Information", "8_automated_means": "Contextual Information",
                "9_human_resources": "Contextual information", "10_AMAR": None}  # fmt: skip
SUMMARY, NAMES_PART, QUALITATIVE_PART = "1_summary", "2_categories_names", "11_qualitative"
# The parts by the names of the Commission's CSV files (the XLSX calls part 1 `1_report_identification`).
SHEETS = (SUMMARY, NAMES_PART, *WIDE, *LONG_CONTEXT, QUALITATIVE_PART)
BLANK_CELLS = "blank_cells.csv"  # written beside the parts: every blank figure, its status and reason

# The template's placeholder rows ("AT, […], SE", "bg, [...], sv") stand for these, in the
# template's order: Member States by Eurostat code in the alphabetical order of their English
# names (the only order that starts at AT and ends at SE; Greece is EL), official languages by
# their two-letter code.
MEMBER_STATES = ("AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "EL", "HU", "IE", "IT", "LV",
                 "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE")  # fmt: skip
LANGUAGES = ("bg", "cs", "da", "de", "el", "en", "es", "et", "fi", "fr", "ga", "hr", "hu", "it", "lt", "lv", "mt",
             "nl", "pl", "pt", "ro", "sk", "sl", "sv")  # fmt: skip
# Part 3 repeats its rows per Member State without this keyword (as the Commission's file does).
_NOT_PER_MEMBER_STATE = "KEYWORD_CHILD_SEXUAL_ABUSE_MATERIAL_DEEPFAKE"

# Part 11's indicators as the template spells them, by the key the provider file answers them under.
QUALITATIVE_INDICATORS = {
    "own_initiative_summary": (ALL, "Summary of the content moderation engaged in at the providers\u2019 own initiative"),
    "own_initiative_information": (ALL, "Meaningful and comprehensible information regarding content moderation "
                                        "engaged in at the providers' own initiative"),
    "automated_means": (ALL, "Qualitative description of the automated means"),
    "accuracy_and_error_rate": (ALL, "Qualitative description of indicators of accuracy and possible rate of error "
                                     "of automated means"),
    "automated_means_purposes": (ALL, "Specification of the precise purposes to apply automated means"),
    "automated_means_safeguards": (ALL, "Safeguards applied to the use of automated means"),
    "governance": (VLOPS, "High-level description of the content moderation governance structure"),
    "moderator_qualifications": (VLOPS, "Qualifications of the human resources dedicated to content moderation"),
    "moderator_training": (VLOPS, "Training given to human resources dedicated to content moderation"),
    "moderator_support": (VLOPS, "Support given to human resources dedicated to content moderation "),
    "moderator_methodology": (VLOPS, "Methodology used to compute the number of human resources dedicated to "
                                     "content moderation\u00a0\u00a0"),
}  # fmt: skip
QUALITATIVE_KEYS = tuple(QUALITATIVE_INDICATORS)
QUALITATIVE_MAX_CHARS = 5000  # Annex II, part 11


@dataclasses.dataclass(frozen=True)
class Cell:
    """One figure of the template: its value (None when blank), why it is what it is."""

    value: int | float | str | None
    status: str
    context: str = ""
    # What a count counts (item ids: "m:" measures, "n:" notices, "a:" appeals, "r:" reviews),
    # and a share's (hits, base): what disclosure control reasons over; never written.
    items: frozenset[str] | None = dataclasses.field(default=None, compare=False, repr=False)
    share_of: tuple[frozenset[str], frozenset[str]] | None = dataclasses.field(default=None, compare=False, repr=False)

    def text(self) -> str:
        if self.value is None:
            return ""
        if isinstance(self.value, float):  # values are rounded where they are made (_median, _share)
            return f"{self.value:.6f}".rstrip("0").rstrip(".")
        return str(self.value)

    def contextual(self) -> str:
        return f"withheld: {self.context}" if self.status == WITHHELD else self.context


def blank(reason: str, status: str = NOT_RECORDED) -> Cell:
    return Cell(None, status, reason)


@dataclasses.dataclass
class Row:
    """A row: its name (category code and "Other" description, or Section, Indicator and Scope),
    whom it applies to, and its cells by column."""

    key: tuple[str, ...]
    applicability: str
    cells: dict[str, Cell]


@dataclasses.dataclass(frozen=True)
class Provider:
    """The identification sheet's facts, from a small provider file."""

    name: str
    service: str
    publication_date: dt.date
    previous_report_date: dt.date | None = None
    qualitative: Mapping[str, str] = dataclasses.field(default_factory=dict)  # part 11, by QUALITATIVE key

    @classmethod
    def from_record(cls, record: Mapping[str, Any], today: dt.date) -> Provider:
        """Raises ValueError naming the field."""
        if not isinstance(record, Mapping):
            raise ValueError("expected a mapping with provider_name and service_name")
        fields = {}
        for name in ("provider_name", "service_name"):
            value = record.get(name)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"{name}: required")
            fields[name] = value.strip()
        dates = {}
        for name in ("publication_date", "previous_report_date"):
            value = record.get(name)
            if value in (None, ""):
                continue
            try:
                dates[name] = value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))
            except ValueError:
                raise ValueError(f"{name}: expected YYYY-MM-DD, got {value!r}") from None
        refuse_unknown(record, ("provider_name", "service_name", "publication_date", "previous_report_date",
                                "qualitative"), "")  # fmt: skip
        answers = record.get("qualitative") or {}
        if not isinstance(answers, Mapping):
            raise ValueError(f"qualitative: expected a mapping of {', '.join(QUALITATIVE_KEYS)} to text")
        for key, text in answers.items():
            if key not in QUALITATIVE_KEYS:
                raise ValueError(f"qualitative: unknown answer {key!r}; expected one of {', '.join(QUALITATIVE_KEYS)}")
            if text is not None and not isinstance(text, str):
                raise ValueError(f"qualitative.{key}: expected text")
            if text and len(text.strip()) > QUALITATIVE_MAX_CHARS:
                raise ValueError(f"qualitative.{key}: {len(text.strip())} characters; Annex II allows "
                                 f"{QUALITATIVE_MAX_CHARS}")  # fmt: skip
        return cls(fields["provider_name"], fields["service_name"], dates.get("publication_date", today),
                   dates.get("previous_report_date"),
                   {key: text.strip() for key, text in answers.items() if text and text.strip()})  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Period:
    start: dt.date
    end: dt.date  # inclusive

    @classmethod
    def parse(cls, text: str) -> Period:
        """`YYYY-MM-DD/YYYY-MM-DD`, the template's own notation; raises ValueError."""
        try:
            start, end = (dt.date.fromisoformat(part) for part in text.split("/"))
        except ValueError:
            raise ValueError(f"expected YYYY-MM-DD/YYYY-MM-DD, got {text!r}") from None
        if end < start:
            raise ValueError(f"{text}: the period ends before it starts")
        return cls(start, end)

    @classmethod
    def calendar_year(cls, day: dt.date) -> Period:
        """The reporting period Annex II sets from 2026: the calendar year of `day`."""
        return cls(dt.date(day.year, 1, 1), dt.date(day.year, 12, 31))

    def coverage(self, first: dt.date | None, last: dt.date | None, today: dt.date) -> str:
        """What the figures cover when it is less than the period ("" when the whole of it)."""
        notes = []
        if first is None:
            notes.append("no decision, appeal or review falls in the period")
        elif first > self.start:
            notes.append(f"the records this report reads begin on {first.isoformat()}")
        if today <= self.end:
            notes.append(f"the period is not over: figures up to {min(today, self.end).isoformat()}")
        return f"Partial period: {'; '.join(notes)}." if notes else ""

    def __contains__(self, moment: dt.datetime | None) -> bool:
        return moment is not None and self.start <= moment.astimezone(dt.UTC).date() <= self.end

    def __str__(self) -> str:
        return f"{self.start.isoformat()}/{self.end.isoformat()}"


@dataclasses.dataclass(frozen=True)
class Filed:
    """A decision as the template counts it: the decision row and what its statement filed."""

    row: Mapping[str, Any]
    dsa_category: str | None
    keyword: str | None
    ground: str | None

    def __getitem__(self, name: str) -> Any:
        return self.row.get(name)


def _describe(policy_category: str | None) -> str:
    return (policy_category or "synthetic media").replace("_", " ")


def file_decisions(decisions: Iterable[Mapping[str, Any]], statements: Iterable[Mapping[str, Any]]) -> dict[str, Filed]:
    """Decisions by id with the category, first keyword and ground their statement of reasons filed."""
    filed = {}
    for statement in statements:
        document = statement["statement"]
        document = json.loads(document) if isinstance(document, str) else document
        keywords = document.get("category_specification") or [KEYWORD_OTHER]
        filed[statement["decision_id"]] = (document.get("category"), keywords[0], document.get("decision_ground"))
    return {row["decision_id"]: Filed(row, *filed.get(row["decision_id"], (None, None, None))) for row in decisions}


class Counts:
    """Items per (row key, column): their ids (what a count counts) and values (what a median
    is taken over), so medians and counts come from the same items."""

    def __init__(self):
        self.ids: dict[tuple[tuple[str, ...], str], set[str]] = defaultdict(set)
        self._values: dict[tuple[tuple[str, ...], str], list[float]] = defaultdict(list)

    def add(self, keys: Iterable[tuple[str, ...]], column: str, item: str, value: float = 1.0) -> None:
        for key in keys:
            self.ids[key, column].add(item)
            self._values[key, column].append(value)

    def items(self, key: tuple[str, ...], column: str) -> set[str]:
        return self.ids.get((key, column), set())

    def values(self, key: tuple[str, ...], column: str) -> list[float]:
        return self._values.get((key, column), [])


def _category_keys(filed: Filed, categories: tuple[str, ...], fallback: str | None) -> list[tuple[str, str]]:
    """The rows a filed decision counts in: TOTAL, its category and its sub-category (an
    "Other" row named by the policy category). A category outside `categories` counts under
    `fallback` (no sub-category), or in TOTAL only when there is none."""
    keys = [(TOTAL, "")]
    category = filed.dsa_category
    if category not in categories:
        return keys + ([(fallback, "")] if fallback else [])
    keyword = filed.keyword if filed.keyword in KEYWORDS_OF[category] else KEYWORD_OTHER
    other = _describe(filed["category"]) if keyword == KEYWORD_OTHER else ""
    return [*keys, (category, ""), (f"{category}>{keyword}", other)]


@dataclasses.dataclass
class Inputs:
    """What the template is computed from (one row per id, as the warehouse's views hold them)."""

    decisions: dict[str, Filed]
    appeals: list[Mapping[str, Any]]
    reviews: list[Mapping[str, Any]]
    period: Period
    # The first and last day in the period the warehouse holds a decision, appeal or review
    # (None: no records in it).
    first_day: dt.date | None
    last_day: dt.date | None
    # Which automated means took each decision (decision id -> AUTOMATED_MEANS_NAMES value):
    # part 8's accuracy per type of content moderation system.
    means: Mapping[str, str]
    # The template rows this system's policy can file (a category, or "category>keyword"), each
    # with the policy categories it files there.
    filed_as: Mapping[str, frozenset[str]]

    @property
    def reachable(self) -> frozenset[str]:
        return frozenset(self.filed_as)

    @functools.cached_property
    def measures(self) -> list[Filed]:
        """The period's measures: restrictive decisions, a confirming verdict not counted twice
        (computed once, read by every part that counts them)."""
        return [d for d in self.decisions.values() if d["action"] in MEASURE_ACTIONS and d["decided_at"] in self.period
                and not _confirms(d, self.decisions)]  # fmt: skip

    @functools.cached_property
    def notices(self) -> dict[str, Notice]:
        """Each reported upload once, by content id, whenever it was received: its first report
        (source, time, alleged category) and its standing decision."""
        by_content: dict[str, list[Filed]] = defaultdict(list)
        for decision in self.decisions.values():
            if decision["content_id"] and decision["action"] != SUSPEND_ACTION:
                by_content[decision["content_id"]].append(decision)
        found = {}
        for content_id, decisions in by_content.items():
            decisions.sort(key=lambda d: (d["decided_at"], d["decision_id"]))
            reported = [d for d in decisions if d["detection_method"] in NOTICE_SOURCES]
            if reported:
                first = reported[0]
                found[content_id] = Notice(first["detection_method"], first["notified_at"] or first["uploaded_at"],
                                           decisions[-1], first["notice_category"], first["notice_keyword"])  # fmt: skip
        return found


def policy_rows(categories: Mapping[str, tuple[str, tuple[str, ...]]]) -> dict[str, frozenset[str]]:
    """The template rows a policy's categories (name -> DSA category, keywords) can file, each
    with the policy categories filed there: `Inputs.filed_as`."""
    rows: dict[str, set[str]] = defaultdict(set)
    for name, (category, keywords) in categories.items():
        for row in (category, *(f"{category}>{keyword}" for keyword in keywords or (KEYWORD_OTHER,))):
            rows[row].add(name)
    return {row: frozenset(names) for row, names in rows.items()}


def _confirms(decision: Filed, decisions: Mapping[str, Filed]) -> bool:
    """A verdict that keeps the action it reviewed: nothing new was imposed."""
    reviewed = decisions.get(decision["supersedes"]) if decision["supersedes"] else None
    return reviewed is not None and reviewed["action"] == decision["action"]


@dataclasses.dataclass(frozen=True)
class Notice:
    source: str
    received_at: dt.datetime
    final: Filed  # the item's standing decision (a verdict supersedes the automated one)
    category: str | None = None  # the illegality the notifier alleged (Annex II files the notice under it)
    keyword: str | None = None

    def keys(self) -> list[tuple[str, str]]:
        """The part-4 rows the notice counts in: TOTAL, its alleged category and keyword ("Other",
        described, when the notifier named the category alone), or "not specified"."""
        if self.category not in ILLEGAL_CATEGORIES:
            return [(TOTAL, ""), (NOT_SPECIFIED_NOTICE, "")]
        if self.keyword in KEYWORDS_OF[self.category] and self.keyword != KEYWORD_OTHER:
            return [(TOTAL, ""), (self.category, ""), (f"{self.category}>{self.keyword}", "")]
        return [(TOTAL, ""), (self.category, ""), (f"{self.category}>{KEYWORD_OTHER}", UNNAMED_KEYWORD)]


UNNAMED_KEYWORD = "the notifier named the category, no sub-category"


def _measure_id(measure: Filed) -> str:
    return f"m:{measure['decision_id']}"


def _notice_id(content_id: str) -> str:
    return f"n:{content_id}"


def _appeal_id(appeal: Mapping[str, Any]) -> str:
    return f"a:{appeal['appeal_id']}"


MATCHING, VISUAL, AUDIO, CONTEXT = ("media-matching bank", "visual classifier", "audio classifier",
                                   "metadata and context signals")  # fmt: skip
AUTOMATED_MEANS_NAMES = (MATCHING, VISUAL, AUDIO, CONTEXT)


def means_of(decision: Mapping[str, Any], scores: Mapping[str, Any] | None, matching_rules: frozenset[str]) -> str:
    """The automated means behind a decision: the media-matching bank when its rule acts on a
    match; else the content classifier (visual or audio) whose score was the higher of those
    that did not abstain; else the metadata and context signals."""
    if decision.get("rule_id") in matching_rules:
        return MATCHING
    voted = {name: scores[f"{modality}_score"] for name, modality in ((VISUAL, "visual"), (AUDIO, "audio"))
             if scores and scores.get(f"{modality}_score") is not None and not scores.get(f"{modality}_abstained")}  # fmt: skip
    return max(voted, key=voted.get) if voted else CONTEXT


def _own_initiative(measure: Filed) -> bool:
    """On detection by this system's classifiers, or a suspension (the repeat-offender policy
    acts on the account, not on a notice); any other measure was taken on a notice."""
    return measure["detection_method"] == "automated" or measure["action"] == SUSPEND_ACTION


def own_initiative_measures(inputs: Inputs) -> list[Filed]:
    """The period's measures at the provider's own initiative: sheets 5-6 and sheet 8's
    own-initiative rows count these."""
    return [m for m in inputs.measures if _own_initiative(m)]


def notice_measures(inputs: Inputs, reported: Mapping[str, Notice]) -> list[tuple[Notice, Filed]]:
    """The period's other measures, each with the notice it was taken on (`reported`, from
    `notices`): the one definition sheet 4 (actions taken on notices) and sheet 8 (all measures
    less own-initiative) count."""
    # A measure on a report always has a content id, so it has its notice; a row without one
    # still counts, as its own notice, rather than being dropped from sheet 4.
    return [(reported.get(m["content_id"]) or Notice(m["detection_method"], m["notified_at"] or m["uploaded_at"], m,
                                                     m["notice_category"], m["notice_keyword"]), m)
            for m in inputs.measures if not _own_initiative(m)]  # fmt: skip


def _significant(value: float, digits: int = 3) -> float:
    """`value` to `digits` significant figures: a real 7 seconds is 0.00194 hours, never 0."""
    return float(f"{value:.{digits}g}")


def _median(values: list[float], k: int, what: str) -> Cell:
    """A median time in hours (Annex II's unit), to three significant figures."""
    if not values:
        return blank(f"no {what} in the period", NOT_APPLICABLE)
    if len(values) < k:
        return Cell(None, WITHHELD, f"median of fewer than {k} {what}")
    return Cell(_significant(statistics.median(values)), FILLED, f"hours, to three significant figures; median of "
                                                                 f"{what}")  # fmt: skip


def _share(hits: Iterable[str], base: Iterable[str], k: int, of: str, that: str) -> Cell:
    """A share in [0, 1] (Annex II), four decimals: the share of `of` (the base, a plural noun)
    `that` (the hits). Its counts are not said beside it: disclosure control weighs what the
    share and its base give away together."""
    hits, base = frozenset(hits), frozenset(base)
    if not base:
        return blank(f"no {of} in the period", NOT_APPLICABLE)
    if len(base) < k:
        return Cell(None, WITHHELD, f"share of fewer than {k} {of}", share_of=(hits, base))
    share = len(hits) / len(base)
    value = round(share, 4) if round(share, 4) or not hits else _significant(share)
    return Cell(value, FILLED, f"share of {of} {that}", share_of=(hits, base))


def _count(items: Iterable[str], k: int, context: str = "") -> Cell:
    """A count of `items` (ids), withheld when under `k` (never written as 0)."""
    items = frozenset(items)
    if 0 < len(items) < k:
        return Cell(None, WITHHELD, f"fewer than {k}", items=items)
    return Cell(len(items), FILLED, context, items=items)


# A wide sheet's column: how to fill a counted row's cell (row key -> Cell), or why it is blank.
ColumnRule = str | Callable[[tuple[str, ...], str], Cell]


def _wide_rows(rows: list[tuple[str, str | None]], columns: Mapping[str, ColumnRule], reachable: frozenset[str],
               others: Mapping[str, set[str]], applicability: str) -> list[Row]:  # fmt: skip
    """A wide sheet's rows in the template's order. A row of a category this system cannot file
    is blank; an "Other" row repeats once per description it was counted under."""
    out = []
    for code, parent in rows:
        name = f"{parent}>{code}" if parent else code
        descriptions = sorted(others.get(name, ())) if code == KEYWORD_OTHER else []
        counted = code == TOTAL or name in reachable
        for description in descriptions or [""]:
            cells = {}
            for column, rule in columns.items():
                if isinstance(rule, str):
                    cells[column] = blank(rule, NOT_APPLICABLE)
                elif not counted:
                    cells[column] = blank("not applicable: this system's policy never files this category",
                                          NOT_APPLICABLE)  # fmt: skip
                else:
                    cells[column] = rule((name, description), column)
            out.append(Row((code, description), applicability, cells))
    return out


def _counted(counts: Counts, k: int):
    def cell(key: tuple[str, ...], column: str) -> Cell:
        return _count(counts.items(key, column), k)

    return cell


def _noted(keys: list[tuple[str, str]], others: dict[str, set[str]]) -> list[tuple[str, str]]:
    for name, description in keys:
        if description:
            others[name].add(description)
    return keys


def own_initiative_sheets(inputs: Inputs, k: int) -> tuple[list[Row], list[Row]]:
    """Sheets 5 (illegal content) and 6 (terms and conditions): measures on detection by this
    system's classifiers, by category and type of restriction."""
    counts, others = Counts(), defaultdict(set)
    grounds = set()
    for measure in own_initiative_measures(inputs):  # a measure taken on a notice is on sheet 4
        grounds.add(measure.ground)
        keys = _noted(_category_keys(measure, tuple(code for code, _ in CATEGORIES), None), others)
        item = _measure_id(measure)
        counts.add(keys, OWN_MEASURES, item)
        if measure["automated_decision"] == "fully":  # detected and decided with no person involved
            counts.add(keys, OWN_AUTOMATED, item)
        counts.add(keys, RESTRICTION_COLUMN[measure["action"]], item)
    cell = _counted(counts, k)
    never = "this system never imposes this restriction"
    columns = {OWN_MEASURES: cell, OWN_AUTOMATED: cell,
               **{c: cell if c in RESTRICTION_COLUMN.values() else never for c in RESTRICTIONS}}  # fmt: skip
    tc = _wide_rows(category_rows(tuple(code for code, _ in CATEGORIES)), columns, inputs.reachable, others, ALL)
    if ILLEGAL_GROUND in grounds:  # not with the shipped policy: every statement cites the terms and conditions
        raise ValueError("measures on a legal ground: sheet 5 is not split from sheet 6 by this system")
    illegal = _wide_rows(category_rows(ILLEGAL_CATEGORIES), dict.fromkeys(columns, ON_TERMS_ONLY), inputs.reachable,
                         {}, ALL)  # fmt: skip
    return illegal, tc


def notices_sheet(inputs: Inputs, k: int) -> list[Row]:
    """Sheet 4: notices (user reports under Art. 16, trusted flaggers) by the illegality the
    notifier alleged, and the actions taken on them. A notice can allege any category, so every
    row is counted (0 where none came)."""
    counts, others = Counts(), defaultdict(set)

    def keys_of(notice: Notice) -> list[tuple[str, str]]:
        return _noted(notice.keys(), others)

    def columns_of(notice: Notice) -> list[tuple[str, str, str, str]]:
        groups = [(NOTICES, ITEMS, MEDIAN, TC)]
        if notice.source == "trusted_flagger":
            groups.append((NOTICES_TF, ITEMS_TF, MEDIAN_TF, TC_TF))
        return groups

    reported = inputs.notices
    for content_id, notice in reported.items():
        if notice.received_at in inputs.period:
            keys = keys_of(notice)
            for received, items, *_ in columns_of(notice):
                counts.add(keys, received, _notice_id(content_id))
                counts.add(keys, items, _notice_id(content_id))  # a notice names one upload
    for notice, action in notice_measures(inputs, reported):  # actions taken in the period, whenever notified
        if action.ground == ILLEGAL_GROUND:  # not with the shipped policy (see own_initiative_sheets)
            raise ValueError("an action on a legal ground: sheet 4's law columns are not counted by this system")
        keys = keys_of(notice)
        for *_, median, terms in columns_of(notice):
            counts.add(keys, median, _measure_id(action), hours_between(notice.received_at, action["decided_at"]))
            counts.add(keys, terms, _measure_id(action))

    def median(key: tuple[str, ...], column: str) -> Cell:
        return _median(counts.values(key, column), k, "actions taken on notices (hours from the notice)")

    cell = _counted(counts, k)
    columns: dict[str, ColumnRule] = {c: median if c in (MEDIAN, MEDIAN_TF) else cell for c in NOTICE_COLUMNS}
    columns[LAW] = columns[LAW_TF] = ON_TERMS_ONLY
    rows = category_rows(ILLEGAL_CATEGORIES, (NOT_SPECIFIED_NOTICE,))
    every_row = frozenset(f"{parent}>{code}" if parent else code for code, parent in rows)
    return _wide_rows(rows, columns, every_row, others, HOSTING)


def orders_sheet() -> list[Row]:
    """Sheet 3: orders from Member States' authorities reach the platform's legal team, not this
    system. The rows are the template's: TOTAL over all Member States, then one block per Member
    State (Annex II keeps only the blocks of the Member States an order came from; this system
    cannot know which, so it writes them all, blank, for the legal team to fill or delete)."""
    reason = f"{NOT_RECORDED_HERE}: orders from authorities (Art. 9 and 10) are handled outside it"
    per_state = (f"{reason}; Annex II keeps a Member State's rows only when an order came from it, so the legal "
                 "team deletes the others before filing")  # fmt: skip
    codes = [code for code, _ in category_rows(ILLEGAL_CATEGORIES, (NOT_SPECIFIED_ORDER,))]
    rows = [Row((code, "", TOTAL), ALL, {c: blank(reason) for c in ORDER_COLUMNS}) for code in codes]
    for state in MEMBER_STATES:
        rows += [Row((code, "", state), ALL, {c: blank(per_state) for c in ORDER_COLUMNS})
                 for code in codes if code != _NOT_PER_MEMBER_STATE]  # fmt: skip
    return rows


def _long(section: str, indicator: str, scope: str, applicability: str, cell: Cell) -> Row:
    return Row((section, indicator, scope), applicability, {"Value": cell})


def appeals_sheet(inputs: Inputs, k: int) -> list[Row]:
    """Sheet 7: complaints (appeals), out-of-court disputes and suspensions (Art. 20, 21, 23)."""
    decided = [a for a in inputs.appeals if a["appeal_decided_at"] in inputs.period]
    by_kind: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for appeal in decided:
        decision = inputs.decisions.get(appeal["decision_id"])
        action = decision["action"] if decision is not None else appeal["action"]
        method = decision["detection_method"] if decision is not None else None
        if action in DECISION_VISIBILITY:
            by_kind[ON_VISIBILITY].append(appeal)
        elif action == SUSPEND_ACTION:
            by_kind[ON_ACCOUNT].append(appeal)
        elif action == "none" and method == "user_report":
            by_kind[ON_NOTICE].append(appeal)
        elif action == "none" and method == "trusted_flagger":
            by_kind[ON_NOTICE_TF].append(appeal)
    no_partial = "appeal outcomes here are upheld or reversed; none is partial"

    def block(indicator: str, appeals: list[Mapping[str, Any]], total_applies: str) -> list[Row]:
        # Annex II: from the complaint's submission to its outcome; a complaint recorded without
        # a submission time counts from the decision it appeals (never later than submission).
        hours = [hours_between(a.get("submitted_at") or a["decided_at"], a["appeal_decided_at"]) for a in appeals]
        measured = "complaints (hours from submission to outcome)"
        if any(a.get("submitted_at") is None for a in appeals):
            measured = ("complaints (hours from submission to outcome; where the appeal input gave no submission "
                        "time, from the appealed decision)")  # fmt: skip
        cells = [
            (TOTAL_NUMBER, total_applies, _count(map(_appeal_id, appeals), k, "appeals decided in the period")),
            (UPHELD, PLATFORMS, _count([_appeal_id(a) for a in appeals if a["outcome"] == "upheld"], k)),
            (PARTIALLY, PLATFORMS, blank(no_partial, NOT_APPLICABLE)),
            (REVERSED, PLATFORMS, _count([_appeal_id(a) for a in appeals if a["outcome"] == "overturned"], k)),
            (MEDIAN_TIME, PLATFORMS, _median(hours, k, measured)),
        ]
        return [_long(COMPLAINTS, indicator, scope, applies, cell) for scope, applies, cell in cells]

    rows = block(SUBMITTED, decided, ALL)
    rows.append(_long(COMPLAINTS, SUBMITTED, OMITTED, PLATFORMS, blank("every appeal recorded here has an outcome",
                                                                        NOT_APPLICABLE)))  # fmt: skip
    rows.append(_long(COMPLAINTS, NEWLY_IMPOSED, TOTAL_NUMBER, PLATFORMS,
                      blank("an appeal here can keep or reverse a decision, never impose a new restriction",
                            NOT_APPLICABLE)))  # fmt: skip
    never = "this system never suspends the service or restricts monetisation, so no complaint concerns it"
    for indicator in (ON_VISIBILITY, ON_PROVISION, ON_ACCOUNT, ON_MONETISING, ON_NOTICE, ON_NOTICE_TF):
        if indicator in (ON_PROVISION, ON_MONETISING):
            rows += [_long(COMPLAINTS, indicator, scope, PLATFORMS, blank(never, NOT_APPLICABLE))
                     for scope in (TOTAL_NUMBER, UPHELD, PARTIALLY, REVERSED, MEDIAN_TIME)]  # fmt: skip
        else:
            rows += block(indicator, by_kind[indicator], PLATFORMS)
    ods = f"{NOT_RECORDED_HERE}: out-of-court dispute settlement (Art. 21) is handled outside it"
    for scope in (
        TOTAL_NUMBER,
        UPHELD,
        PARTIALLY,
        REVERSED,
        MEDIAN_TIME,
        OMITTED,
        "Percentage of outcomes implemented",
    ):
        rows.append(_long(ODS, ODS_DISPUTES, scope, PLATFORMS, blank(ods)))
    suspended = [_measure_id(m) for m in inputs.measures if m["action"] == SUSPEND_ACTION]
    rows.append(_long(SUSPENSIONS, SUSPENDED_ILLEGAL, TOTAL_NUMBER, PLATFORMS, _count(
        suspended, k, "accounts suspended when their strikes for synthetic media reached the policy's threshold")))  # fmt: skip
    for indicator in (SUSPENDED_NOTICES, SUSPENDED_COMPLAINTS):
        rows.append(_long(SUSPENSIONS, indicator, TOTAL_NUMBER, PLATFORMS,
                          blank(f"{NOT_RECORDED_HERE}: notices and complaints are not scored for abuse", NOT_RECORDED)))  # fmt: skip
    return rows


def automated_means_sheet(inputs: Inputs, k: int) -> list[Row]:
    """Sheet 8: measures and notices handled solely by automated means, and the automated means'
    accuracy as it can be measured in production: appeals and blind reviews. Rows in the
    template's order: per scope, its two counts then accuracy, precision and recall; then the
    per-language rows very large platforms file."""
    period_measures = inputs.measures
    own = [m for m in period_measures if _own_initiative(m)]
    period_notices = {c: n for c, n in inputs.notices.items() if n.received_at in inputs.period}
    appealed = [
        a for a in inputs.appeals if a["appeal_decided_at"] in inputs.period and a["automated_decision"] == "fully"
    ]
    upheld = [_appeal_id(a) for a in appealed if a["outcome"] == "upheld"]
    blind = [r for r in inputs.reviews if r["blind"] and r["reviewed_at"] in inputs.period and r["machine_action"]
             in MEASURE_ACTIONS]  # fmt: skip
    agreed = [f"r:{r['review_id']}" for r in blind if r["agrees"]]
    recall = blank("not measurable from production decisions (it needs reviews of items not acted on); the model "
                   "report gives recall on the labelled evaluation set", NOT_RECORDED)  # fmt: skip
    per_scope = blank("measured over all automated decisions (Total number), not per scope", NOT_RECORDED)
    accuracy = {
        ACCURACY: _share(
            upheld,
            map(_appeal_id, appealed),
            k,
            "appeals against solely automated decisions",
            "that were upheld (the decision stood when a person looked again)",
        ),
        PRECISION: _share(
            agreed,
            [f"r:{r['review_id']}" for r in blind],
            k,
            "automated actions reviewed blind in the quality sample",
            "that the reviewer agreed with (a random sample, so an unbiased estimate)",
        ),
        RECALL: recall,
    }
    rows = []
    for scope, applies, items in ((TOTAL_NUMBER, ALL, period_measures), (OWN_INITIATIVE, ALL, own)):
        if scope == OWN_INITIATIVE:  # after the total's accuracy rows: one set per automated means
            rows += _per_means_rows(inputs, appealed, blind, k)
        solely = [_measure_id(m) for m in items if m["automated_decision"] == "fully"]
        others = [_measure_id(m) for m in items if m["automated_decision"] != "fully"]
        rows.append(_long(AUTOMATED_MEANS, SOLELY, scope, applies, _count(solely, k)))
        rows.append(_long(AUTOMATED_MEANS, NOT_SOLELY, scope, applies, _count(others, k,
                                                                                "decided or confirmed by a person")))  # fmt: skip
        for indicator, cell in accuracy.items():
            rows.append(_long(AUTOMATED_MEANS, indicator, scope, applies, cell if scope == TOTAL_NUMBER else per_scope))
    trusted = {c: n for c, n in period_notices.items() if n.source == "trusted_flagger"}
    for scope, applies, items in ((NAM_TOTAL, HOSTING, period_notices), (NAM_TF, PLATFORMS, trusted)):
        solely = {_notice_id(c) for c, n in items.items() if n.final["automated_decision"] == "fully"}
        rows.append(_long(AUTOMATED_MEANS, NOTICES_SOLELY, scope, applies, _count(solely, k)))
        rows.append(
            _long(AUTOMATED_MEANS, NOTICES_NOT, scope, applies, _count(set(map(_notice_id, items)) - solely, k))
        )
        rows += [_long(AUTOMATED_MEANS, indicator, scope, applies, per_scope) for indicator in accuracy]
    vlops = blank(f"{NOT_RECORDED_HERE}: per-language figures are for very large online platforms only")
    rows += [_long(AUTOMATED_MEANS, indicator, language, VLOPS, vlops)
             for indicator in (SOLELY, NOT_SOLELY, *accuracy) for language in LANGUAGES]  # fmt: skip
    return rows


def _per_means_rows(inputs: Inputs, appealed: list[Mapping[str, Any]], blind: list[Mapping[str, Any]],
                    k: int) -> list[Row]:  # fmt: skip
    """Annex II: accuracy, precision and recall of automatically removed content per type of
    content moderation system, in rows of their own (Scope "Total number - <means>")."""
    rows = []
    for means in AUTOMATED_MEANS_NAMES:
        appeals = [a for a in appealed if inputs.means.get(a["decision_id"]) == means]
        removals = [r for r in blind if r["machine_action"] == "remove" and inputs.means.get(r["decision_id"]) == means]
        cells = {
            ACCURACY: _share([_appeal_id(a) for a in appeals if a["outcome"] == "upheld"], map(_appeal_id, appeals), k,
                             f"appeals against solely automated decisions of the {means}",
                             "that were upheld (the decision stood when a person looked again)"),
            PRECISION: _share([f"r:{r['review_id']}" for r in removals if r["agrees"]],
                              [f"r:{r['review_id']}" for r in removals], k,
                              f"removals by the {means} reviewed blind in the quality sample",
                              "that the reviewer agreed with (a random sample, so an unbiased estimate)"),
            RECALL: blank(f"not measurable from production decisions (it needs reviews of items the {means} let "
                          "through); the model report gives recall on labelled evaluation sets", NOT_RECORDED),
        }  # fmt: skip
        rows += [_long(AUTOMATED_MEANS, indicator, f"{TOTAL_NUMBER} - {means}", ALL, cell)
                 for indicator, cell in cells.items()]  # fmt: skip
    return rows


def _not_recorded_rows(section: str, indicators: Iterable[tuple[str, str]], applicability: str, why: str) -> list[Row]:
    return [_long(section, indicator, scope, applicability, blank(why)) for indicator, scope in indicators]


def categories_sheet(inputs: Inputs) -> list[Row]:
    """Part 2: the Commission's category list as it is, with the policy categories this system
    files under each row in the contextual column (Annex II: the provider's reading of the
    categories)."""
    rows, category = [], None
    for name in NAMES:
        if name.code.startswith("STATEMENT_CATEGORY_"):
            category = name.code
        row_name = f"{category}>{name.code}" if name.code.startswith("KEYWORD_") else name.code
        policy = sorted(inputs.filed_as.get(row_name, ()))
        text = f"this system's policy files here: {'; '.join(map(_describe, policy))}" if policy else ""
        rows.append(Row((name.label, name.description, name.code), ALL,
                        {"Contextual information": Cell(None, FILLED, text)}))  # fmt: skip
    return rows


def qualitative_sheet(provider: Provider) -> list[Row]:
    """Part 11: the provider file's answers; an unanswered indicator is blank and said so."""
    rows = []
    for key, (applicability, indicator) in QUALITATIVE_INDICATORS.items():
        text = provider.qualitative.get(key)
        if text:
            cell = Cell(text, FILLED)
        elif applicability == VLOPS:
            cell = blank(f"only for very large online platforms (provider file: qualitative.{key})", NOT_APPLICABLE)
        else:
            cell = blank(f"not yet answered: the provider file's qualitative.{key} is empty", EMPTY)
        rows.append(Row((indicator,), applicability, {"Value": cell}))
    return rows


def identification_rows(provider: Provider, period: Period) -> list[Row]:
    def value(text: str | None, why: str = "") -> Cell:
        return Cell(text, FILLED) if text else blank(why, NOT_APPLICABLE)

    previous = provider.previous_report_date.isoformat() if provider.previous_report_date else None
    return [
        Row(("Name of the service provider",), ALL, {"Value": value(provider.name)}),
        Row(("Date of the publication of the report",), ALL, {"Value": value(provider.publication_date.isoformat())}),
        Row(
            ("Date of the publication of the latest previous report",),
            ALL,
            {"Value": value(previous, "no earlier report")},
        ),
        Row(("Starting date of reporting period",), ALL, {"Value": value(period.start.isoformat())}),
        Row(("Ending date of reporting period",), ALL, {"Value": value(period.end.isoformat())}),
    ]


@dataclasses.dataclass
class Template:
    """The filled quantitative template: rows per sheet, each sheet one CSV part."""

    provider: Provider
    period: Period
    min_cell_count: int
    sheets: dict[str, list[Row]]
    coverage: str = ""  # what the figures cover when less than the period (Period.coverage)

    def cell(self, sheet: str, key: tuple[str, ...], column: str = "Value") -> Cell:
        """The cell of `sheet`'s row named `key` (category code and "Other" description, or
        Section, Indicator and Scope, labels stripped of their trailing spaces)."""
        wanted = tuple(part.strip() for part in key)
        for row in self.sheets[sheet]:
            if tuple(part.strip() for part in row.key[: len(wanted)]) == wanted:
                for name, cell in row.cells.items():
                    if name.strip() == column.strip():
                        return cell
        raise KeyError(f"{sheet}: no row {key} column {column!r}")

    def csv_parts(self) -> dict[str, str]:
        """Each sheet as RFC 4180 text (CRLF line ends, quotes where needed), by file name."""
        return {f"{sheet}.csv": _csv(self._table(sheet)) for sheet in SHEETS}

    def _table(self, sheet: str) -> list[list[str]]:
        service, period = self.provider.service, str(self.period)
        rows = self.sheets[sheet]
        if sheet == SUMMARY:
            return [["Applicability", "Service", "Indicator", "Value"]] + [
                [row.applicability, service, row.key[0], row.cells["Value"].text()] for row in rows
            ]
        if sheet == NAMES_PART:
            return [list(NAMES_HEADER)] + [[*row.key, row.cells[NAMES_HEADER[-1]].context] for row in rows]
        if sheet == QUALITATIVE_PART:
            return [["Applicability", "Service", "Reporting period", "Indicator", "Value"]] + [
                [row.applicability, service, period, row.key[0], row.cells["Value"].text()] for row in rows
            ]
        if sheet in WIDE:
            category_column, columns, context = WIDE[sheet]
            names = [category_column, 'Description of the sub-category "Other"']
            names += ["Scope"] if sheet == "3_member_states_orders" else []
            contexts = [f"{context} {c}" for c in columns]  # trailing spaces kept, as the template has them
            if sheet == "3_member_states_orders":  # the template lower-cases its first two orders columns here
                contexts[:2] = [f"{context} {c[0].lower()}{c[1:]}" for c in columns[:2]]
            table = [["Applicability", "Service", "Reporting period", *names, *columns, *contexts]]
            for row in rows:
                cells = [row.cells[c] for c in columns]
                table.append([row.applicability, service, period, *row.key, *(c.text() for c in cells),
                              *(c.contextual() for c in cells)])  # fmt: skip
            return table
        context = LONG_CONTEXT[sheet]
        header = ["Applicability", "Service", "Reporting period", "Section", "Indicator", "Scope", "Value"]
        table = [header + ([context] if context else [])]
        for row in rows:
            cell = row.cells["Value"]
            table.append([row.applicability, service, period, *row.key, cell.text()]
                         + ([cell.contextual()] if context else []))  # fmt: skip
        return table

    def blank_cells(self) -> list[list[str]]:
        """Every blank figure of the filing with why: withheld (disclosure control), not
        applicable (cannot happen here), not recorded (kept outside this system), empty (an
        answer the provider has not written), so a reader can tell them apart."""
        table = [["part", "row", "column", "status", "reason"]]
        for sheet in SHEETS:
            if sheet == NAMES_PART:
                continue  # its one column is the provider's commentary, not a figure
            for row in self.sheets[sheet]:
                for column, cell in row.cells.items():
                    if cell.value is None:
                        table.append([sheet, " | ".join(part.strip() for part in row.key if part), column.strip(),
                                      cell.status, cell.context])  # fmt: skip
        return table

    def write(self, directory: Path) -> list[Path]:
        """The eleven parts, and `blank_cells.csv` beside them (`blank_cells`)."""
        directory.mkdir(parents=True, exist_ok=True)
        paths = []
        for name, text in {**self.csv_parts(), BLANK_CELLS: _csv(self.blank_cells())}.items():
            path = directory / name
            path.write_bytes(text.encode("utf-8"))
            paths.append(path)
        return paths


def _csv(table: list[list[str]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL).writerows(table)
    return buffer.getvalue()


def disclosure_control(sheets: dict[str, list[Row]]) -> None:
    """Withholds, across every part at once, the published counts and shares through which a
    withheld count could be worked out (enforcement.disclosure)."""
    cells = {}
    for sheet, rows in sheets.items():
        for index, row in enumerate(rows):
            for column, cell in row.cells.items():
                if (cell.items is not None or cell.share_of is not None) and cell.status in (FILLED, WITHHELD):
                    cells[sheet, index, column] = cell
    figures = {ref: Figure(cell.status == WITHHELD, cell.items, None if cell.items is not None else cell.share_of)
               for ref, cell in cells.items()}  # fmt: skip
    for sheet, index, column in complementary_suppression(figures):
        cell = cells[sheet, index, column]
        sheets[sheet][index].cells[column] = dataclasses.replace(
            cell, value=None, status=WITHHELD, context="withheld with a smaller figure that it would otherwise reveal"
        )


def fill_template(inputs: Inputs, provider: Provider, min_cell_count: int, today: dt.date | None = None) -> Template:
    """The quantitative template for `inputs.period` (`today`, for saying whether it is over:
    default the publication date)."""
    k = min_cell_count
    illegal, tc = own_initiative_sheets(inputs, k)
    vlops = f"{NOT_RECORDED_HERE}: only for very large online platforms"
    moderators = "Human resources dedicated to content moderation "
    linguistic = "Number of total moderators with sufficient linguistic expertise "
    amar = "Number of average monthly active recipients during the reporting period\u00a0"
    sheets = {
        SUMMARY: identification_rows(provider, inputs.period),
        NAMES_PART: categories_sheet(inputs),
        "3_member_states_orders": orders_sheet(),
        "4_notices": notices_sheet(inputs, k),
        "5_own_initiative_illegal": illegal,
        "6_own_initiative_TC": tc,
        "7_appeals_and_recidivism": appeals_sheet(inputs, k),
        "8_automated_means": automated_means_sheet(inputs, k),
        "9_human_resources": _not_recorded_rows(
            moderators,
            [
                ("Number of internal moderators employed by the provider", TOTAL_NUMBER),
                ("Number of external moderators contracted by the provider", TOTAL_NUMBER),
                *((linguistic, scope) for scope in (TOTAL_NUMBER, *LANGUAGES)),
            ],
            VLOPS,
            vlops,
        ),
        "10_AMAR": _not_recorded_rows(
            "AMAR", [(amar, scope) for scope in (TOTAL, *MEMBER_STATES)], VLOPS_VLOSES, vlops
        ),
        QUALITATIVE_PART: qualitative_sheet(provider),
    }
    disclosure_control(sheets)
    coverage = inputs.period.coverage(inputs.first_day, inputs.last_day, today or provider.publication_date)
    return Template(provider, inputs.period, min_cell_count, sheets, coverage)
