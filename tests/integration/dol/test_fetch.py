"""Issue 22, items 1 and 4: the nightly fetch from DOL's EFAST2 server, against a real local HTTP
server (tests/integration/dol/dol_server.py) and the production HTTP client (httpx).

Each archive costs one conditional request; only a changed archive is downloaded (to a temporary
name, renamed when whole) and imported; transient failures are retried with backoff; a year DOL
has not published is reported without failing the others; an unchanged night writes nothing to
the database (no transaction id is assigned on the whole server)."""

from __future__ import annotations

from datetime import date

import psycopg
import pytest
from psycopg import sql

from ple.dol import fetch, importer
from ple.sqlutil import raw_template
from ple.ui import pages
from tests.integration.dol.corpus import renumbered, with_value
from tests.integration.dol.dol_server import FAST, DolServer, archive, csv_bytes, f_5500_2021, served_archives
from tests.integration.dol.live_tables import add_ddl_counter, ddl_on, guard_triggers, table_state

YEARS = [2021, 2022, 2023]
DATASETS = ["F_5500", "F_5500_SF", "F_SCH_A"]
LIVE_TABLES = ("dol.form_5500", "dol.form_5500_sf", "dol.schedule_a")


@pytest.fixture
def dol_server():
    with DolServer() as server:
        yield server


def _fetch(server, tmp_path, dataset="F_5500", year=2021, sleeps=None):
    [one] = fetch.archives([year], [dataset], server.base_url)
    return fetch.fetch(one, tmp_path / "efast2", FAST, sleep=(sleeps.append if sleeps is not None else lambda s: None))


def test_the_archive_urls_from_the_configuration():
    assert fetch.default_years(date(2026, 12, 6)) == [2023, 2024, 2025]
    urls = [a.url for a in fetch.archives([2024, 2023], ["F_5500", "F_SCH_A"], "https://askebsa.dol.gov/FOIA%20Files/")]
    assert urls == [
        "https://askebsa.dol.gov/FOIA%20Files/2023/Latest/F_5500_2023_Latest.zip",
        "https://askebsa.dol.gov/FOIA%20Files/2023/Latest/F_SCH_A_2023_Latest.zip",
        "https://askebsa.dol.gov/FOIA%20Files/2024/Latest/F_5500_2024_Latest.zip",
        "https://askebsa.dol.gov/FOIA%20Files/2024/Latest/F_SCH_A_2024_Latest.zip",
    ]


def test_conditional_requests_download_only_what_changed(dol_server, tmp_path):
    body = served_archives()[("F_5500", 2021)]
    dol_server.publish("F_5500", 2021, body)
    first = _fetch(dol_server, tmp_path)
    assert first.status == "changed" and first.attempts == 1
    target = tmp_path / "efast2" / "F_5500_2021_Latest.zip"
    assert target.read_bytes() == body and first.bytes == len(body)
    assert [m for m, _ in first.members] == ["f_5500_2021_latest.csv"]

    second = _fetch(dol_server, tmp_path)
    assert second.status == "unchanged" and second.path == str(target)
    path, status, headers = dol_server.requests[-1]
    assert status == 304 and headers["If-None-Match"] == dol_server.files[path][1] and "If-Modified-Since" in headers

    # republished under the same name with other bytes: downloaded again
    header, rows = f_5500_2021()
    changed = archive("F_5500", 2021, csv_bytes(header, [with_value(header, rows[0], "PLAN_NAME", "NEW"), *rows[1:]]))
    dol_server.publish("F_5500", 2021, changed)
    third = _fetch(dol_server, tmp_path)
    assert third.status == "changed" and target.read_bytes() == changed and third.sha256 != first.sha256
    # a new ETag on the same bytes: downloaded, but nothing changed
    dol_server.publish("F_5500", 2021, changed, etag='"another"')
    fourth = _fetch(dol_server, tmp_path)
    assert fourth.status == "unchanged" and fourth.sha256 == third.sha256
    assert (
        fetch.read_state(tmp_path / "efast2", fetch.archives([2021], ["F_5500"], dol_server.base_url)[0])["etag"]
        == '"another"'
    )
    assert sorted(p.name for p in (tmp_path / "efast2").iterdir()) == [
        "F_5500_2021_Latest.zip",
        "F_5500_2021_Latest.zip.state.json",
    ]  # no temporary file left behind


