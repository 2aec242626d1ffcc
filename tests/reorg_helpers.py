"""Helpers for engine tests: run phases with the executor, and prove no row was lost."""

from __future__ import annotations

import copy
import hashlib
import uuid

import psycopg
import yaml
from psycopg import sql
from psycopg.types.json import Jsonb

from ple import approval
from ple.catalog import read_catalog
from ple.reorg import decisions
from ple.reorg import plan as plan_module
from ple.reorg.context import Mode, Settings
from ple.reorg.executor import Executor
from ple.reorg.proof import PROVENANCE_COLUMNS, fingerprint

USER_SCHEMAS = [
    "archive",
    "bit",
    "blog",
    "cl",
    "clay",
    "company",
    "dol",
    "intake",
    "marketing",
    "outreach",
    "people",
    "public",
    "talent_flow",
]


def raw_plan() -> dict:
    return yaml.safe_load(plan_module.PLAN_FILE.read_text())


def plan_from(raw: dict) -> plan_module.Plan:
    """A plan built from edited data; its sha256 is that of the edited content."""
    text = yaml.safe_dump(raw, sort_keys=False).encode()
    return plan_module.parse(copy.deepcopy(raw), plan_module.PLAN_FILE, hashlib.sha256(text).hexdigest())


def executor(conn, plan=None, mode="apply", run_id=None, **settings) -> Executor:
    plan = plan or plan_module.load()
    return Executor(conn, plan, run_id or f"test__{uuid.uuid4().hex[:8]}", Settings(mode=Mode(mode), **settings))


def approve(conn, plan=None) -> None:
    """A standing approval of the whole plan together with the decisions of the connection's
    database: these tests re-run, resume and converge phases across many runs; what an approval
    authorises and for how long is tested in tests/integration/test_approval.py."""
    decided = decisions.for_connection(conn)
    approval.approve(
        conn, decisions.fingerprint(plan or plan_module.load(), decided), "pytest", via="test", standing=True
    )


def approve_revert(conn, phase_id: str, plan=None) -> None:
    from ple.reorg.revert import approve as approve_revert_of

    approve_revert_of(conn, (plan or plan_module.load()).sha256, phase_id, "pytest", via="test", standing=True)


def run_phase(ex: Executor, phase_id: str) -> list:
    reports = [ex.preflight(phase_id)]
    reports += [ex.run_step(step.step_id) for step in ex.declared.phase(phase_id).steps]  # as the DAGs do
    reports.append(ex.verify(phase_id))
    reports.append(ex.freeze(phase_id))
    return reports


def run_all(ex: Executor) -> list:
    return [r for p in ex.declared.phases if p.steps for r in run_phase(ex, p.phase)]


def table_fingerprints(conn) -> dict[int, tuple]:
    """Every user table by OID: (name, its columns now, rows, checksum)."""
    catalog = read_catalog(conn, USER_SCHEMAS)
    result = {}
    for table in catalog.tables.values():
        if table.kind not in ("r", "p"):
            continue
        columns = [c for c in table.column_names if c not in PROVENANCE_COLUMNS]
        fp = fingerprint(conn, table, columns, native_only=table.column("ctb_source_table") is not None)
        result[table.oid] = (table.name, tuple(columns), fp.rows, fp.checksum)
    return result


def assert_nothing_lost(conn, before: dict[int, tuple]) -> None:
    """Every table that existed before still exists (by OID, wherever it moved) and holds exactly
    the rows it held, with the same content over its original columns. Rows a merge added to a
    target are told apart by provenance and proven separately by the merge's own verify."""
    catalog = read_catalog(conn, USER_SCHEMAS)
    by_oid = {t.oid: t for t in catalog.tables.values()}
    problems = []
    for oid, (name, columns, rows, checksum) in before.items():
        table = by_oid.get(oid)
        if table is None:
            problems.append(f"{name} vanished")
            continue
        fp = fingerprint(conn, table, list(columns), native_only=table.column("ctb_source_table") is not None)
        if (fp.rows, fp.checksum) != (rows, checksum):
            problems.append(
                f"{name} (now {table.name}): rows {rows} -> {fp.rows}, checksum {'equal' if fp.checksum == checksum else 'differs'}"
            )
    assert not problems, problems


