"""The independent row check (tests/rowcheck.py) on a real PostgreSQL: it must see every kind of
loss and accept every lossless place a row can go."""

import itertools

import psycopg
import pytest

from ple_dev import embedded_pg
from tests import rowcheck

_databases = itertools.count(1)

SETUP = """
CREATE SCHEMA sales;
CREATE SCHEMA archive;
CREATE TABLE sales.customer (id int, name text, born date, score numeric(6,2), tags text[]);
INSERT INTO sales.customer VALUES
  (1, 'Ada', '1815-12-10', 99.50, '{math}'),
  (2, 'Grace', '1906-12-09', 97.25, '{navy,cobol}'),
  (2, 'Grace', '1906-12-09', 97.25, '{navy,cobol}'),
  (4, NULL, NULL, NULL, NULL);
CREATE TABLE sales.customer_dup (id int, name text, born date, score numeric(6,2), tags text[]);
INSERT INTO sales.customer_dup SELECT * FROM sales.customer WHERE id = 1;
CREATE TABLE sales.note (note_id int PRIMARY KEY, body text);
INSERT INTO sales.note VALUES (1, 'first'), (2, 'second');
"""


@pytest.fixture
def db(pg_server):
    name = f"ple_rowcheck_{next(_databases)}"
    dsn = embedded_pg.create_database(pg_server, name)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(SETUP)
        yield conn
    embedded_pg.drop_database(pg_server, name)


def _lost(before, conn) -> dict[str, int]:
    lost: dict[str, int] = {}
    for row in rowcheck.missing(before, conn):
        lost[row.table] = lost.get(row.table, 0) + row.copies
    return lost


def test_take_ignores_the_tools_own_schema(db):
    db.execute("CREATE SCHEMA ple_ops; CREATE TABLE ple_ops.ledger (x int); INSERT INTO ple_ops.ledger VALUES (1)")
    names = {t.name for t in rowcheck.take(db).values()}
    assert names == {"sales.customer", "sales.customer_dup", "sales.note"}


def test_nothing_changed_nothing_missing(db):
    assert rowcheck.missing(rowcheck.take(db), db) == []


def test_finds_a_deleted_row_even_with_an_identical_twin_left(db):
    before = rowcheck.take(db)
    db.execute("DELETE FROM sales.customer WHERE ctid = (SELECT min(ctid) FROM sales.customer WHERE id = 2)")
    assert _lost(before, db) == {"sales.customer": 1}


def test_finds_a_changed_value(db):
    before = rowcheck.take(db)
    db.execute("UPDATE sales.customer SET score = 99.51 WHERE id = 1")
    assert _lost(before, db) == {"sales.customer": 1}


def test_finds_a_dropped_table(db):
    before = rowcheck.take(db)
    db.execute("DROP TABLE sales.note")
    assert _lost(before, db) == {"sales.note": 2}


def test_finds_a_dropped_column(db):
    before = rowcheck.take(db)
    db.execute("ALTER TABLE sales.note DROP COLUMN body")
    assert _lost(before, db) == {"sales.note": 2}


def test_identical_rows_of_two_tables_need_two_copies(db):
    before = rowcheck.take(db)
    db.execute("DELETE FROM sales.customer_dup")
    assert _lost(before, db) == {"sales.customer_dup": 1}


def test_accepts_a_moved_and_renamed_table_with_an_added_column(db):
    before = rowcheck.take(db)
    db.execute(
        "ALTER TABLE sales.customer RENAME TO sales_customer_ctb;"
        "ALTER TABLE sales.sales_customer_ctb SET SCHEMA archive;"
        "ALTER TABLE archive.sales_customer_ctb ADD COLUMN id_pk bigint GENERATED ALWAYS AS IDENTITY"
    )
    assert rowcheck.missing(before, db) == []


def test_accepts_rows_moved_into_a_wider_archive_table(db):
    before = rowcheck.take(db)
    db.execute(
        "CREATE TABLE archive.everything (archived_at timestamptz DEFAULT now(), note_id int, body text, extra jsonb);"
        "INSERT INTO archive.everything (note_id, body) SELECT note_id, body FROM sales.note;"
        "DROP TABLE sales.note"
    )
    assert rowcheck.missing(before, db) == []


def test_accepts_rows_kept_as_jsonb_in_a_merge_target(db):
    before = rowcheck.take(db)
    db.execute(
        "CREATE TABLE sales.person (person_id int, ctb_source_table text, ctb_source_row jsonb);"
        "INSERT INTO sales.person SELECT id, 'sales.customer', to_jsonb(c) || '{\"later\": 1}' FROM sales.customer c;"
        "INSERT INTO sales.person SELECT id, 'sales.customer_dup', to_jsonb(c) FROM sales.customer_dup c;"
        "DROP TABLE sales.customer, sales.customer_dup"
    )
    assert rowcheck.missing(before, db) == []


def test_a_jsonb_copy_with_a_changed_value_is_not_accepted(db):
    before = rowcheck.take(db)
    db.execute(
        "CREATE TABLE sales.person (ctb_source_row jsonb);"
        "INSERT INTO sales.person SELECT jsonb_set(to_jsonb(n), '{body}', '\"edited\"') FROM sales.note n WHERE note_id = 1;"
        "INSERT INTO sales.person SELECT to_jsonb(n) FROM sales.note n WHERE note_id = 2;"
        "DROP TABLE sales.note"
    )
    assert _lost(before, db) == {"sales.note": 1}


def test_a_column_named_t_or_with_a_percent_sign_is_a_column(db):
    """The queries alias each table `t` and carry column names as literals: a column named `t` is
    not the row, and a `%` in a name is not a placeholder (rows moved into JSONB included)."""
    db.execute(
        'CREATE TABLE sales.odd (id int, t text, "disc%" int, "a%%b" text);'
        "INSERT INTO sales.odd VALUES (1, 'x', 10, 'y'), (2, 'x', 20, 'y')"
    )
    before = rowcheck.take(db)
    db.execute("UPDATE sales.odd SET id = 3 WHERE id = 2")  # the `t` column is the same on both rows
    assert _lost(before, db) == {"sales.odd": 1}
    db.execute(
        "CREATE TABLE sales.kept (ctb_source_row jsonb);"
        "INSERT INTO sales.kept SELECT to_jsonb(o) FROM sales.odd o;"
        "UPDATE sales.kept SET ctb_source_row = jsonb_set(ctb_source_row, '{id}', '2') WHERE ctb_source_row ->> 'id' = '3';"
        "DROP TABLE sales.odd"
    )
    assert rowcheck.missing(before, db) == []
