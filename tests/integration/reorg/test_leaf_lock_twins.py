"""Issue 20, Phase 2 on both production twins: five of the plan's Phase 2 tables are gone from the
live database. The leaf lock explains each from the live evidence, `decide --accept proposed`
records them as moot, and then the lock applies (adopting the owner's gate where it exists), a
second apply changes nothing, plan mode writes nothing, and its revert removes exactly what it added
(registry rows included). Its report speaks the owner's drift classes."""

import psycopg
import pytest

from ple import governance
from ple.errors import PlanRejected
from ple.reorg import decisions, leaf_lock
from ple.reorg import plan as plan_module
from tests import rowcheck
from tests.reconcile_helpers import decide
from tests.reorg_helpers import approve, approve_revert, executor, run_all

GONE = {
    "outreach.bit_signals",
    "bit.movement_events",
    "outreach.campaigns",
    "outreach.sequences",
    "outreach.engagement_events",
}
pytestmark = pytest.mark.timeout(1800)


@pytest.fixture(autouse=True)
def decisions_dir(tmp_path, monkeypatch):
    monkeypatch.setenv(decisions.DECISIONS_DIR_ENV, str(tmp_path / "decisions"))


def _lock_state(conn) -> dict:
    """Everything the leaf lock writes, as it stands (the owner's registry included)."""
    state = {"event_trigger": conn.execute("SELECT count(*) FROM pg_event_trigger WHERE evtname = 'ple_leaf_lock'")}
    state["event_trigger"] = state["event_trigger"].fetchone()[0]
    for name, query in {
        "assignments": "SELECT table_name, sub_hub, ctb_class FROM ple_ops.ctb_path_assignment",
        "classes": "SELECT table_name, sub_hub, ctb_class, phase FROM ple_ops.table_registry",
        "locks": "SELECT schema_name, enforcement, adopted::text FROM ple_ops.leaf_lock",
        "recorded": "SELECT table_name, step_id FROM ple_ops.registry_change",
        "registry": "SELECT table_schema, table_name, leaf_type, is_frozen, registered_by FROM ctb.table_registry",
    }.items():
        table = query.split("FROM ")[1].split()[0]
        exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()[0]
        state[name] = sorted(conn.execute(query).fetchall(), key=repr) if exists else None
    return state


@pytest.mark.parametrize("twin", ["twin_db", "twin_2026_03_db"])
def test_the_leaf_lock_applies_on_the_twin_with_its_gone_tables_moot_and_reverts_exactly(twin, request):
    with psycopg.connect(request.getfixturevalue(twin), autocommit=True) as conn:
        plan = plan_module.load()
        gated = governance.detect(conn) is not None
        if gated:  # a Phase 2 table the owner's registry does not list: the lock proposes registering it
            conn.execute(
                "DELETE FROM ctb.table_registry WHERE table_schema = 'people' AND table_name = 'title_slot_mapping'"
            )
        decided = decide(conn)
        proposed = decided["leaf_lock"]
        moot = {t for t, e in proposed.items() if "skip" in e}
        assert all(proposed[t]["state"] == "moot" and proposed[t]["evidence"] for t in moot)
        # 1F creates outreach.bit_signals as decided where its merge sources still exist (2026-02-20)
        assert moot == (GONE if gated else GONE - {"outreach.bit_signals"}), proposed
        if gated:
            assert proposed["people.title_slot_mapping"]["register"] == "REGISTRY"
        approve(conn)
        reports = run_all(executor(conn))
        assert "failed" not in {r.status for r in reports}, [r.text for r in reports if r.status == "failed"]
        rows = rowcheck.take(conn)

        before = _lock_state(conn)
        shown = leaf_lock.run(conn, plan, "lock_plan", apply=False)
        assert "plan mode: nothing written" in shown and "Phase 2 tables missing: none" in shown, shown
        assert all(f"moot (decided: skip) {t}:" in shown for t in moot), shown
        assert _lock_state(conn) == before
        if gated:
            assert "ROGUE_TABLE:" in shown and "PHANTOM_TABLE:" in shown and "COLUMN_DRIFT: not computed" in shown

        text = leaf_lock.run(conn, plan, "lock_apply", apply=True)
        assert f"enforcement {'owner_gate' if gated else 'event_trigger'}" in text, text
        applied = _lock_state(conn)
        assigned = {t for t, _, _ in applied["assignments"]}
        assert not assigned & moot and "people.people_master" in assigned
        if gated:
            assert applied["event_trigger"] == 0  # the owner's gate is adopted, not doubled
            assert applied["recorded"] and ("people.title_slot_mapping", "leaf_lock") in applied["recorded"]
            assert ("people", "title_slot_mapping", "REGISTRY", False, governance.REGISTERED_BY) in applied["registry"]

        again = leaf_lock.run(conn, plan, "lock_again", apply=True)
        assert "rows written: 0 (it was in place: nothing changed)" in again, again
        assert _lock_state(conn) == applied
        assert rowcheck.missing(rows, conn) == []

        with pytest.raises(Exception, match="approve --revert 2"):
            leaf_lock.revert(conn, plan, "revert_unapproved", apply=True)
        planned = leaf_lock.revert(conn, plan, "revert_plan", apply=False)
        assert "plan mode: nothing written" in planned and _lock_state(conn) == applied
        approve_revert(conn, leaf_lock.PHASE)
        leaf_lock.revert(conn, plan, "revert", apply=True)
        assert _lock_state(conn) == before
        if gated:
            assert ("people", "title_slot_mapping") not in {r[:2] for r in _lock_state(conn)["registry"]}
        assert rowcheck.missing(rows, conn) == []


