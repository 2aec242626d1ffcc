"""A stateful property on the production twin and on the pre-plan fixture: the tool's operations
(apply a phase, revert it, apply it again, either of them killed at a random statement and run again) interleaved with an
application writing (insert, update and delete rows in live tables, add a column and fill it, add
a foreign key into a live table).

After every operation of the tool: every row and value that existed just before it (whatever the
application wrote so far) is still somewhere (tests/rowcheck.py: its table, a table with all its
columns, an archive, a merge target's ctb_source_row); and running the same operation again
converges (no error, no change to any user table). After every application write, its own
snapshot becomes what the next operation must keep.

Phases: 1a (an archive with a decided set-aside of the hand copy), 1b (merges into live targets
with bypassed triggers), 1e (merges), 1g (merge, folds, moves, reclassifications).
"""

from __future__ import annotations

from collections import Counter

import psycopg
import pytest
from hypothesis import note
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, precondition, rule, run_state_machine_as_test
from psycopg import sql

from ple_dev import embedded_pg
from tests import rowcheck
from tests.helpers import PRODUCTION_TEMPLATE_DB, TEMPLATE_DB, clone_fixture
from tests.property import rows
from tests.property.conftest import EXAMPLES, property_settings
from tests.property.phases import KillAt, apply_phase, lint_and_plan
from tests.reconcile_helpers import decide
from tests.reorg_helpers import approve, approve_revert, end_state, executor

PHASES = ["1a", "1b", "1e", "1g"]
# Live tables the application writes to (whichever exist and are not frozen archives at the time).
LIVE = [
    "people.people_errors",
    "outreach.entity_resolution_queue",
    "people.people_master",
    "outreach.bit_scores",
    "company.company_master",
    "marketing.failed_email_verification",
    "people.paid_enrichment_queue",
]


def _primary_key(conn, table: str) -> tuple[str, str] | None:
    row = conn.execute(
        "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod) FROM pg_index i "
        "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] "
        "WHERE i.indrelid = %s::regclass AND i.indisprimary AND i.indnatts = 1",
        (table,),
    ).fetchone()
    return tuple(row) if row else None


def _text_column(conn, table: str) -> str | None:
    """A text column the application edits: not a key, no CHECK on it."""
    row = conn.execute(
        "SELECT a.attname::text FROM pg_attribute a WHERE a.attrelid = %s::regclass AND a.attnum > 0 "
        "AND NOT a.attisdropped AND a.atttypid IN ('text'::regtype, 'varchar'::regtype) "
        "AND (a.atttypmod < 0 OR a.atttypmod > 40) AND a.attname NOT LIKE 'ctb\\_%%' "
        "AND NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = a.attrelid AND a.attnum = ANY(i.indkey)) "
        "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conrelid = a.attrelid AND c.contype = 'c' AND a.attnum = ANY(c.conkey)) "
        "ORDER BY a.attnum DESC LIMIT 1",
        (table,),
    ).fetchone()
    return row[0] if row else None


def _live(conn, table: str) -> bool:
    """The table exists under this name and is not one of the tool's frozen archives."""
    return conn.execute(
        "SELECT to_regclass(%s) IS NOT NULL AND NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = to_regclass(%s) "
        "AND tgname = 'ple_ctb_frozen')",
        (table, table),
    ).fetchone()[0]


def _quietly(conn, query, params=()) -> bool:
    """An application write; one the database refuses (a key, a CHECK, a trigger) did not happen."""
    try:
        with conn.transaction():
            conn.execute(query, params)
        return True
    except psycopg.Error as exc:
        note(f"  refused: {type(exc).__name__}: {str(exc).splitlines()[0]}")
        return False


def _column_values(conn, oid: int, column: str) -> Counter:
    """Values of `column` in the table `oid` (wherever it moved) and in every merge copy's
    ctb_source_row that carries that key."""
    found = Counter()
    table = conn.execute(
        "SELECT c.oid::regclass::text FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid "
        "WHERE c.oid = %s AND a.attname = %s AND NOT a.attisdropped",
        (oid, column),
    ).fetchone()
    if table:
        query = sql.SQL("SELECT {c}::text, count(*) FROM {t} WHERE {c} IS NOT NULL GROUP BY 1")
        found.update(dict(conn.execute(query.format(c=sql.Identifier(column), t=sql.SQL(table[0]))).fetchall()))
    for (holder,) in conn.execute(
        "SELECT c.oid::regclass::text FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
        "WHERE a.attname = 'ctb_source_row' AND a.atttypid = 'jsonb'::regtype AND NOT a.attisdropped AND c.relkind IN ('r', 'p')"
    ).fetchall():
        query = sql.SQL("SELECT ctb_source_row ->> %s, count(*) FROM {} WHERE ctb_source_row ? %s GROUP BY 1")
        found.update(dict(conn.execute(query.format(sql.SQL(holder)), (column, column)).fetchall()))
    return found


