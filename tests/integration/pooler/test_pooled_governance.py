"""Issue 20's acceptance path as Neon's pooled endpoint would see it: the 2026-03-12 twin (the
owner's DDL gate enabled) owned by an ordinary role, every command the real CLI through PgBouncer in
transaction mode as that role: decide, approve, apply 1A-1K with no DDL refused by the gate, no row
lost, and a second apply that changes nothing; then the leaf lock (adopting the owner's gate, the
gone Phase 2 tables moot as decided), a second lock that writes nothing, and its revert, which
removes exactly what the lock wrote."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import sql

from tests import rowcheck
from tests.helpers import PRODUCTION_2026_03_TEMPLATE_DB
from tests.integration.pooler.cli import cli, ok
from tests.integration.pooler.conftest import POOLED_PASSWORD, POOLED_ROLE

DATABASE = "ple_pooled_2026_03"
USER_OBJECTS = """
SELECT 'SCHEMA', quote_ident(nspname) FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema'
UNION ALL
SELECT CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'S' THEN 'SEQUENCE' ELSE 'TABLE' END,
       c.oid::regclass::text
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema' AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
  AND NOT (c.relkind = 'S' AND EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype IN ('a', 'i')))
UNION ALL
SELECT 'ROUTINE', p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema' AND p.prokind IN ('f', 'p')
"""


def _hand_over(conn: psycopg.Connection, role: str) -> None:
    """Every object of the user schemas to the role, as a Neon user owns what its migrations made
    (the event triggers themselves stay the superuser's: creating one needs it)."""
    gates = [name for (name,) in conn.execute("SELECT evtname FROM pg_event_trigger WHERE evtenabled <> 'D'")]
    for name in gates:  # the owner's gate refuses even a change of owner of a frozen table
        conn.execute(sql.SQL("ALTER EVENT TRIGGER {} DISABLE").format(sql.Identifier(name)))
    for kind, name in conn.execute(USER_OBJECTS).fetchall():
        conn.execute(sql.SQL("ALTER {} {} OWNER TO {}").format(sql.SQL(kind), sql.SQL(name), sql.Identifier(role)))
    for name in gates:
        conn.execute(sql.SQL("ALTER EVENT TRIGGER {} ENABLE").format(sql.Identifier(name)))


@pytest.fixture(scope="module")
def gated_pooled(pg_server, pooled_role, pgbouncer, production_2026_03_template, tmp_path_factory, monkeypatch_module):
    from ple_dev import embedded_pg

    embedded_pg.create_database(pg_server, DATABASE, PRODUCTION_2026_03_TEMPLATE_DB)
    direct = pg_server.dsn(DATABASE)
    with psycopg.connect(direct, autocommit=True) as conn:
        conn.execute(
            sql.SQL("ALTER DATABASE {} OWNER TO {}").format(sql.Identifier(DATABASE), sql.Identifier(pooled_role))
        )
        _hand_over(conn, pooled_role)
    monkeypatch_module.setenv("PLE_DECISIONS_DIR", str(tmp_path_factory.mktemp("decisions")))
    yield direct, f"postgresql://{POOLED_ROLE}:{POOLED_PASSWORD}@127.0.0.1:{pgbouncer}/{DATABASE}"
    embedded_pg.drop_database(pg_server, DATABASE)


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def test_the_reorganization_applies_under_the_owner_gate_as_an_ordinary_role_through_the_pooler(gated_pooled):
    direct, pooled = gated_pooled
    with psycopg.connect(direct, autocommit=True) as conn:
        assert not conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = %s", (POOLED_ROLE,)).fetchone()[0]
        assert conn.execute("SELECT count(*) FROM pg_event_trigger WHERE evtenabled <> 'D'").fetchone()[0] >= 2
        before = rowcheck.take(conn)
    ok(cli(pooled, "decide", "--accept", "proposed"))
    ok(cli(pooled, "approve", "--approver", "pooler-test", "--standing"))  # re-runs run under it
    first = ok(cli(pooled, "run", "--mode", "apply"))
    assert "CTB_DDL_GATE" not in first
    with psycopg.connect(direct, autocommit=True) as conn:
        assert rowcheck.missing(before, conn) == []
        registered = conn.execute("SELECT count(*) FROM ple_ops.registry_change").fetchone()[0]
        assert registered
        state = rowcheck.take(conn)
    ok(cli(pooled, "run", "--mode", "apply"))
    with psycopg.connect(direct, autocommit=True) as conn:
        assert rowcheck.take(conn) == state
        registry = conn.execute(REGISTRY).fetchall()

    shown = ok(cli(pooled, "leaf-lock", "--mode", "plan"))
    assert "plan mode: nothing written" in shown and "Phase 2 tables missing: none" in shown, shown
    assert "moot (decided: skip) outreach.campaigns" in shown and "ROGUE_TABLE:" in shown
    locked = ok(cli(pooled, "leaf-lock", "--mode", "apply"))
    assert "enforcement owner_gate" in locked and "CTB_DDL_GATE" not in locked, locked
    assert "rows written: 0" in ok(cli(pooled, "leaf-lock", "--mode", "apply"))
    ok(cli(pooled, "approve", "--revert", "2", "--approver", "pooler-test"))
    ok(cli(pooled, "revert", "--phase", "2", "--mode", "apply"))
    with psycopg.connect(direct, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM ple_ops.ctb_path_assignment").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM ple_ops.leaf_lock").fetchone()[0] == 0
        assert conn.execute(REGISTRY).fetchall() == registry
        assert rowcheck.take(conn) == state


REGISTRY = "SELECT table_schema, table_name, leaf_type, is_frozen FROM ctb.table_registry ORDER BY 1, 2"
