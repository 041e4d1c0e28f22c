"""Full exports whose unchanged lines are not parsed (pipelines/ingest/lines.py).

Each sequence of exports is ingested twice: as the pipeline does, and with the line path
switched off (`split_lines` finds nothing, so every row is parsed and compared).  Raw with
its line hashes, the quarantine, record presence and each export's counts must be
identical.  Each test also asserts how many rows of each orders file were parsed, so none
passes by never taking (or always taking) the line path.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from datetime import date
from pathlib import Path

import duckdb
import pytest

import pipelines.ingest.clean as clean
from pipelines.ingest import discover_exports, exports_to_ingest, ingest_export
from pipelines.ingest.lines import line_signature
from pipelines.schemas import TABLES
from pipelines.sources import DEFAULT_EMAIL_SALT
from pipelines.warehouse_tables import create_python_owned_tables
from tests.exports import write_csv, write_manifest

HEADER = ["order_id", "customer_id", "order_date", "amount", "status"]
NIGHT_1 = [
    ["O1", "007", "2026-01-01", "10", "pending"],
    ["O2", "008", "2026-01-02", "20", "completed"],
    ["O3", "007", "2026-01-03", "30", "completed"],
    ["O4", "008", "2026-01-04", "40", "completed"],
    *([f"O{i}", "007", f"2026-01-0{i}", f"{i}0", "completed"] for i in range(5, 9)),
]
# O1 completed, O3 written another way (same values), O4 gone, O9 new: lines 2, 4 and 9
# of the file are parsed, the other five (O2, O5-O8) are not.
NIGHT_2 = [
    ["O1", "007", "2026-01-01", "10", "completed"],
    NIGHT_1[1],
    ["O3", "007", "2026-01-03", "30.00", "completed"],
    *NIGHT_1[4:],
    ["O9", "008", "2026-01-09", "90", "completed"],
]


# Customers 001-008, each with an email (the identity crosswalk records its hash).
CUSTOMERS = [[f"00{i}", f"c{i}@x.com", f"2025-0{i}-01"] for i in range(1, 9)]


def _night(
    root: Path,
    day: str,
    orders: list[list[str]],
    header: list[str] = HEADER,
    mode: str = "full",
    text: str | None = None,
    customers: list[list[str]] = CUSTOMERS,
) -> Path:
    folder = root / day
    write_csv(folder, "customers.csv", ["customer_id", "email", "signup_date"], customers)
    write_csv(
        folder,
        "referrals.csv",
        ["referral_id", "referrer_customer_id", "sent_at", "status"],
        [["R1", "007", "2026-02-01", "sent"]],
    )
    path = write_csv(folder, "orders.csv", header, orders)
    rows = None
    if text is not None:
        path.write_text(text)
        rows = {"orders.csv": {"rows": len(orders)}}
    write_manifest(folder, mode=mode, overrides=rows)
    return folder


def _ingest(
    root: Path,
    monkeypatch,
    lines: bool,
    store: Path | None = None,
    counted: str = "orders",
    salts: dict[str, str] | None = None,
) -> tuple[dict, dict[str, int]]:
    """Raw, quarantine, presence, the identity crosswalk and export counts after every
    export under root not in `store` yet (default: a new store in memory), and the rows
    parsed per "<export date>/<counted>.csv" (the whole file, or its changed lines).
    ``salts``: export date -> email salt (default: the default salt)."""
    parsed: dict[str, int] = {}
    real_read, real_split = clean._read_typed, clean.split_lines

    def read(con, folder, path, table):
        loaded = real_read(con, folder, path, table)
        if loaded is not None and table.name == counted:
            (rows,) = con.execute(f"SELECT count(*) FROM {loaded[0]}").fetchone()
            parsed[f"{folder.export_date}/{counted}.csv"] = rows
        return loaded

    monkeypatch.setattr(clean, "_read_typed", read)
    monkeypatch.setattr(clean, "split_lines", real_split if lines else lambda *a: None)
    con = duckdb.connect(str(store) if store else ":memory:")
    con.execute("SET TimeZone = 'UTC'")
    create_python_owned_tables(con)
    for folder in exports_to_ingest(con, discover_exports(root)):
        salt = (salts or {}).get(str(folder.export_date), DEFAULT_EMAIL_SALT)
        ingest_export(con, folder, 0.5, "USD", salt)
    snap = {
        name: con.execute(f"SELECT * FROM raw.{name} ORDER BY ALL").fetchall() for name in TABLES
    }
    for name in ("quarantine", "record_presence", "customer_identities"):
        snap[name] = con.execute(f"SELECT * FROM raw.{name} ORDER BY ALL").fetchall()
    snap["exports"] = [
        (day, json.loads(tables)["orders"])
        for day, tables in con.execute(
            "SELECT export_date, tables FROM raw.exports ORDER BY 1"
        ).fetchall()
    ]
    con.close()
    monkeypatch.undo()
    return snap, parsed


def _same_either_way(root: Path, monkeypatch, **options) -> tuple[dict, dict[str, int]]:
    with_lines, parsed = _ingest(root, monkeypatch, lines=True, **options)
    every_row, _ = _ingest(root, monkeypatch, lines=False, **options)
    for name in every_row:
        assert with_lines[name] == every_row[name], name
    return with_lines, parsed


def _line_hash(path: Path, line_number: int) -> int:
    """DuckDB's hash of the file's line (1 = header) with its signature, from Python's
    own reading of the file."""
    line = path.read_text().splitlines()[line_number - 1]
    signature = line_signature(TABLES["orders"], path)
    return duckdb.connect().execute("SELECT hash(?, hash(?))", [line, signature]).fetchone()[0]


def _orders(snap: dict, day: str) -> dict[str, tuple]:
    """order_id -> (status, amount, _line_number, _line_hash) of the versions of `day`."""
    cols = ["order_id", *(c.name for c in TABLES["orders"].columns[1:])]
    meta = ["_export_date", "_line_number", "_extra", "_source_system", "_source_file"]
    names = [*cols, *meta, "_row_hash", "_superseded_on", "_line_hash"]
    out = {}
    for row in snap["orders"]:
        r = dict(zip(names, row, strict=True))
        if str(r["_export_date"]) == day:
            out[r["order_id"]] = (r["status"], r["amount"], r["_line_number"], r["_line_hash"])
    return out


def test_only_the_changed_lines_are_parsed(tmp_path, monkeypatch):
    _night(tmp_path, "2026-11-21", NIGHT_1)
    night_2 = _night(tmp_path, "2026-11-22", NIGHT_2)
    _night(tmp_path, "2026-11-23", NIGHT_2)
    snap, parsed = _same_either_way(tmp_path, monkeypatch)
    # night 1: every row; night 2: O1, O3 and O9 only; night 3: nothing
    assert parsed == {
        "2026-11-21/orders.csv": 8,
        "2026-11-22/orders.csv": 3,
        "2026-11-23/orders.csv": 0,
    }
    path = night_2 / "orders.csv"
    # the new versions: O1 (line 2) and O9 (line 9), with their lines' numbers and hashes
    assert _orders(snap, "2026-11-22") == {
        "O1": ("completed", 10, 2, _line_hash(path, 2)),
        "O9": ("completed", 90, 9, _line_hash(path, 9)),
    }
    # O3 was delivered unchanged by another line: its version has that line's hash now
    o3 = [r for r in snap["orders"] if r[0] == "O3"]
    assert len(o3) == 1 and o3[0][-1] == _line_hash(path, 4)
    assert snap["record_presence"] == [("orders", "O4", date(2026, 11, 22), False)]
    counts = {
        str(day): tuple(c[k] for k in ("rows_read", "rows_new", "rows_changed", "rows_unchanged"))
        + (c["keys_absent"],)
        for day, c in snap["exports"]
    }
    assert counts == {
        "2026-11-21": (8, 8, 0, 0, 0),
        "2026-11-22": (8, 1, 1, 6, 1),
        "2026-11-23": (8, 0, 0, 8, 0),
    }


def test_each_version_holds_the_hash_of_its_line(tmp_path, monkeypatch):
    night_1 = _night(tmp_path, "2026-11-21", NIGHT_1)
    snap, _ = _ingest(tmp_path, monkeypatch, lines=True)
    path = night_1 / "orders.csv"
    stored = _orders(snap, "2026-11-21")
    assert {k: (ln, h) for k, (_, _, ln, h) in stored.items()} == {
        f"O{i}": (i + 1, _line_hash(path, i + 1)) for i in range(1, 9)
    }


def _quoted_break(rows: list[list[str]]) -> str:
    """The orders with a quoted line break in the status of O2 (one record, two lines)."""
    lines = [",".join(HEADER)] + [",".join(r) for r in rows]
    lines[2] = lines[2].replace("completed", '"compl\neted"')
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("night_2", "text", "parsed"),
    [
        # an unchanged line twice: O2 delivered twice, quarantined by the full path
        ([*NIGHT_2, NIGHT_1[1]], None, 9),
        # a changed line that is not clean: only the text path reads the file, and
        # quarantines the row with its own line number
        ([*NIGHT_2[:-1], ["O9", "008", "2026-01-09", "ninety", "completed"]], None, None),
        # a key delivered both by an unchanged line and by a changed one
        ([*NIGHT_2, ["O2", "008", "2026-01-02", "21", "completed"]], None, 9),
        # a record over two lines: each line is no record, the full path parses the file
        (NIGHT_2, _quoted_break(NIGHT_2), 8),
    ],
    ids=["unchanged-line-twice", "bad-changed-line", "key-twice", "quoted-line-break"],
)
def test_what_the_line_path_cannot_tell_goes_the_full_way(
    tmp_path, monkeypatch, night_2, text, parsed
):
    _night(tmp_path, "2026-11-21", NIGHT_1)
    _night(tmp_path, "2026-11-22", night_2, text=text)
    snap, counts = _same_either_way(tmp_path, monkeypatch)
    # the whole night-2 file was parsed (the text path's reading is not counted)
    assert counts.get("2026-11-22/orders.csv") == parsed
    if parsed == 9:  # a key delivered twice: quarantined by the full path
        assert {(q[1], q[5]) for q in snap["quarantine"]} == {
            ("orders.csv", "duplicate key within export")
        }
    if "ninety" in str(night_2):
        assert [(q[1], q[2], q[3], q[4]) for q in snap["quarantine"]] == [
            ("orders.csv", 9, "amount", "ninety")
        ]


def test_a_new_header_costs_one_full_night(tmp_path, monkeypatch):
    """Another column order: no line keeps its hash; the night parses every row and gives
    the unchanged versions their new lines' hashes, and the next night parses none."""
    _night(tmp_path, "2026-11-21", NIGHT_1)
    order = [4, 0, 1, 2, 3]
    moved = [[row[i] for i in order] for row in NIGHT_2]
    night_2 = _night(tmp_path, "2026-11-22", moved, header=[HEADER[i] for i in order])
    _night(tmp_path, "2026-11-23", moved, header=[HEADER[i] for i in order])
    snap, parsed = _same_either_way(tmp_path, monkeypatch)
    assert parsed == {
        "2026-11-21/orders.csv": 8,
        "2026-11-22/orders.csv": 8,
        "2026-11-23/orders.csv": 0,
    }
    path = night_2 / "orders.csv"
    o2 = [r for r in snap["orders"] if r[0] == "O2"]
    assert len(o2) == 1 and o2[0][-1] == _line_hash(path, 3)


