"""The DSA harmonised template (Implementing Regulation (EU) 2024/2835, Annex I) and the summary
page: every filled cell checked against a direct query of a warehouse of known decisions,
notices, appeals, reviews and suspensions; the CSV parts read by a strict RFC 4180 reader; the
summary page shows the CSV's figures and withheld ones as withheld."""

from __future__ import annotations

import csv
import datetime as dt
import html
import io
import json
import re
from pathlib import Path

import duckdb
import numpy as np
import pytest

from enforcement import dsa_template
from enforcement.disclosure import Figure, complementary_suppression, recoverable
from enforcement.dsa_categories import ILLEGAL_CATEGORIES
from enforcement.dsa_template import (
    ACCURACY,
    LANGUAGES,
    LAW,
    MEMBER_STATES,
    NOT_SOLELY,
    OWN_AUTOMATED,
    OWN_INITIATIVE,
    OWN_MEASURES,
    PRECISION,
    RECALL,
    RESTRICTION_COLUMN,
    REVERSED,
    SOLELY,
    SUBMITTED,
    SUSPENDED_ILLEGAL,
    TC,
    TOTAL_NUMBER,
    UNNAMED_KEYWORD,
    UPHELD,
    Period,
    Provider,
    fill_template,
)
from pipelines.options import DEFAULT_POLICY
from tools import report
from warehouse.embedded import write_catalog
from warehouse.reader import open_reader

from .conftest import seed_table
from .pages import assert_readable

OFFICIAL = Path(__file__).parent / "data" / "dsa_template"
SUSPENSIONS_ROW = (SUSPENDED_ILLEGAL, TOTAL_NUMBER)
START, END = dt.date(2026, 11, 1), dt.date(2026, 11, 30)
T0 = dt.datetime(2026, 11, 3, 9, tzinfo=dt.UTC)
K = 3  # --min_cell_count
TC_GROUND = "DECISION_GROUND_INCOMPATIBLE_CONTENT"
UNDISCLOSED = ("STATEMENT_CATEGORY_OTHER_VIOLATION_TC", "KEYWORD_OTHER", "synthetic_media_undisclosed")
DISCLOSED = ("STATEMENT_CATEGORY_OTHER_VIOLATION_TC", "KEYWORD_OTHER", "synthetic_media_disclosed")
DEEPFAKE = ("STATEMENT_CATEGORY_CYBER_VIOLENCE", "KEYWORD_NON_CONSENSUAL_MATERIAL_DEEPFAKE", "non_consensual_deepfake")
ALLEGED_DEEPFAKE = DEEPFAKE[:2]
CIVIC = "STATEMENT_CATEGORY_NEGATIVE_EFFECTS_ON_CIVIC_DISCOURSE_OR_ELECTIONS"


class Seed:
    def __init__(self):
        self.decisions, self.statements, self.appeals, self.reviews = [], [], [], []

    def decide(self, decision_id, action, at, filed=UNDISCLOSED, method="automated", automated="fully",
               notified=None, supersedes=None, content_id=None, alleged=(None, None)):  # fmt: skip
        dsa_category, keyword, category = filed
        self.decisions.append({
            "decision_id": decision_id, "content_id": content_id if content_id is not None else f"c-{decision_id}",
            "account_id": f"acct-{decision_id}", "action": action, "category": category, "rule_id": "r",
            "detection_method": method, "automated_decision": automated, "uploaded_at": at - dt.timedelta(hours=1),
            "decided_at": at, "notified_at": notified, "notice_category": alleged[0], "notice_keyword": alleged[1],
            "supersedes": supersedes,
        })  # fmt: skip
        if action not in ("none", "human_review"):
            statement = {"category": dsa_category, "category_specification": [keyword], "decision_ground": TC_GROUND}
            self.statements.append({"sor_id": f"sor-{decision_id}", "decision_id": decision_id, "puid": decision_id,
                                    "category": dsa_category, "statement": json.dumps(statement),
                                    "application_date": at})  # fmt: skip