def test_transient_failures_are_retried_with_backoff(dol_server, tmp_path):
    body = served_archives()[("F_5500", 2021)]
    dol_server.publish("F_5500", 2021, body)
    dol_server.fail_next("F_5500", 2021, "503", "slow", "cut")
    dol_server.slow_seconds = 1.5
    sleeps: list[float] = []
    result = _fetch(dol_server, tmp_path, sleeps=sleeps)
    assert result.status == "changed", result.message
    assert result.attempts == 4 and sleeps == [0.05, 0.1, 0.2]
    assert "HTTP 503" in result.message and "ReadTimeout" in result.message
    assert "RemoteProtocolError" in result.message or "cut short" in result.message
    assert (tmp_path / "efast2" / "F_5500_2021_Latest.zip").read_bytes() == body
    assert not list((tmp_path / "efast2").glob(".*part"))


def test_a_corrupt_or_failing_archive_keeps_the_previous_one(dol_server, tmp_path):
    body = served_archives()[("F_5500", 2021)]
    dol_server.publish("F_5500", 2021, body)
    assert _fetch(dol_server, tmp_path).status == "changed"
    dol_server.publish("F_5500", 2021, archive("F_5500", 2021, b"ACK_ID\r\nx\r\n"))
    dol_server.fail_next("F_5500", 2021, "corrupt", "corrupt", "503", "503")
    result = _fetch(dol_server, tmp_path)
    assert result.status == "failed" and "gave up after 4 attempts" in result.message
    assert "not whole" in result.message
    assert (tmp_path / "efast2" / "F_5500_2021_Latest.zip").read_bytes() == body  # the last whole one
    assert not list((tmp_path / "efast2").glob(".*part"))


def test_a_year_dol_has_not_published_is_reported_and_the_others_go_on(dol_server, tmp_path):
    dol_server.publish("F_5500", 2021, served_archives()[("F_5500", 2021)])
    results = [
        fetch.fetch(a, tmp_path / "efast2", FAST, sleep=lambda s: None)
        for a in fetch.archives([2021, 2030], ["F_5500"], dol_server.base_url)
    ]
    assert [(r.year, r.status, r.attempts) for r in results] == [(2021, "changed", 1), (2030, "missing", 1)]
    assert "HTTP 404" in results[1].message


def _next_xid(conn) -> int:
    return int(conn.execute("SELECT pg_snapshot_xmax(pg_current_snapshot())::text").fetchone()[0])


def _written_since(conn, xid: int) -> list[str]:
    """Tables of this database (the DOL spoke, the tool's ledger, the owner's registry, public)
    holding a row version written by a transaction from `xid` on: a proof that nothing was
    written that holds on a busy server (the server-wide next xid also moves when autovacuum
    analyzes any other database). Deletions show in table_state."""
    tables = [
        name
        for (name,) in conn.execute(
            "SELECT c.oid::regclass::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind IN ('r', 'p') AND n.nspname IN ('dol', 'ple_ops', 'ctb', 'public')"
        )
    ]
    query = "SELECT count(*) FROM {} WHERE xmin::text::bigint >= %s"
    return [t for t in tables if conn.execute(sql.SQL(query).format(sql.SQL(t)), (xid % 2**32,)).fetchone()[0]]


