"""Adversarial: two reverts of one phase at once (an operator retrying from the CLI while the
ctb_revert DAG runs), on a phase whose merge target the tool created (decided)."""

import threading

import psycopg

from tests.reconcile_helpers import decide
from tests.reorg_helpers import approve, approve_revert, assert_nothing_lost, executor, run_phase, table_fingerprints

CREATED = "cl.cl_err_existence"  # 1b merges marketing.failed_low_confidence into it, and nothing else does


def _applied_with_a_created_target(conn) -> dict:
    conn.execute(f"DROP TABLE {CREATED} CASCADE")
    decide(conn)
    approve(conn)
    before = table_fingerprints(conn)
    run_phase(executor(conn), "1b")
    approve_revert(conn, "1b")
    return before


def test_a_revert_run_again_after_it_completed_is_still_proven(conn):
    _applied_with_a_created_target(conn)
    assert executor(conn).revert_phase("1b")[-1].status == "reverted"
    try:
        again = executor(conn).revert_phase("1b")[-1].status
    except Exception as exc:
        again = f"{type(exc).__name__}: {str(exc).splitlines()[-1]}"
    assert again == "reverted", f"the same revert run again (a retried task) ends {again}"


def test_two_reverts_at_once_converge_and_lose_nothing(conn, fresh_db):
    before = _applied_with_a_created_target(conn)
    results, start = {}, threading.Barrier(2)

    def revert(name):
        with psycopg.connect(fresh_db, autocommit=True) as own:
            ex = executor(own)
            start.wait()
            try:
                results[name] = ex.revert_phase("1b")[-1].status
            except Exception as exc:
                results[name] = f"{type(exc).__name__}: {exc!s}"

    threads = [threading.Thread(target=revert, args=(n,)) for n in ("cli", "dag")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set(results.values()) == {"reverted"}, results
    assert conn.execute("SELECT to_regclass(%s)", (CREATED,)).fetchone()[0] is None  # dropped once
    assert_nothing_lost(conn, before)  # every table's rows, over its columns before the apply