@pytest.fixture(scope="module")
def filed(tmp_path_factory):
    """A month of known decisions, notices, appeals, reviews and suspensions, and the report's
    template and page for it."""
    root = tmp_path_factory.mktemp("dsa")
    warehouse, seed = root / "warehouse", Seed()
    hour = dt.timedelta(hours=1)
    for i in range(20):  # own initiative, solely automated removals; two partially automated
        seed.decide(f"rm{i}", "remove", T0 + i * hour, automated="partially" if i < 2 else "fully")
    for i in range(6):
        seed.decide(f"lb{i}", "label", T0 + i * hour, filed=DISCLOSED)
    seed.decide("rr0", "reduce_reach", T0)  # a single demotion: withheld
    seed.decide("df0", "remove", T0, filed=DEEPFAKE)  # a single deepfake removal: withheld
    seed.decide("none0", "none", T0)
    seed.decide("old0", "remove", dt.datetime(2026, 10, 30, tzinfo=dt.UTC))  # before the period
    # A routed item: a reviewer removes it (one measure, not solely automated); a blind
    # reviewer confirms rm2 (no second measure).
    seed.decide("hr0", "human_review", T0, automated="partially", content_id="c-hr0")
    seed.decide("v-hr0", "remove", T0 + 5 * hour, automated="partially", supersedes="hr0", content_id="c-hr0")
    seed.decide("v-rm2", "remove", T0 + 6 * hour, automated="partially", supersedes="rm2", content_id="c-rm2")
    # What the notifiers alleged: a deepfake (category and keyword), civic discourse (no keyword:
    # counted as "Other", described), nothing (not specified).
    alleging = [ALLEGED_DEEPFAKE] * 4 + [(CIVIC, None)] * 2 + [(None, None)] * 2
    for i in range(8):  # user reports: five acted on, three not
        received = T0 + i * hour
        seed.decide(f"ur{i}", "remove" if i < 5 else "none", received + (i + 1) * hour, method="user_report",
                    notified=received, alleged=alleging[i])  # fmt: skip
    # A report removed 9 h after it came in, then routed to a reviewer: the removal is an action
    # taken on the notice although the item's standing decision is the review.
    seed.decide("ur-rm", "remove", T0 + 9 * hour, method="user_report", notified=T0, automated="fully",
                content_id="c-ur-rm")  # fmt: skip
    seed.decide("ur-hr", "human_review", T0 + 10 * hour, method="user_report", notified=T0, automated="partially",
                supersedes="ur-rm", content_id="c-ur-rm")  # fmt: skip
    for i in range(4):  # trusted flaggers, all acted on
        received = T0 + i * hour
        seed.decide(f"tf{i}", "remove", received + 2 * hour, method="trusted_flagger", notified=received,
                    alleged=ALLEGED_DEEPFAKE if i < 3 else (None, None))  # fmt: skip
    for i in range(4):  # suspensions after strikes
        seed.decide(f"susp{i}", "suspend_account", T0 + 30 * hour, content_id="")
    for i in range(12):  # appeals decided in the period, 4 overturned; one after it; 9 say when they were lodged
        seed.appeals.append({"appeal_id": f"ap{i}", "decision_id": f"rm{i}", "outcome": "overturned" if i < 4 else "upheld",
                             "action": "remove", "automated_decision": "fully", "decided_at": T0 + i * hour,
                             "submitted_at": T0 + i * hour + 0.5 * i * hour if i < 9 else None,
                             "appeal_decided_at": T0 + i * hour + (i + 2) * hour})  # fmt: skip
    seed.appeals.append({"appeal_id": "ap-late", "decision_id": "rm12", "outcome": "upheld", "action": "remove",
                         "automated_decision": "fully", "decided_at": T0,
                         "appeal_decided_at": dt.datetime(2026, 12, 1, 1, tzinfo=dt.UTC)})  # fmt: skip
    for i in range(10):  # blind quality sample: 8 agree
        seed.reviews.append({"review_id": f"rv{i}", "decision_id": f"rm{i}", "blind": True, "agrees": i < 8,
                             "machine_action": "remove", "reviewed_at": T0 + 40 * hour})  # fmt: skip
    seed.reviews.append({"review_id": "rv-routed", "decision_id": "hr0", "blind": False, "agrees": True,
                         "machine_action": None, "reviewed_at": T0 + 5 * hour})  # fmt: skip
    # What the classifiers scored: rm0-rm5 visual (one abstaining audio beside it), rm6-rm9
    # audio; the rest have no content score (metadata and context signals).
    scores = [{"content_id": f"c-rm{i}", "visual_score": 0.9 if i < 6 else 0.3, "audio_score": 0.99 if i < 6 else 0.8,
               "audio_abstained": i < 6} for i in range(10)]  # fmt: skip
    for table, rows in (("enforcement_decisions", seed.decisions), ("statements_of_reasons", seed.statements),
                        ("appeals", seed.appeals), ("reviews", seed.reviews), ("media_scores", scores),
                        ("dead_letter", [{"reason": "corrupt_media", "disposition": "dead_letter", "failed_at": T0}])):  # fmt: skip
        seed_table(warehouse, table, rows)
    write_catalog(str(warehouse))
    provider = root / "provider.yaml"
    provider.write_text("provider_name: Example Video Platform B.V.\nservice_name: Example Video\n"
                        "publication_date: 2026-12-15\n")  # fmt: skip
    out = root / "report"
    args = ["--warehouse", str(warehouse), "--out", str(out), "--dsa-template", "--period", f"{START}/{END}",
            "--provider", str(provider), "--min_cell_count", str(K)]  # fmt: skip
    assert report.run(args) == 0
    return warehouse, out


def strict_rfc4180(data: bytes) -> list[list[str]]:
    """Records of an RFC 4180 file, refusing anything the RFC does not allow: not UTF-8, a line
    not ended by CRLF, a quote inside an unquoted field, records of different lengths."""
    text = data.decode("utf-8")
    assert text.endswith("\r\n") and "\r\n" in text
    outside = re.sub(r'"(?:[^"]|"")*"', "", text)  # what is left outside quoted fields
    assert '"' not in outside, "a quote inside an unquoted field"
    assert "\n" not in outside.replace("\r\n", "") and "\r" not in outside.replace("\r\n", ""), "a bare CR or LF"
    records = list(csv.reader(io.StringIO(text, newline=""), strict=True))
    assert len({len(record) for record in records}) == 1, "records of different lengths"
    return records


def parts(out) -> dict[str, list[dict[str, str]]]:
    tables = {}
    for path in sorted((out / "dsa_template").glob("[0-9]*.csv")):  # the parts, not blank_cells.csv
        header, *rows = strict_rfc4180(path.read_bytes())
        tables[path.stem] = [dict(zip(header, row, strict=True)) for row in rows]
    return tables


# Direct queries: what each filled cell must equal, written from the counting rules, not from the code.
MEASURES = f"""
  SELECT d.*, json_extract_string(s.statement, '$.category') AS dsa_category,
         json_extract_string(s.statement, '$.category_specification[0]') AS keyword,
         json_extract_string(s.statement, '$.decision_ground') AS ground
  FROM enforcement_decisions d
  LEFT JOIN statements_of_reasons s USING (decision_id)
  LEFT JOIN enforcement_decisions reviewed ON reviewed.decision_id = d.supersedes
  WHERE d.action IN ('label', 'reduce_reach', 'remove', 'suspend_account')
    AND CAST(d.decided_at AS DATE) BETWEEN DATE '{START}' AND DATE '{END}'
    AND (reviewed.decision_id IS NULL OR reviewed.action <> d.action)"""
