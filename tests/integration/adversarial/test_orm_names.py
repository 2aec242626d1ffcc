"""Adversarial: a live database written by an ORM has mixed-case names ("createdAt", "UserEvents").
Names the tool reads from the live catalog must be quoted (psycopg.sql.Identifier), not refused:
the plan's own names are plain lower case, the application's need not be."""

import pytest

from tests.reorg_helpers import approve, executor, run_phase


@pytest.mark.parametrize("phase", ["1b", "1c", "1g"])
def test_an_orm_table_beside_the_plan_does_not_stop_the_phase(conn, phase):
    conn.execute('CREATE TABLE people."UserEvents" ("eventId" bigint PRIMARY KEY, "createdAt" timestamptz)')
    conn.execute('CREATE TABLE outreach."Audit Trail" (id bigint)')
    executor(conn, mode="plan").lint([phase])
    approve(conn)
    reports = run_phase(executor(conn), phase)
    assert {r.status for r in reports} <= {"applied", "already_done"}


@pytest.mark.parametrize(
    ("phase", "table"),
    [("1c", "outreach.people"), ("1g", "people.people_master"), ("1k", "dol.form_5500_icp_filtered")],
)
def test_an_orm_column_on_a_table_the_phase_moves_folds_or_keys(conn, phase, table):
    conn.execute(f'ALTER TABLE {table} ADD COLUMN "updatedAt" timestamptz DEFAULT now()')
    approve(conn)
    reports = run_phase(executor(conn), phase)
    assert {r.status for r in reports} <= {"applied", "already_done"}
