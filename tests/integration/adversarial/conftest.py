"""Fixtures of the adversarial tests: a private decisions directory for every test, and 1B's
batched-merge setting (a bypassed sync trigger on the live target, a slow row trigger, a keyed
source over many pages)."""

import pytest

from ple.reorg import decisions
from tests.integration.adversarial.workload import SOURCE, TARGET


@pytest.fixture(autouse=True)
def decisions_dir(tmp_path, monkeypatch):
    monkeypatch.setenv(decisions.DECISIONS_DIR_ENV, str(tmp_path / "decisions"))
    return tmp_path / "decisions"


@pytest.fixture
def synced(conn):
    """As tests/integration/reorg/test_merge_batches.py: a sync trigger the merge bypasses, a row
    trigger that costs 2 ms a row, and a keyed source of ~2,000 rows over many pages."""
    conn.execute("CREATE TABLE public.error_master (source text, error_id uuid)")
    conn.execute(
        "CREATE FUNCTION public.sync_error() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN INSERT INTO public.error_master VALUES (TG_TABLE_NAME, NEW.error_id); RETURN NEW; END $$"
    )
    conn.execute(
        f"CREATE TRIGGER sync_people_errors AFTER INSERT ON {TARGET} FOR EACH ROW EXECUTE FUNCTION public.sync_error()"
    )
    conn.execute(
        "CREATE FUNCTION public.slow_row() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(0.002); RETURN NEW; END $$"
    )
    conn.execute(f"CREATE TRIGGER slow_row BEFORE INSERT ON {TARGET} FOR EACH ROW EXECUTE FUNCTION public.slow_row()")
    conn.execute(
        f"INSERT INTO {SOURCE} SELECT (jsonb_populate_record(s, jsonb_build_object('id', m.top + g * 1000 + s.id))).* "
        f"FROM {SOURCE} AS s, generate_series(1, 500) AS g, (SELECT max(id) AS top FROM {SOURCE}) AS m"
    )
    conn.execute(f"ALTER TABLE {SOURCE} ADD PRIMARY KEY (id)")
    conn.execute(f"ANALYZE {SOURCE}")
    return conn