ILLEGAL = ", ".join(f"'{c}'" for c in ILLEGAL_CATEGORIES)
REPORTED = "d.detection_method IN ('user_report', 'trusted_flagger')"
ACTED = f"{REPORTED} AND d.action IN ('label', 'reduce_reach', 'remove')"
NOTICES = f"""
  SELECT *, CASE WHEN alleged IN ({ILLEGAL}) THEN alleged
                 ELSE 'STATEMENT_CATEGORY_NOT_SPECIFIED_NOTICE' END AS notice_category,
            CASE WHEN alleged IN ({ILLEGAL}) THEN COALESCE(NULLIF(alleged_keyword, 'KEYWORD_OTHER'), 'KEYWORD_OTHER')
                 END AS keyword,
            CASE WHEN alleged_keyword IS NULL OR alleged_keyword = 'KEYWORD_OTHER'
                 THEN '{UNNAMED_KEYWORD}' END AS category
  FROM (
    SELECT content_id,
           arg_min(d.detection_method, d.decided_at) FILTER (WHERE {REPORTED}) AS source,
           arg_min(COALESCE(d.notified_at, d.uploaded_at), d.decided_at) FILTER (WHERE {REPORTED}) AS received,
           arg_min(d.notice_category, d.decided_at) FILTER (WHERE {REPORTED}) AS alleged,
           arg_min(d.notice_keyword, d.decided_at) FILTER (WHERE {REPORTED}) AS alleged_keyword,
           arg_max(d.automated_decision, d.decided_at) AS automated_decision
    FROM enforcement_decisions d
    WHERE d.content_id <> '' AND d.action <> 'suspend_account'
    GROUP BY content_id)
  WHERE source IS NOT NULL"""
NOTICES_RECEIVED = f"SELECT * FROM ({NOTICES}) WHERE CAST(received AS DATE) BETWEEN DATE '{START}' AND DATE '{END}'"
OWN = "(detection_method = 'automated' OR action = 'suspend_account')"
ACTIONS = f"""
  SELECT n.*, m.ground AS action_ground, (epoch(m.decided_at) - epoch(n.received)) / 3600.0 AS hours
  FROM ({MEASURES}) m JOIN ({NOTICES}) n USING (content_id) WHERE NOT {OWN}"""
APPEALS = f"""
  SELECT a.*, d.action AS decision_action,
         (epoch(a.appeal_decided_at) - epoch(COALESCE(a.submitted_at, a.decided_at))) / 3600.0 AS hours
  FROM appeals a LEFT JOIN enforcement_decisions d USING (decision_id)
  WHERE CAST(a.appeal_decided_at AS DATE) BETWEEN DATE '{START}' AND DATE '{END}'"""
MEANS = """
  SELECT d.decision_id, CASE
      WHEN COALESCE(s.visual_abstained, FALSE) OR s.visual_score IS NULL THEN
        CASE WHEN s.audio_score IS NULL OR s.audio_abstained THEN 'metadata and context signals' ELSE 'audio classifier' END
      WHEN s.audio_score IS NULL OR s.audio_abstained OR s.visual_score >= s.audio_score THEN 'visual classifier'
      ELSE 'audio classifier' END AS means
  FROM enforcement_decisions d LEFT JOIN media_scores s USING (content_id)"""
RESTRICTION = {"Visibility restriction Removal": "remove", "Visibility restriction Demoted": "reduce_reach",
               "Visibility restriction Labelled": "label", "Account restriction Suspension": "suspend_account"}  # fmt: skip


def _row_filter(code: str, description: str, category_field: str, parent: str) -> str:
    if code == "TOTAL":
        return "TRUE"
    if code.startswith("STATEMENT_CATEGORY_"):
        return f"{category_field} = '{code}'"
    other = f" AND replace(category, '_', ' ') = '{description}'" if code == "KEYWORD_OTHER" else ""
    return f"{category_field} = '{parent}' AND keyword = '{code}'{other}"  # a keyword under its own category