def three_nights(conn, dol_server, tmp_path, fresh: bool) -> None:
    """Night 1 imports every served archive and accounts every row; night 2 (nothing changed)
    costs one conditional request per archive and writes nothing; night 3 (F_5500 republished
    with a corrected and an added filing) brings exactly those changes and keeps the replaced
    values; the guards stay enabled and no DDL touches the live tables."""
    for (dataset, year), body in served_archives().items():
        dol_server.publish(dataset, year, body)
    nightly_archives = fetch.archives(YEARS, DATASETS, dol_server.base_url)
    folder = tmp_path / "efast2"
    guards = guard_triggers(conn)
    before = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in LIVE_TABLES}

    def night(run_id):
        return fetch.nightly(conn, folder, nightly_archives, run_id, retry=FAST, sleep=lambda s: None)

    first = night("night-1")
    outcome = {(f.dataset, f.year): f.status for f in first.fetched}
    assert outcome == {
        (d, y): ("changed" if (d, y) in served_archives() else "missing") for y in YEARS for d in DATASETS
    }
    assert first.failures == []
    assert sorted((r.dataset, r.data_rows) for r in first.imports) == [
        ("F_5500", 1000),
        ("F_5500_SF", 400),
        ("F_SCH_A", 1400),
    ]
    if fresh:
        assert sorted(r.inserted for r in first.imports) == [400, 1000, 1400]
    for r in first.imports:
        assert r.status == "imported" and r.live_rows + r.superseded_rows + r.error_rows == r.data_rows, r.message
        table = dict(zip(DATASETS, LIVE_TABLES, strict=True))[r.dataset]
        moved = (
            conn.execute(f"SELECT count(*) FROM {table}_superseded WHERE superseded_at IS NOT NULL").fetchone()[0]
            if r.dataset != "F_SCH_A"
            else 0
        )
        now = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        assert now + moved >= before[table] + r.inserted  # no row lost
    assert importer.prove_run(conn, "night-1") == 3
    assert ddl_on(conn, LIVE_TABLES) == []
    state, ddl = table_state(conn), len(ddl_on(conn))

    # night 2: nothing changed
    requests, xid = len(dol_server.requests), _next_xid(conn)
    second = night("night-2")
    assert {f.status for f in second.fetched} == {"unchanged", "missing"}
    assert second.imports == [] and second.failures == []
    assert len(dol_server.requests) - requests == len(nightly_archives)  # one request per archive
    assert [s for _, s in dol_server.answered(requests)].count(304) == 3
    assert _written_since(conn, xid) == []  # no transaction wrote anything in this database
    assert table_state(conn) == state and len(ddl_on(conn)) == ddl

    # night 3: F_5500 2021 republished: one live filing corrected, one added (another plan)
    header, rows = f_5500_2021()
    live_acks = {a for (a,) in conn.execute("SELECT ack_id::text FROM dol.form_5500").fetchall()}
    at = next(i for i, r in enumerate(rows) if r[0] in live_acks)
    old_name = conn.execute("SELECT plan_name FROM dol.form_5500 WHERE ack_id = %s", (rows[at][0],)).fetchone()[0]
    added = with_value(header, renumbered(header, [rows[7]], 7_000_000)[0], "SPONS_DFE_PN", "987")
    republished = [*rows[:at], with_value(header, rows[at], "PLAN_NAME", "CORRECTED PLAN"), *rows[at + 1 :], added]
    dol_server.publish("F_5500", 2021, archive("F_5500", 2021, csv_bytes(header, republished)))
    count = conn.execute("SELECT count(*) FROM dol.form_5500").fetchone()[0]
    versions = dict(conn.execute("SELECT ack_id::text, xmin::text FROM dol.form_5500").fetchall())
    third = night("night-3")
    after = dict(conn.execute("SELECT ack_id::text, xmin::text FROM dol.form_5500").fetchall())
    # only the corrected row was rewritten, only the added one is new
    assert sorted(a for a in after if versions.get(a) != after[a]) == sorted([rows[at][0], added[0]])
    assert [(f.dataset, f.year) for f in third.fetched if f.status == "changed"] == [("F_5500", 2021)]
    [result] = third.imports
    assert (result.inserted, result.updated, result.history_rows, result.superseded) == (1, 1, 1, 0), result.message
    assert result.unchanged + result.already_superseded == 999
    assert conn.execute(
        "SELECT replaced_row ->> 'plan_name', replaced_by_file FROM ple_ops.dol_row_history "
        "WHERE natural_key ->> 'ack_id' = %s",
        (rows[at][0],),
    ).fetchall() == [(old_name, "F_5500_2021_Latest.zip:f_5500_2021_latest.csv")]
    assert conn.execute("SELECT count(*) FROM dol.form_5500").fetchone()[0] == count + 1
    assert importer.prove_run(conn, "night-3") == 1
    assert guard_triggers(conn) == guards and set(guards.values()) == {"O"}
    assert ddl_on(conn, LIVE_TABLES) == []
    with pytest.raises(psycopg.errors.RaiseException, match="DOL_READONLY_VIOLATION"):
        conn.execute("UPDATE dol.form_5500 SET plan_name = 'x' WHERE ack_id = %s", (rows[at][0],))

    # the console's DOL page: each archive (last checked, last changed) and each dataset's rows
    page = pages.dol_datasets(conn, folder)
    for text in ("F_5500_2021_Latest.zip", "F_5500_2022_Latest.zip", "missing", "unchanged", "changed"):
        assert text in page, text
    by_dataset = {r[0]: r[1:6] for r in conn.execute(raw_template("ui/dol_datasets")).fetchall()}
    assert by_dataset["F_5500"][0] == 1 and by_dataset["F_5500"][3] == 1  # one input; one replaced row kept
    assert sum(by_dataset["F_5500"][1:3]) + by_dataset["F_5500"][4] == 1001  # live + superseded + errors
    if fresh:
        assert by_dataset == {
            "F_5500": (1, 1001, 0, 1, 0),
            "F_5500_SF": (1, 400, 0, 0, 0),
            "F_SCH_A": (1, 1400, 0, 0, 0),
        }


