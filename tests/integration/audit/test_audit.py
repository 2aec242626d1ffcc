"""The Phase 2C audit numbers, their history, thresholds and regressions, on real PostgreSQL."""

import pytest

from ple.audit import history
from ple.audit.numbers import compute
from ple.fixture.builder import target_counts
from ple.fixture.spec import parameters
from tests.conftest import TEST_SCALE


def test_the_audit_counts_the_fixtures_defects(conn):
    numbers = compute(conn)
    wanted = parameters(TEST_SCALE)
    counts = target_counts(TEST_SCALE)
    assert numbers["duplicate_domains_on_spine"] == wanted["duplicate_domain_pairs"]
    assert numbers["duplicate_emails_in_people_master"] == wanted["duplicate_email_pairs"]
    assert numbers["orphan_people"] == wanted["orphan_people"]
    assert numbers["cl_claimed"] == numbers["spine"] == counts["outreach.outreach"]
    assert numbers["alignment_gap"] == numbers["null_domains_on_spine"] == numbers["orphan_slots"] == 0
    assert numbers["people_people_master"] == counts["people.people_master"]


def test_a_clean_run_passes_and_a_regression_names_the_number_that_moved(conn):
    history.record(conn, "run-1", compute(conn), 0.1)
    _, breached = history.judge(conn, "run-1", margin_pct=0.0, margin_rows=0)
    assert breached == []
    conn.execute(
        "UPDATE outreach.outreach SET domain = NULL WHERE outreach_id IN (SELECT outreach_id FROM outreach.outreach LIMIT 3)"
    )
    conn.execute(  # 50 new pairs of people sharing an email
        "UPDATE people.people_master p SET email = 'dup' || (x.n / 2) || '@example.com' FROM "
        "(SELECT unique_id, row_number() OVER (ORDER BY unique_id DESC) AS n FROM people.people_master LIMIT 100) x "
        "WHERE p.unique_id = x.unique_id"
    )
    history.record(conn, "run-2", compute(conn), 0.1)
    _, breached = history.judge(conn, "run-2", margin_pct=1.0, margin_rows=0)
    moved = {b.number: b.describe() for b in breached}
    assert set(moved) == {"null_domains_on_spine", "duplicate_emails_in_people_master"}
    assert moved["null_domains_on_spine"].startswith("null_domains_on_spine from 0 to 3")
    assert conn.execute("SELECT status FROM ple_ops.audit_run WHERE run_id = 'run-2'").fetchone()[0] == "breached"


@pytest.mark.parametrize("margin", [0.0, 50.0])
def test_the_margin_decides_what_counts_as_worse(conn, margin):
    history.record(conn, "base", compute(conn), 0.1)
    conn.execute(
        "UPDATE people.people_master SET email = 'shared@example.com' WHERE unique_id IN (SELECT unique_id FROM people.people_master ORDER BY unique_id DESC LIMIT 2)"
    )
    history.record(conn, "next", compute(conn), 0.1)
    _, breached = history.judge(conn, "next", margin_pct=margin, margin_rows=0)
    assert bool(breached) is (margin == 0.0)
