"""Rule one as a property: whatever rows a merge or fold source holds (within the source's own
types, lengths, NOT NULLs and CHECKs), when lint and plan mode call a phase clear, apply runs
through; when apply stops, lint or plan mode said so first. Rule zero holds either way: the
independent row check (tests/rowcheck.py, over the phase's tables: rows.py) finds every row that existed before apply.

Each example: a fresh clone of the pre-plan fixture, the phase's setting (1B: production's CHECK
chk_status on people.people_errors.status), rows inserted into and edited in every merge and fold
source of the phase (drawn from the source's catalog: tests/property/pgdata.py), then lint and
plan mode, then apply (preflight, steps, verify, freeze).
"""

from __future__ import annotations

import pytest
from hypothesis import event, given, note
from hypothesis import strategies as st

from tests import rowcheck
from tests.property import pgdata, rows
from tests.property.conftest import property_settings
from tests.property.phases import (
    SETTING_OF,
    apply_phase,
    lint_and_plan,
    moved_sources,
    write_source_rows,
)

PHASES_WITH_DATA = ["1b", "1c", "1d", "1e", "1f", "1g", "1j"]


def check_phase(conn, data, phase_id: str) -> None:
    for setting in SETTING_OF.get(phase_id, []):
        setting(conn)
    note(f"written: {write_source_rows(conn, data, phase_id)}")
    blocking = lint_and_plan(conn, phase_id)
    note(f"blocking findings: {blocking}")
    rows_before = rows.take(conn, [phase_id])
    error = apply_phase(conn, phase_id)
    note(f"apply: {error!r}")
    assert rowcheck.missing(rows_before, conn) == [], "rule zero: rows lost"
    if blocking:
        event(f"{phase_id}: lint or plan mode blocks")
        return
    assert error is None, f"lint and plan mode called {phase_id} clear, but apply failed: {error!r}"
    event(f"{phase_id}: clear and applied")


@pytest.mark.parametrize("phase_id", PHASES_WITH_DATA)
@property_settings()
@given(data=st.data())
def test_a_phase_lint_calls_clear_applies_and_loses_nothing(fresh_clone, phase_id, data):
    with fresh_clone() as conn:
        check_phase(conn, data, phase_id)


def test_the_generator_reads_every_source_from_the_catalog(fresh_clone):
    with fresh_clone() as conn:
        for phase_id in PHASES_WITH_DATA:
            for name in moved_sources(phase_id):
                table = pgdata.read_table(conn, name)
                assert table is not None and table.columns, name
