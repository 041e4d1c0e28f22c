"""Typeform's responses CSV as downloaded: tests/fixtures/sources/typeform/2024-06-01 holds
responses.csv (24 responses: `#`, the NPS question, a free-text question, the hidden field
`email`, Response Type, Start/Stage/Submit Date (UTC), Network ID, Tags) next to the shop's
own customers.csv (C01..C24) and orders.csv in the contract layout.  Every expected value
below is worked out by hand from those files.

Lines of responses.csv (header = line 1):
  2 ann 10 (2024-05-01), 9 ann 6 (2024-05-20): the latest answer is 6
  3 " Cara@Example.COM " 9: cara (C03) under another case and blanks
  6 a partial response (never submitted), 7 submitted without an NPS answer: skipped
  8 stranger@example.com: nobody's email, quarantined
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime
from pathlib import Path

import duckdb
import pytest

from pipelines.ingest import ExportRefused
from pipelines.sources import DEFAULT_EMAIL_SALT
from tests.exports import write_csv
from tests.source_runs import assert_no_personal_data, ingested, ingested_once, run_once

FIXTURE = Path(__file__).parent / "fixtures" / "sources" / "typeform"
DAY = "2024-06-01"
Q_NPS = "How likely are you to recommend Acme to a friend or colleague?"
Q_WHY = "What is the main reason for your score?"
TOKEN = "typeform:q7m2x9k4w1r8t5y3u6i0o2p4a"  # + the fixture's 2 digits + zz3b
TAIL = ["Response Type", "Start Date (UTC)", "Stage Date (UTC)", "Submit Date (UTC)",
        "Network ID", "Tags"]  # fmt: skip


def token(n: int) -> str:
    return f"{n:02d}".rjust(32, "k")


def export_with(tmp_path: Path, header: list[str], rows: list[list], options=None) -> Path:
    folder = tmp_path / DAY
    folder.mkdir(parents=True)
    for name in ("customers.csv", "orders.csv"):
        shutil.copy(FIXTURE / DAY / name, folder)
    write_csv(folder, "responses.csv", header, rows)
    if options is not None:
        (folder / "manifest.json").write_text(
            json.dumps({"mode": "full", "options": {"typeform": options}})
        )
    return tmp_path


@pytest.fixture(scope="module")
def raw():
    """The fixture export ingested once (threshold 5%, base USD)."""
    yield from ingested_once(FIXTURE)


def test_responses_are_recognised_and_counted(raw):
    _, result = raw
    assert result.sources == {
        "typeform": {
            "files": {"responses.csv": "typeform/responses"},
            "rows_read": 24,
            "rows_skipped": 2,
            "skipped_reasons": {
                "partial response (not submitted)": 1,
                "submitted without an answer to the NPS question": 1,
            },
            "tables": {"surveys": {"rows_mapped": 22, "rows_quarantined": 1, "rows_loaded": 21}},
        }
    }


def test_the_recommend_question_is_the_nps(raw):
    con, _ = raw
    assert con.execute(
        "SELECT _line_number, response_id, customer_id, responded_at, nps, csat "
        "FROM raw.surveys WHERE _line_number IN (2, 3, 9) ORDER BY 1"
    ).fetchall() == [
        (2, f"{TOKEN}01zz3b", "C01", datetime(2024, 5, 1, 10, 2, 10), 10, None),
        (3, f"{TOKEN}02zz3b", "C03", datetime(2024, 5, 2, 11, 1, 30), 9, None),
        (9, f"{TOKEN}08zz3b", "C01", datetime(2024, 5, 20, 18, 1), 6, None),
    ]
    # 0 (ivy, line 12) is an answer, not a blank
    assert con.execute("SELECT nps FROM raw.surveys WHERE customer_id = 'C09'").fetchone() == (0,)
    assert con.execute("SELECT sum(nps), count(*) FROM raw.surveys").fetchone() == (149, 21)


def test_respondent_under_another_case_is_one_customer(raw):
    con, _ = raw
    # " Cara@Example.COM " links to the contract customer C03: one identity, no new person
    assert con.execute(
        "SELECT source_system, source_id, customer_id FROM raw.customer_identities "
        "WHERE email_hash = sha256(? || 'cara@example.com')",
        [DEFAULT_EMAIL_SALT],
    ).fetchall() == [("contract", "C03", "C03")]
    assert con.execute("SELECT count(*) FROM raw.customer_identities").fetchone() == (24,)


def test_unknown_respondent_is_quarantined_with_file_and_line(raw):
    con, _ = raw
    (row,) = con.execute(
        "SELECT file, line_number, column_name, reason, source_system, raw_row FROM raw.quarantine"
    ).fetchall()
    assert row[:5] == ("responses.csv", 8, "customer_id", "unknown customer", "typeform")
    assert json.loads(row[5])["email"] == "stranger@example.com"


def test_question_columns_stay_in_extra_network_id_does_not(raw):
    con, _ = raw
    keys = con.execute("SELECT DISTINCT unnest(json_keys(_extra)) FROM raw.surveys").fetchall()
    assert sorted(keys) == [(Q_NPS,), (Q_WHY,)]
    assert con.execute("SELECT _extra FROM raw.surveys WHERE _line_number = 5").fetchone() == (
        json.dumps({Q_NPS: "3", Q_WHY: "Parcel arrived damaged"}, separators=(",", ":")),
    )


GERMAN = "Wie wahrscheinlich ist es, dass Sie uns einem Freund empfehlen?"
GERMAN_ROWS = [
    [token(1), "9", "ann@example.com", "completed", "2024-05-01 10:00:00", "",
     "2024-05-01 10:01:00", "n1", ""],
    [token(2), "4", "bob@example.com", "completed", "2024-05-02 10:00:00", "",
     "2024-05-02 10:01:00", "n2", ""],
]  # fmt: skip


def test_without_a_recommend_header_the_export_is_refused(tmp_path):
    root = export_with(tmp_path, ["#", GERMAN, "email", *TAIL], GERMAN_ROWS)
    with pytest.raises(ExportRefused) as refused:
        ingested(root)
    assert refused.value.file == "responses.csv"
    assert "no NPS question" in str(refused.value)


def test_manifest_names_the_nps_question(tmp_path):
    root = export_with(
        tmp_path,
        ["#", GERMAN, "email", *TAIL],
        GERMAN_ROWS,
        # case and surrounding blanks do not matter
        options={"nps_question": f"  {GERMAN.upper()} "},
    )
    con, result = ingested(root)
    assert con.execute("SELECT customer_id, nps FROM raw.surveys ORDER BY 1").fetchall() == [
        ("C01", 9),
        ("C02", 4),
    ]
    assert result.rows_quarantined == 0
    con.close()


def test_manifest_naming_no_column_and_a_missing_email(tmp_path):
    rows = [*GERMAN_ROWS, [token(3), "7", "", "completed", "2024-05-03 10:00:00", "",
                           "2024-05-03 10:01:00", "n3", ""]]  # fmt: skip
    root = export_with(tmp_path, ["#", Q_NPS, "email", *TAIL], rows)
    con, _ = ingested(root, threshold=1.0)
    assert con.execute("SELECT line_number, reason FROM raw.quarantine").fetchall() == [
        (4, "no respondent email (hidden field email)")
    ]
    con.close()
    other = tmp_path / "other"
    root = export_with(other, ["#", Q_NPS, "email", *TAIL], GERMAN_ROWS, {"nps_question": "NPS"})
    con, _ = ingested(root, threshold=1.0)
    reason = "no column of this file is the NPS question named in manifest.json"
    assert con.execute("SELECT DISTINCT reason FROM raw.quarantine").fetchall() == [
        (reason + " (options.typeform.nps_question)",)
    ]
    con.close()


def test_first_recommend_question_wins(tmp_path):
    header = ["#", Q_NPS, "Would you recommend our app? (yes/no)", "email", *TAIL]
    rows = [[token(1), "8", "no", "ann@example.com", "completed", "2024-05-01 10:00:00", "",
             "2024-05-01 10:01:00", "n1", ""]]  # fmt: skip
    con, _ = ingested(export_with(tmp_path, header, rows))
    assert con.execute("SELECT nps FROM raw.surveys").fetchall() == [(8,)]
    con.close()


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory) -> tuple[Path, str]:
    """The whole nightly job on the fixture export, once for the module."""
    return run_once(tmp_path_factory, FIXTURE)


def test_marts_of_the_tricky_rows(warehouse):
    con = duckdb.connect(str(warehouse[0]), read_only=True)
    try:
        features = {
            r[0]: r[1:]
            for r in con.execute(
                "SELECT customer_id, nps_latest, nps_avg, nps_class, advocate_type "
                "FROM marts.customer_features"
            ).fetchall()
        }
        roi = con.execute(
            "SELECT referrers, referrals_sent, referrals_converted "
            "FROM marts.referral_roi_by_segment WHERE segment_id = 'all'"
        ).fetchone()
    finally:
        con.close()
    assert len(features) == 24
    # ann: 10 then 6 (latest): a detractor now, average 8
    assert features["C01"] == (6, 8.0, "detractor", "none")
    assert features["C03"] == (9, 9.0, "promoter", "passive")
    assert features["C04"] == (3, 3.0, "detractor", "none")
    # eve's response was never submitted, finn skipped the question: no NPS
    assert features["C05"] == (None, None, None, "none")
    assert features["C06"] == (None, None, None, "none")
    assert features["C09"] == (0, 0.0, "detractor", "none")
    assert roi == (0, 0, 0)


def test_no_personal_data_reaches_staging_marts_or_logs(warehouse):
    # the free-text answers (kept in raw _extra only), Network IDs and emails stay out
    personal = {"Fast delivery", "Parcel arrived damaged", "Never again", "5e01a7c9b1"}
    assert_no_personal_data(*warehouse, personal)


def test_manifest_options_must_be_objects(tmp_path):
    root = export_with(tmp_path, ["#", Q_NPS, "email", *TAIL], GERMAN_ROWS)
    (root / DAY / "manifest.json").write_text(json.dumps({"options": {"typeform": "NPS"}}))
    with pytest.raises(ExportRefused) as refused:
        ingested(root)
    assert (refused.value.file, refused.value.reason) == (
        "manifest.json",
        "options must map system names to objects of settings",
    )