def test_without_the_decision_the_leaf_lock_refuses_and_names_the_gone_tables_with_their_evidence(twin_2026_03_db):
    with psycopg.connect(twin_2026_03_db, autocommit=True) as conn:
        plan = plan_module.load()
        shown = leaf_lock.run(conn, plan, "lock_plan", apply=False)
        assert all(f"moot (UNDECIDED: `make decide ACCEPT=proposed`) {t}:" in shown for t in GONE), shown
        assert "outreach.campaigns: outreach.campaigns was dropped on 2026-02-20" in shown
        with pytest.raises(PlanRejected, match="present or decided moot"):
            leaf_lock.run(conn, plan, "lock_apply", apply=True)


def test_the_drift_report_uses_the_owner_classes(twin_2026_03_db):
    with psycopg.connect(twin_2026_03_db, autocommit=True) as conn:
        conn.execute("ALTER EVENT TRIGGER ctb_enforce_table_registration DISABLE")  # the owner's gate would refuse it
        conn.execute("CREATE TABLE public.rogue_scratch (id int)")
        conn.execute("ALTER EVENT TRIGGER ctb_enforce_table_registration ENABLE")
        conn.execute(
            "INSERT INTO ctb.table_registry (table_schema, table_name, leaf_type) VALUES ('public', 'phantom_gone', 'CANONICAL')"
        )
        found = governance.drift(conn)
        kinds = {d.kind for d in found}
        assert ("ROGUE_TABLE", "public.rogue_scratch") in {(d.kind, d.name) for d in found}
        assert ("PHANTOM_TABLE", "public.phantom_gone") in {(d.kind, d.name) for d in found}
        assert kinds <= set(governance.DRIFT_CLASSES) | {governance.UNREGISTERED_CTB}
        assert governance.UNREGISTERED_CTB in kinds  # the governance layer's own ctb tables, unregistered
        assert "IMMUTABILITY_MISSING" in kinds and "RAW_COLUMNS_MISSING" in kinds
        assert "SUPERUSER_CONNECTION" in kinds  # the test session connects as the cluster's superuser
        lines = governance.drift_summary(found)
        assert [line.split(":")[0] for line in lines[:14]] == list(governance.DRIFT_CLASSES)
        assert all("not computed" in line for line in lines if line.split(":")[0] in governance.NOT_COMPUTED)