def end_state(conn) -> dict[str, tuple]:
    """Content of every table by name. Rows a merge added are compared by their provenance (source
    table, key, full source row): their filled columns may hold the merge's own timestamp."""
    catalog = read_catalog(conn, USER_SCHEMAS)
    state = {}
    for table in catalog.tables.values():
        if table.kind not in ("r", "p"):
            continue
        merged_into = table.column("ctb_source_table") is not None
        columns = [c for c in table.column_names if c not in PROVENANCE_COLUMNS]
        native = fingerprint(conn, table, columns, native_only=merged_into)
        merged = None
        if merged_into:
            merged = conn.execute(
                sql.SQL(
                    "SELECT count(*), coalesce(sum(hashtextextended(ROW(ctb_source_table, ctb_source_key, ctb_source_row)::text, 0)::numeric), 0) "
                    "FROM {} WHERE ctb_source_table IS NOT NULL"
                ).format(sql.Identifier(*table.name.split(".")))
            ).fetchone()
        state[table.name] = (tuple(table.column_names), native.rows, native.checksum, merged)
    return state


def count(conn, table: str) -> int:
    return conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(*table.split(".")))).fetchone()[0]


def connect(dsn: str) -> psycopg.Connection:
    return psycopg.connect(dsn, autocommit=True)


BATCHED_SOURCE = "marketing.failed_email_verification"
BATCHED_TARGET = "people.people_errors"


def batched_merge_setting(conn):
    """The target fans every insert out (production's error sync: bypassed for merged rows), each
    inserted row costs a little time (so the whole merge lasts well beyond a lock timeout), and the
    source has many pages."""
    conn.execute("CREATE TABLE public.error_master (source text, error_id uuid)")
    conn.execute(
        "CREATE FUNCTION public.sync_error() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN INSERT INTO public.error_master VALUES (TG_TABLE_NAME, NEW.error_id); RETURN NEW; END $$"
    )
    conn.execute(
        f"CREATE TRIGGER sync_people_errors AFTER INSERT ON {BATCHED_TARGET} FOR EACH ROW EXECUTE FUNCTION public.sync_error()"
    )
    conn.execute(
        "CREATE FUNCTION public.slow_row() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(0.002); RETURN NEW; END $$"
    )
    conn.execute(
        f"CREATE TRIGGER slow_row BEFORE INSERT ON {BATCHED_TARGET} FOR EACH ROW EXECUTE FUNCTION public.slow_row()"
    )
    conn.execute(
        f"INSERT INTO {BATCHED_SOURCE} SELECT (jsonb_populate_record(s, jsonb_build_object('id', m.top + g * 1000 + s.id))).* "
        f"FROM {BATCHED_SOURCE} AS s, generate_series(1, 500) AS g, (SELECT max(id) AS top FROM {BATCHED_SOURCE}) AS m"
    )
    conn.execute(f"ALTER TABLE {BATCHED_SOURCE} ADD PRIMARY KEY (id)")  # production's legacy tables have a serial key
    conn.execute(f"ANALYZE {BATCHED_SOURCE}")
    return conn


def table_at(conn, name: str) -> bool:
    """A table (not a compatibility view) at the name."""
    return conn.execute(
        "SELECT coalesce((SELECT relkind IN ('r', 'p') FROM pg_class WHERE oid = to_regclass(%s)), false)", (name,)
    ).fetchone()[0]


def terminate_backend(dsn: str, pid: int) -> None:
    """End the revert's backend from a second connection, as anything outside the process would."""
    with connect(dsn) as killer:
        assert killer.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,)).fetchone()[0]