def test_an_incremental_export_between_full_ones(tmp_path, monkeypatch):
    """Versions from an incremental export have no line hash: the next full export parses
    their lines, finds them unchanged and gives them the hash; the one after parses none."""
    _night(tmp_path, "2026-11-21", NIGHT_1)
    _night(tmp_path, "2026-11-22", [NIGHT_2[0]], mode="incremental")
    full = [NIGHT_2[0], *NIGHT_1[1:]]
    _night(tmp_path, "2026-11-23", full)
    _night(tmp_path, "2026-11-24", full)
    _, parsed = _same_either_way(tmp_path, monkeypatch)
    assert parsed == {
        "2026-11-21/orders.csv": 8,
        "2026-11-22/orders.csv": 1,
        "2026-11-23/orders.csv": 1,
        "2026-11-24/orders.csv": 0,
    }


def test_a_late_export_parses_every_row(tmp_path, monkeypatch):
    """An export older than a stored one is compared row by row (then the newer export is
    ingested again after it, with its lines)."""
    exports = tmp_path / "exports"
    _night(exports, "2026-11-21", NIGHT_1)
    _night(exports, "2026-11-23", NIGHT_2)
    snaps = []
    for lines, store in ((True, tmp_path / "a.duckdb"), (False, tmp_path / "b.duckdb")):
        _ingest(exports, monkeypatch, lines, store)
        _night(exports, "2026-11-22", NIGHT_2)  # arrives late
        snap, parsed = _ingest(exports, monkeypatch, lines, store)
        shutil.rmtree(exports / "2026-11-22")
        snaps.append(snap)
        if lines:
            assert parsed == {"2026-11-22/orders.csv": 8, "2026-11-23/orders.csv": 0}
    assert snaps[0] == snaps[1]


