"""Issue 23 on the production twins: an application that reads and writes through the old names
of a MOVE, an ARCHIVE, a MERGE source and a FOLD side table, and the twin's views and plpgsql
functions naming them, keeps working after every phase; writes through old names land in the new
tables with provenance; revert and contract converge and lose nothing."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import sql

from ple.errors import NotApproved
from ple.reorg import contract, decisions
from ple.reorg.actions import fold_sql
from ple.ui import compat_page
from tests.reconcile_helpers import decide
from tests.reorg_helpers import approve, approve_revert, executor, run_all, run_phase

# the old names the application uses, by kind: the first the twin still has of these (the
# 2026-03-12 twin had most of the plan carried out by hand, and has no fold left to do)
PREFERRED = {
    "MOVE": "outreach.people",
    "ARCHIVE": "public.sn_meeting",
    "MERGE": "marketing.failed_company_match",
    "FOLD": "outreach.dol_url_enrichment",  # the twins have dropped people.people_sidecar and people.person_scores
}
# the twin's views and functions that name tables the plan takes away (fixture/production/readers.sql)
READERS = (
    "SELECT count(*) FROM company.v_company_master_states",
    "SELECT count(*) FROM outreach.v_people_contactable",
    "SELECT company.fn_company_master_quoted('CA')",
    "SELECT outreach.fn_people_unqualified()",
    "SELECT outreach.fn_people_dynamic()",
    "SELECT company.fn_company_master_dynamic()",
)


def _ident(name: str) -> sql.Identifier:
    return sql.Identifier(*name.split("."))


KEYS: dict[str, list] = {}


def _names(conn, ex) -> dict[str, str]:
    """kind -> the old name the application uses: the preferred one, else the first action of that
    kind the decided plan still carries out on a table that exists."""
    found = {}
    for step in ex.plan.steps:
        for action in step.actions:
            exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (action.source,)).fetchone()[0]
            if step.kind in PREFERRED and exists and (action.source == PREFERRED[step.kind] or step.kind not in found):
                found[step.kind] = action.source
    return found


def _readers(conn) -> list[str]:
    """The twin's readers that work before the plan (the 2026-03-12 twin lost company_master by hand)."""
    working = []
    for query in READERS:
        try:
            with conn.transaction():
                conn.execute(query).fetchone()
            working.append(query)
        except psycopg.Error:
            pass
    return working


def _keys(conn, names) -> None:
    """The primary key columns and types of the tables, read before any phase."""
    for name in names:
        KEYS[name] = conn.execute(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_constraint c "
            "JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY(c.conkey) "
            "WHERE c.contype = 'p' AND c.conrelid = to_regclass(%s)",
            (name,),
        ).fetchall()


def _count(conn, name: str) -> int:
    return conn.execute(sql.SQL("SELECT count(*) FROM {}").format(_ident(name))).fetchone()[0]


def _insert_like_a_row(conn, name: str) -> dict:
    """An INSERT through `name` of a copy of one of its rows, its primary key made new."""
    row = conn.execute(sql.SQL("SELECT to_jsonb(x) FROM {} AS x LIMIT 1").format(_ident(name))).fetchone()[0]
    for column, kind in KEYS[name]:
        if kind == "uuid":
            row[column] = conn.execute("SELECT gen_random_uuid()::text").fetchone()[0]
        elif kind in ("integer", "bigint", "smallint", "numeric"):
            row[column] = int(
                conn.execute(
                    sql.SQL("SELECT coalesce(max({}), 0) + 1 FROM {}").format(sql.Identifier(column), _ident(name))
                ).fetchone()[0]
            )
        else:
            row[column] = f"compat-test-{conn.execute('SELECT gen_random_uuid()').fetchone()[0]}"
    conn.execute(
        sql.SQL("INSERT INTO {} SELECT * FROM jsonb_populate_record(NULL::{}, %s::jsonb)").format(
            _ident(name), _ident(name)
        ),
        (psycopg.types.json.Jsonb(row),),
    )
    return row


