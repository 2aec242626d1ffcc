"""Adversarial: the fold's order (plugins/ple/reorg/actions/fold.py `side_for`). A side table with a
primary key is ordered by the key alone; without one, by the join column and then the whole row's
text. The fold applies from the live side table and verify recomputes from the archived one: a key
dropped from (or adopted on) the archive after the fold must not make verify pick another 'latest'
side row for the same data, so the fold records the key it ordered by and verify uses it.
(Held: a JSONB fold of shape `object` refuses several side rows per key; a re-run is `already_done`.)"""

import pytest

from ple.errors import VerificationFailed
from tests.reorg_helpers import approve, executor, run_phase

SIDE = "people.person_scores"  # 1g pivots it into people.people_master.<type>_score, the latest per type


def _two_latest_scores_for_one_person(conn, keyed: bool, second_id: int = 10, delta: int = 1) -> str:
    """One person gets two 'seniority' scores of the same scored_at, id 9 (score s) and `second_id`
    (score s + `delta`): by the key (DESC), 10 is the latest; by the row's text (DESC: '{"id": 9, ...' >
    '{"id": 10, ...'), 9 is. With `second_id` 9 (a keyless legacy table's duplicate id), only the
    whole row's text orders them."""
    key = conn.execute(
        "SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'p'", (SIDE,)
    ).fetchone()
    if key:
        conn.execute(f'ALTER TABLE {SIDE} DROP CONSTRAINT "{key[0]}"')
    conn.execute(f"UPDATE {SIDE} SET id = id + 1000000")
    person = conn.execute(
        f"UPDATE {SIDE} SET id = 9 WHERE id = (SELECT min(id) FROM {SIDE} WHERE score_type = 'seniority') "
        "RETURNING person_unique_id"
    ).fetchone()[0]
    conn.execute(
        f"INSERT INTO {SIDE} (id, person_unique_id, score_type, score, model_version, scored_at) "
        f"SELECT %s, person_unique_id, score_type, score + %s, model_version, scored_at FROM {SIDE} WHERE id = 9",
        (second_id, delta),
    )
    if keyed:
        conn.execute(f"ALTER TABLE {SIDE} ADD PRIMARY KEY (id)")
    return person


def _verify_problems(conn) -> str:
    try:
        report = executor(conn).verify("1g")
    except VerificationFailed as exc:
        return str(exc)
    return "" if report.status != "failed" else report.text


@pytest.mark.parametrize(
    "keyed_at_apply", [True, False], ids=["key-dropped-after-the-fold", "key-added-after-the-fold"]
)
def test_verify_agrees_with_the_fold_after_the_archived_side_tables_key_changes(conn, keyed_at_apply):
    person = _two_latest_scores_for_one_person(conn, keyed_at_apply)
    scores = dict(conn.execute(f"SELECT id, score FROM {SIDE} WHERE id IN (9, 10)").fetchall())
    approve(conn)
    run_phase(executor(conn), "1g")
    folded = conn.execute(
        "SELECT seniority_score FROM people.people_master WHERE unique_id = %s", (person,)
    ).fetchone()[0]
    assert folded == scores[10 if keyed_at_apply else 9]  # the fold's order, as documented
    archived = executor(conn).plan.archive_name(SIDE)
    key = conn.execute(
        "SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'p'", (archived,)
    ).fetchone()
    conn.execute(f"ALTER TABLE {archived} " + (f'DROP CONSTRAINT "{key[0]}"' if key else "ADD PRIMARY KEY (id)"))
    problems = [line for line in _verify_problems(conn).splitlines() if "differ" in line or "PROBLEM" in line]
    assert problems == [], "the archived side rows are unchanged, yet verify finds the fold wrong"