def expected_query(sheet: str, row: dict[str, str], column: str, parent: str = "") -> str:
    """The direct query for one filled cell; fails the test for a cell it does not know."""
    if sheet == "6_own_initiative_TC":
        code, description = row["Category of incompatibility with the provider's terms and conditions"], row[
            'Description of the sub-category "Other"']  # fmt: skip
        where = f"{OWN} AND {_row_filter(code, description, 'dsa_category', parent)}"
        if column.strip() in RESTRICTION:
            where += f" AND action = '{RESTRICTION[column.strip()]}'"
        if "solely automated" in column:
            where += " AND automated_decision = 'fully'"
        return f"SELECT COUNT(*) FROM ({MEASURES}) WHERE {where}"
    if sheet == "4_notices":
        code, description = row["Category of illegal content"], row['Description of the sub-category "Other"']
        where = _row_filter(code, description, "notice_category", parent)
        if "Trusted" in column:
            where += " AND source = 'trusted_flagger'"
        if column.startswith("Median"):
            return f"SELECT MEDIAN(hours) FROM ({ACTIONS}) WHERE {where}"
        if "basis of the terms" in column:
            return f"SELECT COUNT(*) FROM ({ACTIONS}) WHERE action_ground = '{TC_GROUND}' AND {where}"
        if "basis of the law" in column:
            return f"SELECT COUNT(*) FROM ({ACTIONS}) WHERE action_ground <> '{TC_GROUND}' AND {where}"
        return f"SELECT COUNT(*) FROM ({NOTICES_RECEIVED}) WHERE {where}"
    indicator, scope = row["Indicator"].strip(), row["Scope"].strip()
    if sheet == "7_appeals_and_recidivism":
        if indicator.startswith("Number of suspensions"):
            return (f"SELECT COUNT(*) FROM enforcement_decisions WHERE action = 'suspend_account' AND "
                    f"CAST(decided_at AS DATE) BETWEEN DATE '{START}' AND DATE '{END}'")  # fmt: skip
        kinds = {"Number of complaints submitted to the internal-complaints mechanism": "TRUE",
                 "Complaint regarding a decision to remove or disable access to or restrict visibility of information":
                     "decision_action IN ('label', 'reduce_reach', 'remove')",
                 "Complaint regarding a decision to suspend or terminate an account": "decision_action = 'suspend_account'"}  # fmt: skip
        where = kinds.get(indicator, "decision_action = 'none'")  # the notice complaints: none seeded
        measure = {"Total number": "COUNT(*)", "Decisions upheld": "COUNT(*) FILTER (WHERE outcome = 'upheld')",
                   "Decisions reversed": "COUNT(*) FILTER (WHERE outcome = 'overturned')",
                   "Median time": "MEDIAN(hours)"}[scope]  # fmt: skip
        return f"SELECT {measure} FROM ({APPEALS}) WHERE {where}"
    if sheet == "8_automated_means":
        own = f" AND {OWN}" if scope == "Own-initiative" else ""
        trusted = " AND source = 'trusted_flagger'" if scope == "NAM Trusted Flagger" else ""
        queries = {
            "Number of measures solely taken by automated means": f"SELECT COUNT(*) FROM ({MEASURES}) WHERE automated_decision = 'fully'{own}",
            "Number of measures not taken by automated means": f"SELECT COUNT(*) FROM ({MEASURES}) WHERE automated_decision <> 'fully'{own}",
            "Number of notices solely processed by automated means": f"SELECT COUNT(*) FROM ({NOTICES_RECEIVED}) WHERE automated_decision = 'fully'{trusted}",
            "Number of notices not processed by automated means": f"SELECT COUNT(*) FROM ({NOTICES_RECEIVED}) WHERE automated_decision <> 'fully'{trusted}",
            "Accuracy of the automated means - Accuracy": f"SELECT ROUND(AVG((outcome = 'upheld')::INT), 4) FROM ({APPEALS}) WHERE automated_decision = 'fully'",
            "Accuracy of the automated means - Precision": f"SELECT ROUND(AVG(agrees::INT), 4) FROM reviews WHERE blind AND machine_action IN ('label', 'reduce_reach', 'remove', 'suspend_account') AND CAST(reviewed_at AS DATE) BETWEEN DATE '{START}' AND DATE '{END}'",
        }  # fmt: skip
        if " - " in scope:  # Annex II's rows per automated means
            means = scope.split(" - ", 1)[1]
            by_means = {"Accuracy of the automated means - Accuracy":
                            f"SELECT ROUND(AVG((outcome = 'upheld')::INT), 4) FROM ({APPEALS}) a JOIN ({MEANS}) USING "
                            "(decision_id) WHERE a.automated_decision = 'fully'",
                        "Accuracy of the automated means - Precision":
                            f"SELECT ROUND(AVG(agrees::INT), 4) FROM reviews JOIN ({MEANS}) USING (decision_id) WHERE "
                            f"blind AND machine_action = 'remove' AND CAST(reviewed_at AS DATE) BETWEEN DATE '{START}' "
                            f"AND DATE '{END}'"}  # fmt: skip
            return f"{by_means[indicator]} AND means = '{means}'"
        return queries[indicator]
    raise AssertionError(f"no direct query for {sheet} {row} {column}")


def _value_columns(sheet: str, row: dict[str, str]) -> list[tuple[str, str, str]]:
    """(value column, its value, its contextual information) of a row."""
    if sheet.split("_")[0] in ("7", "8", "9", "10"):
        return [("Value", row["Value"], row.get("Contextual Information", row.get("Contextual information", "")))]
    contexts = {name.split(" on ", 1)[1].strip().lower(): name for name in row if name.lower().startswith("contextual")}
    return [(name, value, row[contexts[name.strip().lower()]]) for name, value in row.items()
            if name.strip().lower() in contexts]  # fmt: skip


