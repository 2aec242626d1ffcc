"""Adversarial: the compatibility views at old names (plugins/ple/reorg/compat.py) must not
change what the tool proves: a write through a MERGE view leaves the merge's proof intact."""

from __future__ import annotations

from tests.reorg_helpers import approve, executor


def _insert_through(conn, name: str, keyed_like: str) -> None:
    """An INSERT through the old name `name` of a copy of one of its rows, its primary key (that of
    the table `keyed_like`) made new: what the application keeps doing once the name is a view."""
    from psycopg import sql
    from psycopg.types.json import Jsonb

    ident = sql.Identifier(*name.split("."))
    row = conn.execute(sql.SQL("SELECT to_jsonb(x) FROM {} AS x LIMIT 1").format(ident)).fetchone()[0]
    keys = conn.execute(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_constraint c "
        "JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY(c.conkey) "
        "WHERE c.contype = 'p' AND c.conrelid = to_regclass(%s)",
        (keyed_like,),
    ).fetchall()
    # no primary key: the view's INSERT makes a key of its own (md5 of the row + '#compat-' + a uuid)
    for column, kind in keys:
        if kind == "uuid":
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
        sql.SQL("INSERT INTO {} SELECT * FROM jsonb_populate_record(NULL::{}, %s::jsonb)").format(
            ident, sql.Identifier(*keyed_like.split("."))
        ),
        (Jsonb(row),),
    )


def test_a_write_through_a_merge_view_before_the_verify_does_not_turn_the_verify_red(conn):
    """Attack: phase 1B merges marketing.failed_company_match and leaves a compatibility view at its
    name, whose INSERT lands in the target with ctb_source_table = the source (compat.py: that is the
    view's promise: 'an INSERT through it lands in the target as the merge writes rows'). The
    application writes one row through the old name between the merge step and the phase's verify
    task (or before a retry of the verify). merge.verify compares count and checksum of every row
    with ctb_source_table = the source against what the merge stored, so the application's row
    makes the verify fail: 'N+1 rows from ... now, N stored by the merge'. Nothing was lost; the
    task is red and says the merged rows are wrong."""
    approve(conn)
    ex = executor(conn, run_id="run-1b")
    ex.preflight("1b")
    for step in ex.declared.phase("1b").steps:
        ex.run_step(step.step_id)
    source = "marketing.failed_company_match"
    _insert_through(conn, source, ex.plan.archive_name(source))
    ex.verify("1b")
