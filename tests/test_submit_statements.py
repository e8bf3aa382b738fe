"""Statements of reasons sent to the Transparency Database (a stand-in on loopback): batches of
at most 100, rejections dead-lettered, retries capped, lost answers found again, nothing sent
twice."""

from __future__ import annotations

import shutil

import pytest

from enforcement.statements import StatementOfReasons
from tools import submit_statements
from tools.submit_statements import backoff_seconds
from warehouse.embedded import write_catalog
from warehouse.reader import open_reader

from .conftest import seed_table
from .test_statements import _statement
from .transparency_database import TransparencyDatabase

TOKEN = "7|stand-in-token-for-tests"


def _seed(warehouse, puids: list[str], decision_ids: list[str] | None = None) -> None:
    rows = [
        {
            **StatementOfReasons(decision_id, {**_statement(0.995, content_id=puid), "puid": puid}).to_row(),
            "run_id": "1-upload",
        }
        for puid, decision_id in zip(puids, decision_ids or [f"d-{p}" for p in puids], strict=True)
    ]
    seed_table(warehouse, "statements_of_reasons", rows)
    write_catalog(str(warehouse))


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    """A warehouse holding 250 statements of reasons, as the batch job writes them."""
    warehouse = tmp_path_factory.mktemp("seeded") / "warehouse"
    _seed(warehouse, [f"c{i:03d}" for i in range(250)])
    return warehouse


@pytest.fixture
def warehouse(seeded, tmp_path):
    return shutil.copytree(seeded, tmp_path / "warehouse")


@pytest.fixture
def database():
    server = TransparencyDatabase(TOKEN).start()
    yield server
    server.stop()


@pytest.fixture
def token_file(tmp_path):
    path = tmp_path / "token"
    path.write_text(f"  {TOKEN}\n")
    return path


def _submit(warehouse, database, token_file, *extra, sleeps: list | None = None) -> int:
    argv = ["--warehouse", str(warehouse), "--endpoint", database.url, "--token-file", str(token_file), *extra]
    return submit_statements.run(argv, sleep=(sleeps if sleeps is not None else []).append)


def _rows(warehouse, sql: str) -> list[dict]:
    return open_reader(str(warehouse)).rows(sql)


def _statuses(warehouse) -> dict[str, int]:
    rows = _rows(warehouse, "select status, count(*) as n from statement_submissions group by status")
    return {r["status"]: r["n"] for r in rows}


def test_statements_go_in_batches_of_100_and_a_rerun_sends_nothing(warehouse, database, token_file, capsys):
    assert _submit(warehouse, database, token_file) == 0
    assert database.requests == [100, 100, 50]
    assert len(database.stored) == 250
    rows = _rows(warehouse, "select * from statement_submissions")
    assert {r["status"] for r in rows} == {"accepted"} and len({r["sor_id"] for r in rows}) == 250
    by_puid = {r["puid"]: r for r in rows}
    assert {p: r["uuid"] for p, r in by_puid.items()} == {p: s["uuid"] for p, s in database.stored.items()}
    assert all(r["attempts"] == 1 and r["endpoint"] == database.url for r in rows)
    assert "permalink" in rows[0]["reply"]
    out = capsys.readouterr().out
    assert "statements read: 250; already sent (skipped): 0; accepted now: 250" in out

    assert _submit(warehouse, database, token_file) == 0
    assert database.requests == [100, 100, 50]  # nothing new reached the database
    assert "statements read: 250; already sent (skipped): 250; accepted now: 0" in capsys.readouterr().out
    assert _statuses(warehouse) == {"accepted": 250}


def test_an_invalid_statement_is_dead_lettered_and_the_rest_of_its_batch_resent(tmp_path, database, token_file):
    warehouse = tmp_path / "warehouse"
    # A statement written before the builder checked the puid's alphabet: the database takes
    # only letters, digits, - and _.
    _seed(warehouse, ["c001", "c002", "c003.jpg", "c004", "c005"])
    assert _submit(warehouse, database, token_file) == 0
    assert database.requests == [5, 4]  # refused whole, then sent without the one it named
    assert sorted(database.stored) == ["c001", "c002", "c004", "c005"]
    assert _statuses(warehouse) == {"accepted": 4, "rejected": 1}
    (dead,) = _rows(warehouse, "select * from dead_letter")
    assert (dead["step"], dead["reason"]) == ("submit_statements", "rejected_statement")
    assert "The puid format is invalid." in dead["error"] and '"puid": "c003.jpg"' in dead["payload"]
    (rejected,) = _rows(warehouse, "select * from statement_submissions where status = 'rejected'")
    assert rejected["puid"] == "c003.jpg" and rejected["uuid"] is None

    assert _submit(warehouse, database, token_file) == 0
    assert database.requests == [5, 4]  # a rejected statement waits for the builder's fix
    assert _submit(warehouse, database, token_file, "--resend_rejected") == 0
    assert database.requests == [5, 4, 1]
    assert _statuses(warehouse) == {"accepted": 4, "rejected": 1}  # the same outcome, one row


