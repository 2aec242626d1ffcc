"""The Phase 2C audit numbers, their history, thresholds and an accepted regression baseline, on
real PostgreSQL."""

import pytest

from ple.audit import history
from ple.audit.numbers import compute
from ple.cli import main as cli
from ple.errors import BadInput


def numbers_by_definition(conn) -> dict[str, int]:
    """The definitions of include/reference/phase_2c_audit_definitions.md, written out plainly."""
    one = lambda query: conn.execute(query).fetchone()[0]  # noqa: E731
    return {
        "duplicate_emails_in_people_master": one(
            "SELECT count(*) FROM (SELECT email FROM people.people_master WHERE email <> '' GROUP BY email HAVING count(*) > 1) d"
        ),
        "duplicate_domains_on_spine": one(
            "SELECT count(*) FROM (SELECT domain FROM outreach.outreach WHERE domain <> '' GROUP BY domain HAVING count(*) > 1) d"
        ),
        "cl_claimed": one("SELECT count(outreach_id) FROM cl.company_identity"),
        "spine": one("SELECT count(*) FROM outreach.outreach"),
    }


def test_the_audit_counts_what_the_definitions_say(conn):
    numbers = compute(conn)
    assert {k: numbers[k] for k in numbers_by_definition(conn)} == numbers_by_definition(conn)
    assert numbers["alignment_gap"] == numbers["cl_claimed"] - numbers["spine"]
    assert numbers["duplicate_emails_in_people_master"] > 0


@pytest.mark.parametrize("column", ["sovereign_id", "sovereign_company_id"])
def test_the_sovereign_id_is_found_under_either_name(conn, column):
    live = {
        r[0]
        for r in conn.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = 'outreach.outreach'::regclass AND attname LIKE 'sovereign%%'"
        )
    }
    current = live.pop()
    if current != column:
        conn.execute(f"ALTER TABLE outreach.outreach RENAME COLUMN {current} TO {column}")
    conn.execute(f"ALTER TABLE outreach.outreach ALTER COLUMN {column} DROP NOT NULL")
    conn.execute(
        f"UPDATE outreach.outreach SET {column} = NULL WHERE outreach_id IN (SELECT outreach_id FROM outreach.outreach LIMIT 2)"
    )
    assert compute(conn)["missing_sovereign_id"] == 2


def test_a_database_without_a_needed_column_is_refused_by_name(conn):
    conn.execute("ALTER TABLE people.people_master RENAME COLUMN email TO e_mail")
    with pytest.raises(BadInput, match=r"people\.people_master has none of email"):
        compute(conn)


def judge(conn, run_id, margin_pct=1.0, margin_rows=0):
    history.record(conn, run_id, compute(conn), 0.1)
    return {b.number: b.describe() for b in history.judge(conn, run_id, margin_pct, margin_rows)[1]}


def add_duplicate_emails(conn, pairs: int, tag: str):
    conn.execute(
        "UPDATE people.people_master p SET email = %s || (x.n / 2) || '@example.com' FROM "
        "(SELECT unique_id, row_number() OVER (ORDER BY unique_id DESC) - 1 AS n FROM people.people_master "
        " WHERE email NOT LIKE 'dup%%' ORDER BY unique_id DESC LIMIT %s) x WHERE p.unique_id = x.unique_id",
        (f"dup{tag}-", 2 * pairs),
    )


def test_a_breached_number_fails_every_night_until_someone_accepts_it(conn):
    assert judge(conn, "night-1") == {}
    assert history.baseline(conn).run_id == "night-1"  # the first clean run is the baseline
    conn.execute(
        "UPDATE outreach.outreach SET domain = NULL WHERE outreach_id IN (SELECT outreach_id FROM outreach.outreach LIMIT 3)"
    )
    add_duplicate_emails(conn, 50, "a")
    for night in ("night-2", "night-3", "night-4"):  # nothing fixed, nothing accepted: fails every night
        moved = judge(conn, night)
        assert set(moved) == {"null_domains_on_spine", "duplicate_emails_in_people_master"}, night
        assert moved["null_domains_on_spine"].startswith("null_domains_on_spine from 0 to 3")
        assert history.baseline(conn).run_id == "night-1"
    assert conn.execute("SELECT status FROM ple_ops.audit_run WHERE run_id = 'night-4'").fetchone()[0] == "breached"
    # duplicates are a known backlog: an operator accepts the numbers of the last night
    assert cli(["audit-accept", "--approver", "Grace Hopper", "--note", "dedup backlog accepted"]) == 0
    accepted = history.baseline(conn)
    assert (accepted.run_id, accepted.accepted_by, accepted.via) == ("night-4", "Grace Hopper", "cli")
    row = conn.execute(
        "SELECT approver, approved_at IS NOT NULL, details ->> 'run_id' FROM ple_ops.approval "
        "WHERE subject = 'audit_baseline' ORDER BY approval_id DESC LIMIT 1"
    ).fetchone()
    assert row == ("Grace Hopper", True, "night-4")
    # the absolute threshold still holds (NULL domains must be 0); the duplicates pass now
    assert set(judge(conn, "night-5")) == {"null_domains_on_spine"}
    conn.execute("UPDATE outreach.outreach SET domain = 'fixed-' || outreach_id || '.example' WHERE domain IS NULL")
    assert judge(conn, "night-6") == {}


def test_a_number_cannot_creep_up_by_the_margin_night_after_night(conn):
    judge(conn, "night-1")
    base = compute(conn)["duplicate_emails_in_people_master"]
    margin_rows = 3  # each night adds 2 duplicate emails: within the margin of the night before
    add_duplicate_emails(conn, 2, "a")
    assert judge(conn, "night-2", margin_pct=0, margin_rows=margin_rows) == {}
    add_duplicate_emails(conn, 2, "b")
    moved = judge(conn, "night-3", margin_pct=0, margin_rows=margin_rows)
    assert moved["duplicate_emails_in_people_master"].startswith(
        f"duplicate_emails_in_people_master from {base:,} to {base + 4:,}"
    )


def test_a_better_clean_run_becomes_the_baseline(conn):
    judge(conn, "night-1")
    conn.execute(
        "UPDATE people.people_master p SET email = 'unique-' || unique_id || '@example.com' WHERE unique_id IN "
        "(SELECT max(unique_id) FROM people.people_master WHERE email <> '' GROUP BY email HAVING count(*) > 1 LIMIT 5)"
    )
    assert judge(conn, "night-2") == {}
    accepted = history.baseline(conn)
    assert (accepted.run_id, accepted.via) == ("night-2", "automatic")


def test_accepting_an_unknown_run_is_refused(conn):
    with pytest.raises(BadInput, match="no audit run recorded yet"):
        history.accept(conn, "Ada", None)
    judge(conn, "night-1")
    with pytest.raises(BadInput, match="no audit run 'nope'"):
        history.accept(conn, "Ada", "nope")
