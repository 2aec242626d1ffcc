"""The console pages through the whole api-server app (plugins loaded by Airflow itself), on a
database the engine has written to: every route needs an authenticated user, and shows what the
ledger, the audit history and the DOL import recorded."""

import json
import subprocess
import sys

import pytest

from ple import approval
from ple.audit import history
from ple.audit.numbers import compute
from ple.cli import main as cli
from ple.config import DOL_SAMPLE_DIR
from ple.dol import files, importer
from ple.reorg.plan import load
from tests.helpers import REPO

pytestmark = pytest.mark.slow

PAGES = ["/ple/", "/ple/reorganization", "/ple/data-quality", "/ple/dol-imports", "/ple/data-docs/index.html"]


def _api(airflow_env, dsn, *args, extra_env=None):
    env = dict(airflow_env, AIRFLOW_CONN_CTB_POSTGRES=dsn, **(extra_env or {}))
    result = subprocess.run(
        [sys.executable, str(REPO / "tests" / "airflow_api.py"), *args],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith(("{", "["))]


@pytest.fixture
def worked_db(fresh_db, conn):
    approval.approve(conn, approval.reorganization(load().sha256), "Grace Hopper", via="cli")
    assert cli(["run", "--phase", "1a", "--phase", "1b", "--mode", "apply", "--run-id", "console_test_run"]) == 0
    history.record(conn, "audit_1", compute(conn), 0.1)
    conn.execute(
        "UPDATE outreach.outreach SET domain = NULL WHERE outreach_id IN (SELECT outreach_id FROM outreach.outreach LIMIT 2)"
    )
    history.record(conn, "audit_2", compute(conn), 0.1)
    sample = sorted(DOL_SAMPLE_DIR.glob("*.csv"))[0]
    importer.import_file(conn, files.Input(sample, None), "dol_test_run")
    return fresh_db


def test_every_route_refuses_anonymous_requests(airflow_env, fresh_db):
    (routes,) = _api(airflow_env, fresh_db, "routes")
    expected = {*PAGES[:4], "/ple/compatibility", "/ple/data-docs/{path:path}"}
    assert {f"/ple{r}" if r != "/" else "/ple/" for r in routes} == expected
    answers = _api(
        airflow_env,
        fresh_db,
        "fetch",
        "null",
        json.dumps([*PAGES, "/ple/compatibility", "/ple/reorganization?run_id=x"]),
    )
    assert {a["path"]: a["status"] for a in answers} == dict.fromkeys(
        [*PAGES, "/ple/compatibility", "/ple/reorganization?run_id=x"], 401
    )


def test_pages_show_the_ledger_approvals_audit_and_imports(airflow_env, worked_db):
    answers = {
        a["path"]: a
        for a in _api(
            airflow_env,
            worked_db,
            "fetch",
            json.dumps(["viewer", "viewer"]),
            json.dumps(
                [
                    *PAGES,
                    "/ple/reorganization?run_id=console_test_run",
                    "/ple/data-docs/..%2F..%2F..%2F..%2Fetc%2Fpasswd",
                ]
            ),
        )
    }
    assert {p: a["status"] for p, a in answers.items()} == {
        **dict.fromkeys(PAGES, 200),
        "/ple/reorganization?run_id=console_test_run": 200,
        "/ple/data-docs/..%2F..%2F..%2F..%2Fetc%2Fpasswd": 404,
    }
    reorganization = answers["/ple/reorganization"]["body"]
    assert "signed in as viewer" in reorganization
    for text in ("1a__archive__", "1b__merge__", "Grace Hopper", "INSERT INTO", "frozen", "merged"):
        assert text in reorganization, text
    assert "console_test_run" in answers["/ple/reorganization?run_id=console_test_run"]["body"]
    quality = answers["/ple/data-quality"]["body"]
    assert quality.count("<svg") >= 7 and "null_domains_on_spine" in quality
    assert "stroke-dasharray" in quality  # the threshold line
    assert "Last breaches" in quality and "<td class=n>2</td>" in quality
    dol = answers["/ple/dol-imports"]["body"]
    assert "f_5500_2019_dbplans_slice.csv" in dol and "imported" in dol
    for body in (reorganization, quality, dol):  # nothing on the pages leaves the machine
        assert "https://" not in body and "http://" not in body.replace('xmlns="http://www.w3.org/2000/svg"', "")


def test_the_reconcile_table_of_the_production_twin_read_only(airflow_env, twin_db, tmp_path, monkeypatch):
    """Every action of the plan with its state, evidence, proposal and the decision recorded for
    it, from the live twin (hand copies, dropped tables), read in a read-only transaction."""
    import psycopg

    from tests.reorg_helpers import end_state

    monkeypatch.setenv("PLE_DECISIONS_DIR", str(tmp_path))
    assert cli(["decide", "--accept", "proposed"]) == 0  # a decisions file for some of the rows below
    with psycopg.connect(twin_db, autocommit=True) as conn:
        before = end_state(conn)
    decisions_dir = {"PLE_DECISIONS_DIR": str(tmp_path)}
    (anonymous,) = _api(airflow_env, twin_db, "fetch", "null", '["/ple/reorganization"]', extra_env=decisions_dir)
    assert anonymous["status"] == 401
    (page,) = _api(
        airflow_env,
        twin_db,
        "fetch",
        json.dumps(["viewer", "viewer"]),
        '["/ple/reorganization"]',
        extra_env=decisions_dir,
    )
    assert page["status"] == 200
    body = page["body"]
    section = body[body.index("Reconcile and decisions") :]
    actions = sum(len(step.actions) for phase in load().phases for step in phase.steps)
    assert f"Reconcile: {actions} actions (" in section
    for text in (
        "<th>state</th><th>evidence</th><th>proposal</th><th>decision</th>",
        "conflict",
        "moot",
        "both exist: archive.",  # a hand copy beside its live source
        "a hand copy",
        "set_aside: ",
        "was dropped on 2026-02-20",
        "skip: ",
        "1a__archive__company_company_master",
    ):
        assert text in section, text
    assert "UNDECIDED" not in section  # every proposal was accepted into the decisions file
    database = psycopg.conninfo.conninfo_to_dict(twin_db)["dbname"]
    assert f"decisions from <code>ple_ops.decision_version 1 (export: {tmp_path / database}.yaml)</code>" in section
    assert section.count("set_aside: archive.company_company_master_ctb_handcopy_") == 2  # proposed and decided
    with psycopg.connect(twin_db, autocommit=True) as conn:
        assert end_state(conn) == before  # the page wrote nothing