def test_a_second_statement_with_a_taken_puid_is_rejected_here_not_passed_for_stored(tmp_path, database, token_file):
    warehouse = tmp_path / "warehouse"
    # Two statements with one puid (written when the puid was the upload's id, before it became
    # the decision's): the database holds one statement per puid, and would answer the second
    # with existing_puids.
    _seed(warehouse, ["c001", "c001", "c002"], ["d-auto", "d-review", "d-other"])
    assert _submit(warehouse, database, token_file) == 0
    assert database.requests == [2] and sorted(database.stored) == ["c001", "c002"]
    rows = _rows(warehouse, "select decision_id, status from statement_submissions order by decision_id")
    assert [(r["decision_id"], r["status"]) for r in rows] == [
        ("d-auto", "accepted"), ("d-other", "accepted"), ("d-review", "rejected")
    ]  # fmt: skip
    (dead,) = _rows(warehouse, "select error from dead_letter")
    assert "puid 'c001' is the puid of statement" in dead["error"]


def test_transient_failures_are_retried_honouring_retry_after(warehouse, database, token_file):
    database.fail_next(1, 503)
    database.fail_next(1, 429, retry_after="7")
    sleeps = []
    assert _submit(warehouse, database, token_file, sleeps=sleeps) == 0
    assert sleeps == [1.0, 7.0]  # the first backoff step, then what the server asked for
    assert database.requests == [100, 100, 100, 100, 50]
    assert len(database.stored) == 250 and _statuses(warehouse) == {"accepted": 250}
    attempts = _rows(warehouse, "select attempts, count(*) as n from statement_submissions group by attempts")
    assert {r["attempts"]: r["n"] for r in attempts} == {3: 100, 1: 150}


def test_retries_are_capped_and_a_rerun_sends_what_was_left(warehouse, database, token_file, capsys):
    database.fail_next(3, 503)
    sleeps = []
    assert _submit(warehouse, database, token_file, "--max_attempts", "3", sleeps=sleeps) == 1
    assert sleeps == [1.0, 2.0]  # no wait after the last attempt
    assert "unsent after retries: 100" in capsys.readouterr().out
    assert _statuses(warehouse) == {"accepted": 150}
    assert _submit(warehouse, database, token_file) == 0
    assert database.requests[-1:] == [100]
    assert len(database.stored) == 250 and _statuses(warehouse) == {"accepted": 250}


@pytest.mark.parametrize("lost", ["lost_answer_drop", "lost_answer_500"])
def test_a_batch_stored_without_an_answer_is_recorded_already_present_on_the_rerun(
    warehouse, database, token_file, lost
):
    database.fail_next(1, lost)
    assert _submit(warehouse, database, token_file, "--max_attempts", "1") == 1
    assert len(database.stored) == 250  # the first batch was stored, its answer lost
    assert _statuses(warehouse) == {"accepted": 150}
    uuids = {puid: s["uuid"] for puid, s in database.stored.items()}

    assert _submit(warehouse, database, token_file) == 0
    assert database.requests[-1:] == [100]  # answered with existing_puids; nothing left to resend
    assert _statuses(warehouse) == {"accepted": 150, "already_present": 100}
    assert {puid: s["uuid"] for puid, s in database.stored.items()} == uuids  # nothing stored twice


def test_a_lost_answer_is_settled_by_the_retry_in_the_same_run(warehouse, database, token_file):
    database.fail_next(1, "lost_answer_drop")
    assert _submit(warehouse, database, token_file) == 0
    assert database.requests == [100, 100, 100, 50]
    assert _statuses(warehouse) == {"already_present": 100, "accepted": 150}


def test_a_refused_token_stops_the_run_and_records_nothing(warehouse, database, tmp_path, capsys):
    wrong = tmp_path / "wrong_token"
    wrong.write_text("7|not-the-token\n")
    assert _submit(warehouse, database, wrong) == 2
    captured = capsys.readouterr()
    assert "refused the token (HTTP 401: Unauthenticated.)" in captured.err
    assert "not-the-token" not in captured.out + captured.err
    assert database.requests == [100] and not database.stored
    assert _rows(warehouse, "select count(*) as n from statement_submissions") == [{"n": 0}]


@pytest.mark.parametrize("content", [None, " \n"])
def test_a_missing_or_empty_token_file_is_a_clear_error(warehouse, database, tmp_path, capsys, content):
    path = tmp_path / "token"
    if content is not None:
        path.write_text(content)
    with pytest.raises(SystemExit) as stopped:
        _submit(warehouse, database, path)
    assert stopped.value.code == 2
    assert f"--token-file {path}: " + ("empty" if content else "cannot read it") in capsys.readouterr().err
    assert database.requests == []


def test_backoff_doubles_to_a_cap_and_takes_the_servers_word():
    assert [backoff_seconds(n, None) for n in (1, 2, 3, 8)] == [1.0, 2.0, 4.0, 60.0]
    assert backoff_seconds(1, "30") == 30.0
    assert backoff_seconds(2, "Wed, 21 Oct 2026 07:28:00 GMT") == 2.0  # a date: the own schedule