class Reorganization(RuleBasedStateMachine):
    pg_server = None
    monkeypatch = None
    template = PRODUCTION_TEMPLATE_DB

    def __init__(self):
        super().__init__()
        self.dsn = clone_fixture(self.pg_server, template=self.template)
        self.monkeypatch.setenv("AIRFLOW_CONN_CTB_POSTGRES", self.dsn)
        self.conn = psycopg.connect(self.dsn, autocommit=True)
        decide(self.conn)
        approve(self.conn)
        self.applied: set[str] = set()
        self.run_ids: dict[str, str] = {}
        self.writes = 0
        self.app_columns: list[tuple[int, str]] = []  # (table OID, column) the application added
        self.expected = rows.take(self.conn, PHASES, LIVE)
        self.expected_values: dict[tuple[int, str], Counter] = {}

    def teardown(self):
        self.conn.close()
        embedded_pg.drop_database(self.pg_server, psycopg.conninfo.conninfo_to_dict(self.dsn)["dbname"])

    # ------------------------------------------------------------------ checks
    def _nothing_lost(self, what: str) -> None:
        lost = rowcheck.missing(self.expected, self.conn)
        assert lost == [], f"{what}: rows lost: {lost[:5]}"
        for (oid, column), expected in self.expected_values.items():
            gone = expected - _column_values(self.conn, oid, column)
            assert not gone, f"{what}: values of the application's column {column} lost: {list(gone)[:5]}"

    def _after_the_application(self) -> None:
        self.expected = rows.take(self.conn, PHASES, LIVE)
        self.expected_values = {key: _column_values(self.conn, *key) for key in self.app_columns}

    # ------------------------------------------------------------------ the tool
    def _apply(self, phase: str, conn=None) -> Exception | None:
        conn = conn or self.conn
        ex = executor(conn, run_id=self.run_ids.get(phase))
        self.run_ids.setdefault(phase, ex.run_id)
        return apply_phase(conn, phase, ex, approve_first=False)  # approved once, in __init__

    def _revert(self, phase: str, conn=None) -> list:
        conn = conn or self.conn
        approve_revert(conn, phase)
        return executor(conn, run_id=self.run_ids.get(phase)).revert_phase(phase)

    def _applied_or_blocked(self, phase: str, error) -> None:
        if error is None:
            self.applied.add(phase)
            return
        blocking = lint_and_plan(self.conn, phase)  # read-only; says why apply refused, or nothing
        note(f"apply {phase} refused: {error!r}; lint/plan: {blocking}")
        assert blocking, f"apply {phase} failed, lint and plan mode call it clear: {error!r}"

    def _converges(self, what: str, again) -> None:
        state = end_state(self.conn)
        result = again()
        assert not isinstance(result, Exception), f"{what} again: {result!r}"
        assert end_state(self.conn) == state, f"{what} again changed user tables"

    @precondition(lambda self: set(PHASES) - self.applied)
    @rule(data=st.data())
    def apply(self, data):
        choices = [p for p in PHASES if p not in self.applied]
        phase = data.draw(st.sampled_from(choices), label="apply phase")
        note(f"apply {phase}")
        error = self._apply(phase)
        self._nothing_lost(f"apply {phase}")
        self._applied_or_blocked(phase, error)
        if error is None:
            self._converges(f"apply {phase}", lambda: self._apply(phase))
            self._nothing_lost(f"apply {phase} again")
        self._after_the_application()

    @precondition(lambda self: self.applied)
    @rule(data=st.data())
    def revert(self, data):
        phase = data.draw(st.sampled_from(sorted(self.applied)), label="revert phase")
        note(f"revert {phase}")
        reports = self._revert(phase)
        assert reports[-1].status == "reverted", reports[-1].text
        self._nothing_lost(f"revert {phase}")
        self.applied.discard(phase)

        def again():
            reports = self._revert(phase)
            undone = [(r.step_id, r.status) for r in reports[:-1] if r.status != "already_done"]
            return AssertionError(f"revert {phase} again did work: {undone}") if undone else None

        self._converges(f"revert {phase}", again)
        self._nothing_lost(f"revert {phase} again")
        self._after_the_application()

    @rule(data=st.data(), statement=st.integers(1, 400))
    def killed_and_run_again(self, data, statement):
        """Apply (or, once applied, revert) the phase on a connection killed before its
        `statement`-th statement; then run the same operation again to its end."""
        phase = data.draw(st.sampled_from(PHASES), label="phase")
        operation = "revert" if phase in self.applied else "apply"
        clear = operation == "revert" or not lint_and_plan(self.conn, phase)
        note(f"{operation} {phase} killed at statement {statement}")
        killed = KillAt.connect(self.dsn, autocommit=True)
        killed.kill_at = statement
        try:  # the kill may land anywhere: in the executor's own reads too
            if operation == "apply":
                error = self._apply(phase, killed)
            else:
                self._revert(phase, killed)
                error = None
        except psycopg.Error as exc:
            error = exc
        finally:
            killed.close()
        note(f"  after {killed.executed} statements: {error!r}")
        self._nothing_lost(f"{operation} {phase} killed at statement {statement}")
        if operation == "apply":
            error = self._apply(phase)
            self._nothing_lost(f"apply {phase} after the kill")
            if clear:  # clear before the kill: the run after it must finish
                assert error is None, f"apply {phase} was clear, killed, and does not resume: {error!r}"
                self.applied.add(phase)
            else:
                self._applied_or_blocked(phase, error)
        else:
            reports = self._revert(phase)
            assert reports[-1].status == "reverted", reports[-1].text
            self._nothing_lost(f"revert {phase} after the kill")
            self.applied.discard(phase)
        self._after_the_application()

    # ------------------------------------------------------------------ the application
    @rule(data=st.data())
    def the_application_writes(self, data):
        """One to three writes of the application, between two operations of the tool. (Hypothesis
        orders rules by name and its first example takes the first rule that may run at each step:
        the tool's rules come first, so that example applies every phase, then kills and reverts.)"""
        writes = [
            self.app_inserts,
            self.app_updates,
            self.app_deletes,
            self.app_adds_a_column,
            self.app_adds_a_foreign_key,
        ]
        for write in data.draw(st.lists(st.sampled_from(writes), min_size=1, max_size=3), label="writes"):
            write(data)

    def _table(self, data) -> str | None:
        live = [t for t in LIVE if _live(self.conn, t)]
        return data.draw(st.sampled_from(live), label="table") if live else None

    def app_inserts(self, data):
        copies = data.draw(st.integers(1, 3), label="copies")
        table = self._table(data)
        key = table and _primary_key(self.conn, table)
        if not key:
            return
        column, type_name = key
        t, c = sql.Identifier(*table.split(".")), sql.Identifier(column)
        new_key = {
            "uuid": sql.SQL("to_jsonb(gen_random_uuid())"),
            "text": sql.SQL("to_jsonb(md5(random()::text))"),
        }.get(type_name, sql.SQL("to_jsonb((SELECT max({c}) FROM {t}) + 1000 + g)").format(c=c, t=t))
        # the application's rows look like its own, never like a merged copy (provenance cleared)
        query = sql.SQL(
            "INSERT INTO {t} SELECT (jsonb_populate_record(p, to_jsonb(p) || jsonb_build_object(%s, {new_key}) "
            "|| (SELECT coalesce(jsonb_object_agg(k, 'null'::jsonb), '{{}}') FROM jsonb_object_keys(to_jsonb(p)) AS k "
            "WHERE k LIKE 'ctb\\_%%'))).* "
            "FROM (SELECT * FROM {t} ORDER BY ctid LIMIT 1) AS p, generate_series(1, %s) AS g"
        ).format(t=t, new_key=new_key)
        note(f"app inserts {copies} rows into {table}")
        if _quietly(self.conn, query, (column, copies)):
            self._after_the_application()

    def app_updates(self, data):
        rows = data.draw(st.integers(1, 5), label="rows")
        table = self._table(data)
        column = table and _text_column(self.conn, table)
        if not column:
            return
        self.writes += 1
        t, c = sql.Identifier(*table.split(".")), sql.Identifier(column)
        note(f"app updates {rows} rows of {table}.{column}")
        query = sql.SQL(
            "UPDATE {t} SET {c} = left(coalesce({c}, '') || %s, 40) WHERE ctid IN (SELECT ctid FROM {t} ORDER BY ctid DESC LIMIT %s)"
        ).format(t=t, c=c)
        if _quietly(self.conn, query, (f" app edit {self.writes}", rows)):
            self._after_the_application()

    def app_deletes(self, data):
        offset = data.draw(st.integers(0, 50), label="offset")
        table = self._table(data)
        if not table:
            return
        t = sql.Identifier(*table.split("."))
        note(f"app deletes row {offset} of {table}")
        query = sql.SQL(
            "DELETE FROM {t} WHERE ctid = (SELECT ctid FROM {t} ORDER BY ctid DESC OFFSET %s LIMIT 1)"
        ).format(t=t)
        if _quietly(self.conn, query, (offset,)):
            self._after_the_application()

    def app_adds_a_column(self, data):
        """A new column, filled on every row (merged copies included) with values only it holds."""
        table = self._table(data)
        if not table:
            return
        self.writes += 1
        name = f"app_note_{self.writes}"
        t = sql.Identifier(*table.split("."))
        note(f"app adds {table}.{name}")
        if _quietly(self.conn, sql.SQL("ALTER TABLE {} ADD COLUMN {} text").format(t, sql.Identifier(name))):
            copy = sql.SQL("CASE WHEN to_jsonb(t) ->> 'ctb_source_table' IS NOT NULL THEN 'copy:' ELSE '' END || ")
            _quietly(
                self.conn,
                sql.SQL("UPDATE {t} AS t SET {c} = {copy} %s || ctid::text").format(
                    t=t, c=sql.Identifier(name), copy=copy
                ),
                (f"{name}:",),
            )
            oid = self.conn.execute("SELECT %s::regclass::oid", (table,)).fetchone()[0]
            self.app_columns.append((oid, name))
            self._after_the_application()

    def app_adds_a_foreign_key(self, data):
        """A new application table referencing one row of a live table (a merged copy first)."""
        table = self._table(data)
        key = table and _primary_key(self.conn, table)
        if not key:
            return
        self.writes += 1
        column, type_name = key
        ref = sql.Identifier("public", f"app_ref_{self.writes}")
        t = sql.Identifier(*table.split("."))
        merged_first = (
            sql.SQL("(ctb_source_table IS NULL), ")
            if self.conn.execute(
                "SELECT 1 FROM pg_attribute WHERE attrelid = %s::regclass AND attname = 'ctb_source_table'", (table,)
            ).fetchone()
            else sql.SQL("")
        )
        note(f"app adds {ref.as_string(self.conn)} referencing {table}.{column}")
        created = _quietly(
            self.conn,
            sql.SQL("CREATE TABLE {r} (id serial PRIMARY KEY, ref {ty} REFERENCES {t} ({c}))").format(
                r=ref, ty=sql.SQL(type_name), t=t, c=sql.Identifier(column)
            ),
        )
        if created:
            _quietly(
                self.conn,
                sql.SQL("INSERT INTO {r} (ref) SELECT {c} FROM {t} ORDER BY {m} ctid LIMIT 1").format(
                    r=ref, c=sql.Identifier(column), t=t, m=merged_first
                ),
            )
            self._after_the_application()


@pytest.mark.parametrize("template", [PRODUCTION_TEMPLATE_DB, TEMPLATE_DB], ids=["twin", "pre-plan"])
def test_the_tool_and_the_application_interleaved_lose_nothing_and_converge(pg_server, request, monkeypatch, template):
    """On the production twin (decided: every phase here sets a hand copy aside first), and on the
    pre-plan fixture (no hand copies: revert and re-apply cycles the twin's set-aside failures cut
    short)."""
    request.getfixturevalue("production_template" if template == PRODUCTION_TEMPLATE_DB else "fixture_template")
    machine = type(
        "Reorganization", (Reorganization,), {"pg_server": pg_server, "monkeypatch": monkeypatch, "template": template}
    )
    run_state_machine_as_test(
        machine, settings=property_settings(max_examples=max(2, EXAMPLES // 2), stateful_step_count=6)
    )
