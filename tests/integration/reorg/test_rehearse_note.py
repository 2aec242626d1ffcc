"""The rehearse run note says what a rehearsal with the trigger form's defaults does: it runs on
the live target and holds the phase's exclusive locks while its one transaction lasts."""

import threading

import psycopg

from ple.orchestration.reorg_dags import PARAMS
from ple.orchestration.run_notes import note_for
from ple.reorg.context import Settings
from tests.reorg_helpers import executor
from tests.unit.orchestration.dag_runs import dag_run


def test_a_default_rehearsal_holds_exclusive_locks_on_the_live_target_as_its_note_says(fresh_db):
    note = note_for(dag_run({"mode": "rehearse"}, PARAMS))
    assert "on the live target itself" in note
    defaults = {name: param.value for name, param in PARAMS.items()}
    assert Settings.from_params({**defaults, "mode": "rehearse"}).rehearse_conn_id in (None, "")
    seen = []
    with psycopg.connect(fresh_db, autocommit=True) as conn, psycopg.connect(fresh_db, autocommit=True) as watcher:
        stop = threading.Event()

        def watch():
            while not stop.is_set():
                seen.extend(
                    watcher.execute(
                        "SELECT relation::regclass::text FROM pg_locks WHERE mode = 'AccessExclusiveLock' "
                        "AND locktype = 'relation' AND pid <> pg_backend_pid() AND relation IS NOT NULL"
                    ).fetchall()
                )

        thread = threading.Thread(target=watch)
        thread.start()
        try:
            report = executor(
                conn, mode="rehearse", rehearse_budget_seconds=defaults["rehearse_budget_seconds"]
            ).preflight("1a")
        finally:
            stop.set()
            thread.join()
    assert "REHEARSAL on the target itself" in report.text and "at most 30 s" in report.text
    assert any(not name.startswith("pg_") for (name,) in seen)  # the live tables, exclusively locked