def test_three_nights_against_the_local_dol_server(live, dol_server, tmp_path):
    three_nights(live, dol_server, tmp_path, fresh=True)


def test_three_nights_over_the_production_twin(twin_db, dol_server, tmp_path):
    with psycopg.connect(twin_db, autocommit=True) as twin:
        add_ddl_counter(twin)
        three_nights(twin, dol_server, tmp_path, fresh=False)


def test_three_nights_over_the_2026_03_twin_under_the_owner_gate(twin_2026_03_db, dol_server, tmp_path):
    """The DOL spoke as the owner left it on 2026-03-12 (filing tables registered as STAGING, the DDL
    gate enabled): a table the import creates is registered first."""
    with psycopg.connect(twin_2026_03_db, autocommit=True) as twin:
        twin.execute(  # the test's own DDL counter passes the owner's gate like any table
            "INSERT INTO ctb.table_registry (table_schema, table_name, leaf_type) VALUES ('public', 'ddl_seen', 'SYSTEM')"
        )
        add_ddl_counter(twin)
        three_nights(twin, dol_server, tmp_path, fresh=False)


def test_an_archive_whose_import_failed_is_imported_the_next_night(live, dol_server, tmp_path):
    dol_server.publish("F_5500", 2021, served_archives()[("F_5500", 2021)])
    [one] = fetch.archives([2021], ["F_5500"], dol_server.base_url)
    wrong = importer.Guard("dol.import_mode", "wrong")
    first = fetch.nightly(live, tmp_path, [one], "n1", retry=FAST, guard=wrong)
    assert first.imports == [] and len(first.failures) == 1
    second = fetch.nightly(live, tmp_path, [one], "n2", retry=FAST)
    assert second.fetched[0].status == "unchanged"
    assert [r.inserted for r in second.imports] == [1000]


def test_the_urls_param_fetches_a_republished_file_again(dol_server, tmp_path):
    """`urls` (fetch.download) no longer skips a file whose name exists: DOL's "Latest" archives
    are republished under the same name."""
    from ple.dol import files

    body = served_archives()[("F_5500", 2021)]
    dol_server.publish("F_5500", 2021, body)
    url = fetch.archives([2021], ["F_5500"], dol_server.base_url)[0].url
    landing = tmp_path / "landing"
    assert fetch.download([url], landing, FAST) == [landing / "F_5500_2021_Latest.zip"]
    assert fetch.download([url], landing, FAST) == []  # unchanged: one conditional request
    assert dol_server.requests[-1][1] == 304
    header, rows = f_5500_2021()
    changed = archive("F_5500", 2021, csv_bytes(header, rows[:10]))
    dol_server.publish("F_5500", 2021, changed)
    assert fetch.download([url], landing, FAST) == [landing / "F_5500_2021_Latest.zip"]
    assert (landing / "F_5500_2021_Latest.zip").read_bytes() == changed
    inputs, skipped = files.discover(landing)
    assert [i.name for i in inputs] == ["F_5500_2021_Latest.zip:f_5500_2021_latest.csv"] and skipped == []
    with pytest.raises(OSError, match="missing"):
        fetch.download([url.replace("2021", "2030")], landing, FAST)