def test_every_filled_cell_equals_a_direct_query_and_withheld_cells_are_never_zero(filed):
    warehouse, out = filed
    tables = parts(out)
    assert set(tables) == {path.stem for path in OFFICIAL.glob("*.csv")}
    identification = {row["Indicator"]: row["Value"] for row in tables["1_summary"]}
    assert identification == {"Name of the service provider": "Example Video Platform B.V.",
                              "Date of the publication of the report": "2026-12-15",
                              "Date of the publication of the latest previous report": "",
                              "Starting date of reporting period": "2026-11-01",
                              "Ending date of reporting period": "2026-11-30"}  # fmt: skip
    checked = withheld = 0
    with duckdb.connect(str(warehouse / "warehouse.duckdb"), read_only=True) as con:
        for sheet in ("4_notices", "6_own_initiative_TC", "7_appeals_and_recidivism", "8_automated_means"):
            parent = ""
            for row in tables[sheet]:
                assert row["Service"] == "Example Video" and row["Reporting period"] == f"{START}/{END}"
                parent = next((v for v in row.values() if v.startswith("STATEMENT_CATEGORY_")), parent)
                for column, value, context in _value_columns(sheet, row):
                    if context.startswith("withheld"):
                        assert value == "", f"{sheet} {row} {column}: a withheld figure is written"
                        truth = con.execute(expected_query(sheet, row, column, parent)).fetchall()[0][0]
                        if "smaller figure" not in context:  # withheld for itself: a count under K
                            assert column.startswith(("Median", "Accuracy")) or 0 < truth < K, (sheet, column, truth)
                        withheld += 1
                    elif value != "":
                        truth = con.execute(expected_query(sheet, row, column, parent)).fetchall()[0][0]
                        # shares to four decimals, medians to three significant figures
                        assert float(value) == pytest.approx(float(truth), rel=5e-3, abs=1e-4), (sheet, row, column,
                                                                                                   value, truth)  # fmt: skip
                        checked += 1
    assert checked > 100 and withheld >= 4
    own = {(r["Category of incompatibility with the provider's terms and conditions"],
            r['Description of the sub-category "Other"']): r for r in tables["6_own_initiative_TC"]}  # fmt: skip
    total = own["TOTAL", ""]
    # 20 removals + 6 labels + 1 demotion + 1 deepfake + 4 suspensions + the reviewer's removal of
    # the routed item; the confirming verdict adds nothing, notices are on sheet 4.
    assert total["Number of measures taken at the provider's own initiative "] == "33"
    assert total["Visibility restriction Demoted"] == "" and total[
        "Contextual Information on Visibility restriction Demoted"].startswith("withheld")  # fmt: skip
    assert (
        own["KEYWORD_NON_CONSENSUAL_MATERIAL_DEEPFAKE", ""][
            "Number of measures taken at the provider's own initiative "
        ]
        == ""
    )
    # A restriction the system never imposes is blank, with the reason; a category outside the policy too.
    assert total["Monetary restriction Suspension"] == "" and "never imposes" in total[
        "Contextual Information on Monetary restriction Suspension"]  # fmt: skip
    assert (
        own["STATEMENT_CATEGORY_ANIMAL_WELFARE", ""]["Number of measures taken at the provider's own initiative "] == ""
    )
    # A keyword row is counted only under a category the policy files there: no "Other" row of
    # a category it never files reads 0 under its blank parent.
    parent = ""
    for row in tables["6_own_initiative_TC"]:
        code = row["Category of incompatibility with the provider's terms and conditions"]
        parent = code if code.startswith("STATEMENT_CATEGORY_") else parent
        if code.startswith("KEYWORD_") and own[parent, ""][OWN_MEASURES] == "" and "withheld" not in own[parent, ""][
                f"Contextual Information on {OWN_MEASURES}"]:  # fmt: skip
            assert row[OWN_MEASURES] == "", (parent, code)
    # Rows the system cannot know are present, blank, and say so.
    for sheet in ("3_member_states_orders", "9_human_resources", "10_AMAR"):
        assert tables[sheet] and all(value == "" for row in tables[sheet] for _, value, _ in _value_columns(sheet, row))
    assert all("Not recorded by this system" in row["Contextual information on number of orders to act against "
                                                      "illegal content received"] for row in tables["3_member_states_orders"])  # fmt: skip
    assert tables["5_own_initiative_illegal"][0]["Category of illegal content"] == "TOTAL"
    # Notices by what the notifier alleged; a notice can allege anything, so no category is blank.
    received = {(r["Category of illegal content"], r['Description of the sub-category "Other"']): r[
        "Number of notices received "] for r in tables["4_notices"]}  # fmt: skip
    assert received["KEYWORD_NON_CONSENSUAL_MATERIAL_DEEPFAKE", ""] == "7"
    # three unspecified and ur-rm: 4, unless withheld to keep a smaller figure withheld
    assert received["STATEMENT_CATEGORY_NOT_SPECIFIED_NOTICE", ""] in ("4", "")
    assert received["KEYWORD_OTHER", UNNAMED_KEYWORD] == ""  # two: withheld under K
    assert received["STATEMENT_CATEGORY_ANIMAL_WELFARE", ""] == "0" and received["KEYWORD_ANIMAL_HARM", ""] == "0"


@pytest.fixture(scope="module")
def template(filed):
    """The filled template behind the written parts, its cells with the items they count."""
    return _template(filed[0])


def _template(warehouse):
    inputs = report.read_inputs(open_reader(str(warehouse)), Period(START, END), DEFAULT_POLICY)
    return fill_template(inputs, Provider("Example Video Platform B.V.", "Example Video", END), K, today=END)