def _application(conn, names: dict[str, str], readers: list[str], applied: set[str]) -> list[str]:
    """What the application does; returns what failed (nothing, if the old names keep working)."""
    failures = []
    for name in names.values():
        try:
            conn.execute(sql.SQL("SELECT count(*) FROM {}").format(_ident(name))).fetchone()
        except psycopg.Error as exc:
            failures.append(f"read {name}: {exc}")
    for query in readers:
        try:
            conn.execute(query).fetchone()
        except psycopg.Error as exc:
            failures.append(f"{query}: {exc}")
    for kind in ("MOVE", "MERGE", "FOLD"):
        if kind in names:
            try:
                with conn.transaction():
                    _insert_like_a_row(conn, names[kind])
            except psycopg.Error as exc:
                failures.append(f"write {names[kind]}: {exc}")
    if names.get("ARCHIVE") in applied:  # a write to an archived name is refused, naming where it went
        with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState, match="refused"), conn.transaction():
            _insert_like_a_row(conn, names["ARCHIVE"])
    for kind in ("MERGE", "FOLD"):  # no row is changed or deleted through an old name
        if names.get(kind) in applied:
            with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState, match="refused"), conn.transaction():
                conn.execute(sql.SQL("DELETE FROM {}").format(_ident(names[kind])))
    return failures


def _phase_of(ex, source: str) -> str:
    return next(s.phase for s in ex.plan.steps if any(a.source == source for a in s.actions))


@pytest.fixture(params=["twin_db", "twin_2026_03_db"])
def twin(request, tmp_path, monkeypatch):
    monkeypatch.setenv(decisions.DECISIONS_DIR_ENV, str(tmp_path / "decisions"))
    with psycopg.connect(request.getfixturevalue(request.param), autocommit=True) as connection:
        yield connection


def test_old_names_keep_working_through_every_phase_and_the_revert(twin):
    decide(twin)
    approve(twin)
    ex = executor(twin)
    names, readers = _names(twin, ex), _readers(twin)
    assert {"MOVE", "ARCHIVE", "MERGE"} <= set(names), names
    _keys(twin, names.values())
    rows_before = _count(twin, names["MOVE"])
    side_rows_before = _count(twin, names["FOLD"]) if "FOLD" in names else None
    assert _application(twin, names, readers, set()) == []
    planned = "\n".join(r.text for r in run_all(executor(twin, mode="plan")))
    for name in names.values():
        assert f"{name} keeps working as a view over" in planned
    assert "keeps working, it follows the table by OID" in planned  # outreach.v_people_contactable
    if "SELECT company.fn_company_master_dynamic()" in readers:
        assert "names company.company_master: keeps working through the compatibility view" in planned
    applied: set[str] = set()
    phases = [p.phase for p in ex.declared.phases if p.steps]
    for phase in phases:
        run_phase(ex, phase)
        applied |= {a.source for s in ex.plan.phase(phase).steps for a in s.actions}
        assert _application(twin, names, readers, applied) == [], phase
    views = dict(twin.execute("SELECT name, kind FROM ple_ops.compat_object WHERE removed_at IS NULL").fetchall())
    assert {kind: views.get(name) for kind, name in names.items()} == {kind: kind for kind in names}
    # writes through the old names are in the new tables, the merged ones with provenance
    move = names["MOVE"]
    moved = next(a.target for a in ex.plan.actions if a.source == move)
    # one row written through the old name before the phases and one after each: all in the moved table
    assert _count(twin, moved) == rows_before + 1 + len(phases)
    merge_source = names["MERGE"]
    merge_target = next(a.target for a in ex.plan.actions if a.source == merge_source)
    written = twin.execute(
        sql.SQL("SELECT count(*) FROM {} WHERE ctb_source_table = %s AND ctb_run_id = %s").format(_ident(merge_target)),
        (merge_source, f"compat:{merge_source}"),
    ).fetchone()[0]
    assert written >= 1
    used = twin.execute(
        "SELECT calls, role_name FROM ple_ops.compat_use_all WHERE name = %s AND operation = 'INSERT'", (merge_source,)
    ).fetchone()
    assert used[0] == written and used[1] == "postgres"
    if "FOLD" in names:  # kept whole, with who wrote them, and folded: verify proves the fold again
        fold_source = names["FOLD"]
        writes = fold_sql.writes_table(ex.plan.archive_name(fold_source))
        kept, by = twin.execute(
            sql.SQL("SELECT count(*), min(ctb_written_by) FROM {}").format(_ident(writes))
        ).fetchone()
        assert (kept, by) == (len([p for p in phases if p >= _phase_of(ex, fold_source)]), "postgres")
        executor(twin).verify(_phase_of(ex, fold_source))
        fold_used = twin.execute(
            "SELECT calls, role_name FROM ple_ops.compat_use_all WHERE name = %s AND operation = 'INSERT'",
            (fold_source,),
        ).fetchone()
        assert fold_used == (kept, "postgres")  # the console's usage of the old name
        assert _count(twin, fold_source) == side_rows_before + 1 + len(phases)
    page = compat_page.compatibility(twin)  # the console's page of old names
    assert all(name in page for name in names.values()) and "no use recorded" in page
    assert f"<td>{merge_source}</td>" in page and "INSERT (trigger)" in page and "not measured" in page
    # the revert drops the compatibility objects first and gives the names back to the tables
    done = {
        p
        for (p,) in twin.execute(
            "SELECT DISTINCT phase FROM ple_ops.action_ledger WHERE outcome = 'applied' "
            "AND action NOT IN ('PREFLIGHT', 'VERIFY', 'FREEZE')"
        )
    }
    for phase in [p for p in reversed(phases) if p in done]:  # a phase that changed nothing has nothing to undo
        approve_revert(twin, phase)
        executor(twin).revert_phase(phase)
    assert not twin.execute("SELECT 1 FROM ple_ops.compat_object WHERE removed_at IS NULL").fetchall()
    kinds = dict(
        twin.execute(
            "SELECT format('%%s.%%s', n.nspname, c.relname), c.relkind::text FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE format('%%s.%%s', n.nspname, c.relname) = ANY(%s)",
            (list(names.values()),),
        ).fetchall()
    )
    assert kinds == {name: "r" for name in names.values()}
    if "FOLD" in names:  # the rows written through the old name are back in the side table
        assert _count(twin, names["FOLD"]) == side_rows_before + 1 + len(phases)
    assert _application(twin, names, readers, set()) == []
    # the rows written through the MERGE view are still in the target, named by their provenance
    assert (
        twin.execute(
            sql.SQL("SELECT count(*) FROM {} WHERE ctb_run_id = %s").format(_ident(merge_target)),
            (f"compat:{merge_source}",),
        ).fetchone()[0]
        == written
    )