def phase_status(dsn: str, phase_id: str) -> str:
    with connect(dsn) as c:
        return c.execute("SELECT status FROM ple_ops.phase_status WHERE phase = %s", (phase_id,)).fetchone()[0]


def revert_until_done(dsn: str, phase_id: str, run_id: str, arm) -> tuple[list, int]:
    """Run the revert on a new connection each time its backend is killed, until one run ends.
    `arm(pid)` installs the kill for the next run and returns False once every kill was made."""
    runs = 0
    while True:
        runs += 1
        assert runs < 50, "the revert does not converge"
        with connect(dsn) as conn:
            armed = arm(conn.info.backend_pid)
            try:
                reports = executor(conn, run_id=run_id).revert_phase(phase_id)
            except psycopg.OperationalError:
                assert armed, "the revert lost its connection without being killed"
                # nothing is marked reverted before everything is
                assert phase_status(dsn, phase_id) == "frozen"
                continue
            return reports, runs


def table_shape(conn, table: str) -> tuple[list, dict]:
    """The table's primary key (column, type) and its foreign-key columns (column -> referenced
    table and column), read while it is a table."""
    key = conn.execute(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_constraint c "
        "JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY(c.conkey) "
        "WHERE c.contype = 'p' AND c.conrelid = to_regclass(%s)",
        (table,),
    ).fetchall()
    references = {
        column: (parent, parent_column)
        for column, parent, parent_column in conn.execute(
            "SELECT a.attname, format('%%s.%%s', n.nspname, r.relname), pa.attname FROM pg_constraint c "
            "JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1] "
            "JOIN pg_class r ON r.oid = c.confrelid JOIN pg_namespace n ON n.oid = r.relnamespace "
            "JOIN pg_attribute pa ON pa.attrelid = c.confrelid AND pa.attnum = c.confkey[1] "
            "WHERE c.contype = 'f' AND c.conrelid = to_regclass(%s) AND cardinality(c.conkey) = 1",
            (table,),
        ).fetchall()
    }
    return key, references


def insert_valid_row(conn, name: str, shape: tuple[list, dict]) -> None:
    """An INSERT through `name` that the table itself would have taken: a copy of one of its rows,
    its primary key new (a key that is also a reference: one the referenced table has and no row
    of `name` has yet)."""

    key, references = shape
    ident = sql.Identifier(*name.split("."))
    row = conn.execute(sql.SQL("SELECT to_jsonb(x) FROM {} AS x LIMIT 1").format(ident)).fetchone()[0]
    for column, kind in key:
        if column in references:
            parent, parent_column = references[column]
            row[column] = conn.execute(
                sql.SQL(
                    "SELECT p.{pc}::text FROM {p} AS p WHERE NOT EXISTS (SELECT 1 FROM {t} AS t WHERE t.{c} = p.{pc}) LIMIT 1"
                ).format(
                    pc=sql.Identifier(parent_column),
                    p=sql.Identifier(*parent.split(".")),
                    t=ident,
                    c=sql.Identifier(column),
                )
            ).fetchone()[0]
        elif kind == "uuid":
            row[column] = conn.execute("SELECT gen_random_uuid()::text").fetchone()[0]
        elif kind in ("integer", "bigint", "smallint", "numeric"):
            row[column] = int(
                conn.execute(
                    sql.SQL("SELECT coalesce(max({}), 0) + 1000 FROM {}").format(sql.Identifier(column), ident)
                ).fetchone()[0]
            )
        else:
            row[column] = f"compat-{conn.execute('SELECT gen_random_uuid()').fetchone()[0]}"
    conn.execute(
        sql.SQL("INSERT INTO {} SELECT * FROM jsonb_populate_record(NULL::{}, %s::jsonb)").format(ident, ident),
        (Jsonb(row),),
    )