def test_a_quantity_that_two_parts_publish_has_one_value(template):
    """Annex II's identities, on what each cell counts (withheld or not): a quantity two parts
    publish is the same set of measures, notices or appeals in both; totals are the disjoint
    union of their rows."""

    def items(sheet: str, key: tuple[str, ...], column: str = "Value") -> frozenset[str]:
        return template.cell(sheet, key, column).items

    own, notices = ("6_own_initiative_TC", ("TOTAL",)), ("4_notices", ("TOTAL",))
    section = "Use of automated means for content moderation"

    def automated(indicator: str, scope: str) -> frozenset[str]:
        return items("8_automated_means", (section, indicator, scope))

    def measures(scope: str) -> frozenset[str]:
        assert not automated(SOLELY, scope) & automated(NOT_SOLELY, scope)
        return automated(SOLELY, scope) | automated(NOT_SOLELY, scope)

    assert items(*own, OWN_AUTOMATED) == automated(SOLELY, OWN_INITIATIVE)
    assert items(*own, OWN_MEASURES) == measures(OWN_INITIATIVE)
    assert measures(TOTAL_NUMBER) - measures(OWN_INITIATIVE) == items(*notices, TC) and len(items(*notices, TC)) == 10
    assert items(*own, "Account restriction Suspension") == items("7_appeals_and_recidivism",
                                                                  ("Suspensions imposed on repeated offenders",
                                                                   *SUSPENSIONS_ROW))  # fmt: skip
    complaints = "Internal complaints mechanism"
    submitted = {scope: items("7_appeals_and_recidivism", (complaints, SUBMITTED, scope))
                 for scope in (TOTAL_NUMBER, UPHELD, REVERSED)}  # fmt: skip
    assert submitted[TOTAL_NUMBER] == submitted[UPHELD] | submitted[REVERSED] and not submitted[UPHELD] & submitted[
        REVERSED]  # fmt: skip
    # Totals: TOTAL the disjoint union of its categories, a category of its keywords, a row's
    # restrictions of its measures.
    for sheet, column in (("6_own_initiative_TC", OWN_MEASURES), ("4_notices", "Number of notices received ")):
        rows = template.sheets[sheet]
        total, categories, keywords = rows[0].cells[column].items, [], {}
        for row in rows[1:]:
            if row.key[0].startswith("STATEMENT_CATEGORY_"):
                categories.append(row)
                keywords[row.key[0]] = []
            else:
                keywords[categories[-1].key[0]].append(row)
        counted = [row.cells[column].items or frozenset() for row in categories]  # None: a category never filed
        assert sum(map(len, counted)) == len(total) == len(frozenset().union(*counted))
        for category in categories:
            below = [
                row.cells[column].items for row in keywords[category.key[0]] if row.cells[column].items is not None
            ]
            if below:
                assert sum(map(len, below)) == len(category.cells[column].items), (sheet, category.key)
    for row in template.sheets["6_own_initiative_TC"]:
        restrictions = [row.cells[c].items for c in RESTRICTION_COLUMN.values() if row.cells[c].items is not None]
        if row.cells[OWN_MEASURES].items is not None:
            assert sum(map(len, restrictions)) == len(row.cells[OWN_MEASURES].items), row.key
    # No action rests on a legal ground: part 4's law column and part 5 are blank for the same reason.
    law = template.cell(*notices, LAW).context
    assert law.startswith("not applicable") and law == template.cell("5_own_initiative_illegal", ("TOTAL",),
                                                                     OWN_MEASURES).context  # fmt: skip


def test_no_withheld_figure_can_be_worked_out_from_what_the_filing_publishes(filed, template):
    """An attacker who knows every linear identity between the figures (which items each one
    counts) and every published count and share tries to work out each withheld count: a
    withheld count falls when adding its equation leaves the rank of the published ones as it
    was. The published figures are read back from the written CSV parts."""
    _, out = filed
    tables = {name: strict_rfc4180((out / "dsa_template" / f"{name}.csv").read_bytes())
                                              for name in ("4_notices", "6_own_initiative_TC",
                                                           "7_appeals_and_recidivism", "8_automated_means")}  # fmt: skip
    figures = []  # (written value or None when withheld, count items or None, share sets or None)
    for sheet, table in tables.items():
        header = table[0]
        for row, written in zip(template.sheets[sheet], table[1:], strict=True):
            for column, cell in row.cells.items():
                if cell.items is None and cell.share_of is None:
                    continue
                value = written[header.index(column)]
                context = (
                    written[header.index(column) + len(row.cells)]
                    if sheet in ("4_notices", "6_own_initiative_TC")
                    else ""
                )
                assert (value == "") == (cell.status == "withheld"), (sheet, row.key, column)
                assert value == "" or context == "" or not context.startswith("withheld")
                figures.append((float(value) if value else None, cell.items, cell.share_of))
    items = sorted({i for _, counted, share in figures for i in (counted or frozenset().union(*(share or ())))})
    position = {item: n for n, item in enumerate(items)}

    def equation(counted, share) -> np.ndarray:
        row = np.zeros(len(items))
        if counted is not None:
            row[[position[i] for i in counted]] = 1.0
        else:  # hits - (hits / base) * base = 0, the exact share (the attacker's best case)
            hits, base = share
            row[[position[i] for i in hits]] += 1.0
            row[[position[i] for i in base]] -= len(hits) / len(base)
        return row

    published = np.array([equation(c, s) for v, c, s in figures if v is not None])
    rank = np.linalg.matrix_rank(published)
    withheld = [(c, s) for v, c, s in figures if v is None and c]
    assert len(withheld) >= 10 and len(published) > 100
    for counted, share in withheld:
        assert np.linalg.matrix_rank(np.vstack([published, equation(counted, share)])) > rank, sorted(counted)


def test_every_blank_figure_is_listed_with_why_so_withheld_is_told_from_not_applicable(filed):
    _, out = filed
    header, *listed = strict_rfc4180((out / "dsa_template" / "blank_cells.csv").read_bytes())
    assert header == ["part", "row", "column", "status", "reason"]
    by_status = {status: [r for r in listed if r[3] == status] for status in {r[3] for r in listed}}
    assert set(by_status) <= {"withheld", "not_applicable", "not_recorded", "empty"}
    assert by_status["withheld"] and by_status["not_applicable"] and by_status["not_recorded"]
    assert all(reason for *_, reason in listed)
    # Every blank value of a figure in the parts is listed, and nothing that is filled.
    tables = parts(out)
    blanks = 0
    for sheet in ("4_notices", "6_own_initiative_TC", "7_appeals_and_recidivism", "8_automated_means"):
        listed_here = {(r[1], r[2]) for r in listed if r[0] == sheet}
        for row in tables[sheet]:
            for column, value, _ in _value_columns(sheet, row):
                names = ("Section", "Indicator", "Scope") if sheet[0] in "78" else tuple(row)[3:5]
                key = " | ".join(row[n].strip() for n in names if row[n])
                assert ((key, column.strip()) in listed_here) == (value == ""), (sheet, key, column)
                blanks += value == ""
    assert blanks > 50
    # Part 11's unanswered indicators are listed as empty (the fixture's provider file answers none).
    assert {r[1] for r in by_status["empty"]} >= {"Qualitative description of the automated means"}