def _email_hashes(snap: dict) -> dict[str, set[str]]:
    """customer id -> the email hashes the crosswalk holds for it."""
    out: dict[str, set[str]] = {}
    for system, source_id, customer_id, email_hash, _, _ in snap["customer_identities"]:
        assert (system, source_id) == ("contract", customer_id)
        out.setdefault(customer_id, set()).add(email_hash)
    return out


def _salted(salt: str, email: str) -> str:
    return hashlib.sha256((salt + email).encode()).hexdigest()


def test_customers_parse_only_their_changed_lines_and_the_crosswalk_sees_them(
    tmp_path, monkeypatch
):
    """003's email changes and 009 is new on night 2: two customer lines are parsed, and
    the crosswalk gets 003's new email hash and 009's, as when every line is parsed."""
    changed = [CUSTOMERS[0], CUSTOMERS[1], ["003", "new3@x.com", "2025-03-01"], *CUSTOMERS[3:]]
    changed.append(["009", "c9@x.com", "2025-09-01"])
    _night(tmp_path, "2026-11-21", NIGHT_1)
    _night(tmp_path, "2026-11-22", NIGHT_1, customers=changed)
    _night(tmp_path, "2026-11-23", NIGHT_1, customers=changed)
    snap, parsed = _same_either_way(tmp_path, monkeypatch, counted="customers")
    assert parsed == {
        "2026-11-21/customers.csv": 8,
        "2026-11-22/customers.csv": 2,
        "2026-11-23/customers.csv": 0,
    }
    hashes = _email_hashes(snap)
    assert hashes["003"] == {_salted(DEFAULT_EMAIL_SALT, e) for e in ("c3@x.com", "new3@x.com")}
    assert hashes["009"] == {_salted(DEFAULT_EMAIL_SALT, "c9@x.com")}
    assert sum(len(h) for h in hashes.values()) == 10


def test_a_new_salt_reaches_a_customer_absent_on_its_night(tmp_path, monkeypatch):
    """The salt changes on night 2, when 005 is not delivered; 005 comes back unchanged on
    night 3. Its line was hashed under the old salt's crosswalk, so it is parsed again and
    its email hash recorded with the new salt (every other customer's was on night 2)."""
    _night(tmp_path, "2026-11-21", NIGHT_1)
    _night(tmp_path, "2026-11-22", NIGHT_1, customers=CUSTOMERS[:4] + CUSTOMERS[5:])
    _night(tmp_path, "2026-11-23", NIGHT_1)
    salts = {"2026-11-21": "old", "2026-11-22": "new", "2026-11-23": "new"}
    snap, parsed = _same_either_way(tmp_path, monkeypatch, counted="customers", salts=salts)
    # night 2 parses every customer (no line is known after a new salt), night 3 only 005
    assert parsed == {
        "2026-11-21/customers.csv": 8,
        "2026-11-22/customers.csv": 7,
        "2026-11-23/customers.csv": 1,
    }
    # (a new salt keeps each source id's identity, without its email hash: None)
    assert _email_hashes(snap) == {
        f"00{i}": {None, _salted("new", f"c{i}@x.com")} for i in range(1, 9)
    }