def test_contract_removes_unused_objects_after_approval_and_its_revert_restores_them(twin):
    decide(twin)
    approve(twin)
    run_phase(executor(twin), "1c")  # moves: outreach.people and outreach.people_archive on both twins
    twin.execute("UPDATE ple_ops.compat_object SET grace = interval '0', created_at = now() - interval '1 day'")
    kept = "outreach.people"
    twin.execute("UPDATE ple_ops.compat_object SET grace = interval '90 days' WHERE name = %s", (kept,))
    due = contract.due(twin)
    assert due and kept not in [d.name for d in due]
    assert "outreach.people_archive" in contract.render(twin)
    with pytest.raises(NotApproved):
        contract.apply(twin, "run-1")
    contract.approve(twin, "pytest")
    removed = contract.apply(twin, "run-1")
    assert sorted(removed) == sorted(d.name for d in due)
    assert contract.apply(twin, "run-2") == []  # converges: nothing due, nothing asked
    for name in removed:
        assert twin.execute("SELECT to_regclass(%s)", (name,)).fetchone()[0] is None
    assert twin.execute("SELECT to_regclass(%s)", (kept,)).fetchone()[0] is not None
    with pytest.raises(NotApproved):
        contract.revert(twin)
    contract.approve_revert(twin, "pytest")
    restored = contract.revert(twin)
    assert sorted(restored) == sorted(removed)
    assert contract.revert(twin) == []
    for name in removed:
        twin.execute(sql.SQL("SELECT count(*) FROM {}").format(_ident(name))).fetchone()


def test_compat_none_leaves_the_old_name_gone(twin):
    """A decision `compat: none` for one action: that step leaves nothing at its old name, and
    plan mode says so; the other actions of the phase keep theirs."""
    proposed = decide(twin)
    proposed["actions"].setdefault("outreach.people", {})["compat"] = "none"
    decisions.write(proposed, decisions.for_connection(twin).path)
    approve(twin)
    planned = "\n".join(r.text for r in run_phase(executor(twin, mode="plan"), "1c"))
    assert "outreach.people keeps working" not in planned and "outreach.people_archive keeps working" in planned
    run_phase(executor(twin), "1c")
    assert twin.execute("SELECT to_regclass('outreach.people')").fetchone()[0] is None
    assert (
        twin.execute(
            "SELECT relkind::text FROM pg_class WHERE oid = to_regclass('outreach.people_archive')"
        ).fetchone()[0]
        == "v"
    )