def test_a_withheld_count_stays_withheld_beside_its_total_and_a_share_of_it():
    """The case Annex II readers meet: 14 appeals, 13 upheld, 1 reversed (under the minimum),
    and the share upheld published elsewhere. Withholding the 1 alone gives it away twice."""
    appeals = frozenset(f"a{i}" for i in range(14))
    upheld, reversed_ = frozenset(sorted(appeals)[:13]), frozenset(sorted(appeals)[13:])
    figures = {"total": Figure(False, appeals), "upheld": Figure(False, upheld), "reversed": Figure(True, reversed_),
               "accuracy": Figure(False, None, (upheld, appeals))}  # fmt: skip
    assert set(recoverable(figures)) == {"reversed"}
    added = complementary_suppression(figures)
    assert "upheld" in added or "total" in added
    after = {ref: Figure(True, f.items, f.share_of) if ref in added else f for ref, f in figures.items()}
    assert not recoverable(after) and "accuracy" in added  # share and total together would still give it
    # A zero count has nothing to give away, and nothing is withheld for it.
    assert complementary_suppression({"zero": Figure(True, frozenset()), "total": Figure(False, appeals)}) == []


def test_the_period_defaults_to_the_calendar_year_and_a_partial_year_says_so(filed, tmp_path, capsys):
    warehouse, _ = filed
    provider = tmp_path / "provider.yaml"
    provider.write_text("provider_name: P\nservice_name: S\npublication_date: 2026-12-15\n")
    args = ["--warehouse", str(warehouse), "--out", str(tmp_path / "r"), "--dsa-template", "--provider", str(provider)]
    assert report.run(args) == 0
    summary = {row["Indicator"]: row["Value"] for row in parts(tmp_path / "r")["1_summary"]}
    assert (summary["Starting date of reporting period"], summary["Ending date of reporting period"]) == (
        "2026-01-01", "2026-12-31")  # fmt: skip
    said = capsys.readouterr().out
    assert "part 11, still to be written in the provider file: Summary of the content moderation" in said
    assert "Partial period: the records this report reads begin on 2026-10-30" in said
    assert "the period is not over: figures up to" in said
    assert "Partial period" in (tmp_path / "r" / "transparency_report.html").read_text()
    assert Period.calendar_year(dt.date(2027, 1, 1)).coverage(dt.date(2027, 1, 1), dt.date(2027, 12, 31),
                                                              dt.date(2028, 2, 1)) == ""  # fmt: skip


def test_the_provider_file_is_read_strictly_and_part_11_takes_its_answers():
    today = dt.date(2026, 12, 6)
    record = {"provider_name": "P", "service_name": "S", "qualitative": {"automated_means": " Classifiers. "}}
    provider = Provider.from_record(record, today)
    rows = {row.key[0]: row.cells["Value"] for row in dsa_template.qualitative_sheet(provider)}
    assert rows["Qualitative description of the automated means"].text() == "Classifiers."
    assert rows["Safeguards applied to the use of automated means"].status == "empty"
    assert rows["High-level description of the content moderation governance structure"].status == "not_applicable"
    for bad, message in (({"servce_name": "S"}, r"servce_name: unknown field \(did you mean 'service_name'\?\)"),
                         ({"qualitative": {"automated_mean": "x"}}, "unknown answer 'automated_mean'"),
                         ({"qualitative": {"automated_means": "x" * 5001}}, "5001 characters"),
                         ({"qualitative": ["x"]}, "qualitative: expected a mapping")):  # fmt: skip
        with pytest.raises(ValueError, match=message):
            Provider.from_record({**record, **bad}, today)


def test_a_median_of_seconds_is_not_published_as_zero_hours():
    assert dsa_template._median([7 / 3600] * 5, 3, "x").text() == "0.00194"
    assert dsa_template._median([26.123456] * 5, 3, "x").value == 26.1


def test_the_summary_page_shows_the_csv_figures_and_withheld_as_withheld(filed):
    _, out = filed
    tables = parts(out)
    page = (out / "transparency_report.html").read_text()
    summary = page[page.index("<section id='summary'>") : page.index("</section>")]
    figures = re.findall(r"<td class='figure' data-cell='([^']*)'>([^<]*)</td>", summary)
    assert len(figures) >= 20
    for where, shown in figures:
        if not where or " / " in html.unescape(where):
            continue  # a derived share, checked below
        sheet, *key, column = html.unescape(where).split("|")
        rows = tables[sheet]
        names = ("Section", "Indicator", "Scope") if len(key) == 3 else tuple(rows[0])[3:5]
        row = next(r for r in rows if tuple(r[n].strip() for n in names) == tuple(key))
        value, context = next((v, c) for name, v, c in _value_columns(sheet, row) if name.strip() == column)
        assert shown == ("withheld" if context.startswith("withheld") else value or "n/a"), (where, shown, value)
    share = dict((html.unescape(w).split(" / ")[0], s) for w, s in figures if " / " in html.unescape(w))
    assert any(s == "withheld" for s in share.values()) or share
    measures = dict(re.findall(r"<td>([^<]*)</td><td class='figure'[^>]*>([^<]*)</td>", summary))
    assert measures["  of which reach reduced"] == "withheld"  # one demotion: never drawn as 0
    solely, others = (tables["8_automated_means"][i]["Value"] for i in (0, 1))
    expected = f"{int(solely) / (int(solely) + int(others)):.4f}".rstrip("0") if solely and others else "withheld"
    assert measures["Share solely automated"] == expected
    assert "summary_measures.png" in summary and (out / "summary_measures.png").exists()
    assert "corrupt_media" in summary  # what was not scored, and why


