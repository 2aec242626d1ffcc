"""Usage of the compatibility views read from pg_stat_statements (issue 23, item 2), as on Neon:
the reads an application makes through an old name are counted per role, the tool's own DDL and
other databases' statements are not, and the contract keeps what is still read. Runs where the
server preloads pg_stat_statements (Debian's PostgreSQL 15 and the embedded 18: CI runs this file
on both); the pgserver wheel's 16 does not ship it."""

from __future__ import annotations

import secrets

import psycopg
import pytest
from psycopg import sql

from ple.reorg import contract, usage
from ple.ui import compat_page
from tests.reconcile_helpers import decide
from tests.reorg_helpers import approve, executor, run_phase

READ = "outreach.people"  # moved by 1C on the twin: its old name is a view over people.people_outreach_link
UNREAD = "outreach.people_archive"  # moved by 1C too; nobody reads it


@pytest.fixture
def twin(twin_db):
    with psycopg.connect(twin_db, autocommit=True) as conn:
        if "pg_stat_statements" not in conn.execute("SHOW shared_preload_libraries").fetchone()[0]:
            pytest.skip("this server does not preload pg_stat_statements (the pgserver wheel's PostgreSQL 16)")
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        yield conn


def _role(conn, name: str) -> str:
    conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(name)))
    return name


def _as(conn, role: str, database: str | None = None) -> psycopg.Connection:
    info = conn.info.get_parameters()
    return psycopg.connect(
        host=info["host"], port=info["port"], dbname=database or info["dbname"], user=role, autocommit=True
    )


def test_reads_through_an_old_name_are_counted_per_role_and_the_contract_keeps_what_is_read(twin):
    decide(twin)
    approve(twin)
    run_phase(executor(twin), "1c")
    reader = _role(twin, f"app_reader_{secrets.token_hex(3)}")
    twin.execute(sql.SQL("GRANT USAGE ON SCHEMA outreach, people TO {}").format(sql.Identifier(reader)))
    twin.execute(
        sql.SQL("GRANT SELECT ON outreach.people, people.people_outreach_link TO {}").format(sql.Identifier(reader))
    )
    with _as(twin, reader) as app:
        for _ in range(3):
            app.execute("SELECT count(*) FROM outreach.people").fetchone()

    # the same words in another database, by another role: not this database's use
    other_db, elsewhere = f"ple_other_{secrets.token_hex(3)}", _role(twin, f"app_elsewhere_{secrets.token_hex(3)}")
    twin.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(other_db), sql.Identifier(elsewhere)))
    try:
        with _as(twin, elsewhere, other_db) as other:
            other.execute("CREATE SCHEMA outreach")
            other.execute("CREATE TABLE outreach.people_archive (id int)")
            other.execute("SELECT count(*) FROM outreach.people_archive").fetchone()

        assert usage.sample(twin)
        uses = {entry["name"]: entry["uses"] for entry in usage.report(twin)["objects"]}
        statements = [u for u in uses[READ] if u["operation"] == "statements"]
        assert [(u["role"], u["calls"] >= 3) for u in statements] == [(reader, True)], uses[READ]
        assert uses[UNREAD] == [], uses[UNREAD]  # the tool's CREATE/COMMENT/GRANT, the other database: no use

        twin.execute(
            "UPDATE ple_ops.compat_object SET grace = interval '1 hour', created_at = now() - interval '1 day'"
        )
        due = [d.name for d in contract.due(twin)]
        assert UNREAD in due and READ not in due  # read within its grace: kept
        assert reader in compat_page.compatibility(twin)  # the console shows who still reads it
    finally:
        twin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(other_db)))