def test_the_published_page_and_the_internal_one_read_well_in_a_browser(filed):
    """The report's two pages opened in Chromium at 1280 px (tests/pages.py); the published one
    says no statement was sent when none was, the internal one says it is not to be published
    and heads its columns in words."""
    _, out = filed
    published = (out / "transparency_report.html").read_text()
    assert "None sent in this period" in published and "monitoring.html" in published
    monitoring = (out / "monitoring.html").read_text()
    assert "Internal: not for publication" in monitoring
    assert not re.search(r"<th>[a-z]+_[a-z_]+</th>", monitoring), "a raw column name as a header"
    for page in ("transparency_report.html", "monitoring.html"):
        assert_readable(out / page)


def test_detail_tables_and_charts_never_show_a_withheld_figure_as_zero(tmp_path):
    columns = ["category", "decisions", "suppressed_cells"]
    rows = [("all withheld", 0, 2), ("partly withheld", 5, 1), ("shown", 7, 0)]
    assert report._withheld_rows(columns, rows) == [
        ("all withheld", "withheld", 2), ("partly withheld", "5 + withheld", 1), ("shown", 7, 0)]  # fmt: skip
    # A chart with nothing to draw is not drawn (the page says there is no data); a real zero is.
    assert report._bar_chart(["a", "b"], [None, None], "t", "x", tmp_path, "none.png") is None
    assert report._bar_chart(["a", "b"], [0.0, None], "t" * 200, "x", tmp_path, "zero.png") == "zero.png"


def _official(name: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO((OFFICIAL / name).read_text("utf-8"), newline="")))


def test_every_written_part_has_the_commissions_header_byte_for_byte(filed):
    """Headers against the Commission's own CSV parts (tests/data/dsa_template, SOURCES.md),
    trailing spaces and capitals included."""
    _, out = filed
    official = sorted(path.name for path in OFFICIAL.glob("*.csv"))
    written = sorted(path.name for path in (out / "dsa_template").glob("*.csv"))
    assert len(official) == 11 and written == sorted([*official, "blank_cells.csv"])
    for name in official:
        assert strict_rfc4180((out / "dsa_template" / name).read_bytes())[0] == _official(name)[0], name


# The columns that name a row, by part (0-based), after Applicability (always part of the key).
ROW_KEY_COLUMNS = {"1": (2,), "2": (0, 1, 2), "3": (3, 5), "4": (3,), "5": (3,), "6": (3,), "7": (3, 4, 5),
                   "8": (3, 4, 5), "9": (3, 4, 5), "10": (3, 4, 5), "11": (3,)}  # fmt: skip


def _expanded(part: str, rows: list[list[str]]) -> list[tuple[str, ...]]:
    """The official rows' keys with the template's placeholders spelt out: part 3's "AT, […], SE"
    block once per Member State, parts 8 and 9's "bg / [...] / sv" triples once per language
    (part 8's three mixed triples, Accuracy/bg, Precision/[...], Recall/sv, stand for accuracy,
    precision and recall in turn), part 10's "AT / [...] / SE" once per Member State."""
    keys = [(row[0], *(row[i] for i in ROW_KEY_COLUMNS[part])) for row in rows]
    if part == "3":
        total = [key for key in keys if key[-1] == "TOTAL"]
        block = [key for key in keys if key[-1] == "AT, […], SE"]
        assert len(total) + len(block) == len(keys) == 181
        return total + [(*key[:-1], state) for state in MEMBER_STATES for key in block]
    out, mixed = [], iter((ACCURACY, PRECISION, RECALL))
    index = 0
    while index < len(keys):
        key = keys[index]
        if key[-1] in ("bg", "AT"):
            triple = keys[index : index + 3]
            assert [k[-1] for k in triple] in (["bg", "[...]", "sv"], ["AT", "[...]", "SE"]), triple
            names = LANGUAGES if key[-1] == "bg" else MEMBER_STATES
            indicator = key[2] if len({k[2] for k in triple}) == 1 else next(mixed)
            out += [(*key[:2], indicator, name) for name in names]
            index += 3
        else:
            out.append(key)
            index += 1
    return out


def test_every_part_has_the_commissions_rows_in_the_commissions_order(filed):
    """Row keys against the Commission's files: every official row, in order, placeholders
    spelt out; an "Other" row may repeat, once per description (Annex II)."""
    _, out = filed
    assert (len(MEMBER_STATES), MEMBER_STATES[0], MEMBER_STATES[-1]) == (27, "AT", "SE")
    assert (len(LANGUAGES), LANGUAGES[0], LANGUAGES[-1], sorted(LANGUAGES) == list(LANGUAGES)) == (24, "bg", "sv", True)
    for path in sorted(OFFICIAL.glob("*.csv")):
        part = path.name.split("_")[0]
        ours = [(row[0], *(row[i] for i in ROW_KEY_COLUMNS[part]))
                for row in strict_rfc4180((out / "dsa_template" / path.name).read_bytes())[1:]]  # fmt: skip
        collapsed = [key for i, key in enumerate(ours) if i == 0 or key != ours[i - 1] or "KEYWORD_OTHER" not in key]
        # Annex II's own additions: accuracy, precision and recall per automated means (part 8)
        added = [key for key in collapsed if part == "8" and key[-1].startswith("Total number - ")]
        assert len(added) == (12 if part == "8" else 0), path.name
        assert [key for key in collapsed if key not in added] == _expanded(part, _official(path.name)[1:]), path.name
    names = strict_rfc4180((out / "dsa_template" / "2_categories_names.csv").read_bytes())
    assert [row[:3] for row in names] == [row[:3] for row in _official("2_categories_names.csv")]
