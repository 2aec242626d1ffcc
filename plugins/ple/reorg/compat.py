"""Compatibility objects: the name a step takes away keeps working for a grace period (issue 23).

Expand, in the same transaction as the step that takes the name away (default on; a decision
`actions.<source>.compat: none` leaves it out):
  MOVE     a view at the old name over the moved table: PostgreSQL updates it automatically, so
           reads and writes go on; security_invoker, so the table's own privileges and RLS apply
           to the caller exactly as before.
  ARCHIVE  a read-only view over the archive; a write is refused naming where the table is now.
  MERGE    a view over the target filtered by provenance (ctb_source_table = the source),
           projected back to the source's columns from ctb_source_row; an INSERT through it
           lands in the target as the merge writes rows (discriminator, fills, provenance,
           ctb_run_id 'compat:<old name>'); UPDATE and DELETE through it are refused (a DELETE
           through an old name must not delete data, and an UPDATE would make the provenance lie).
  FOLD     a view over the side rows: the archived side table's (frozen, unchanged) and those
           written through the old name since, kept whole in `<archive>_writes` with who wrote
           them and when (fold_sql.writes_table). An INSERT through it adds the row there and
           folds again the canonical rows its key names, with the fold's own aggregate, so every
           folded value stays what verify recomputes; UPDATE and DELETE are refused (no side row
           is changed or deleted through an old name). A revert returns the written rows to the
           side table.
MERGE and FOLD views take the old table's column defaults (an INSERT through a view with an
INSTEAD OF trigger gets NULL for a column it leaves out otherwise), so a serial key keeps counting.
Each view carries a comment starting with MARK: the catalog the engine reads leaves compatibility
views out (catalog/tables.sql), so a step, its re-run and its revert see the table alone. The
old table's grants are copied to the view; its owner too where the tool may (same-table views).
The DDL is kept in ple_ops.compat_object, so the contract's revert can make the object again.

Usage: writes through a MERGE or FOLD view are counted by the view's statement-level trigger (the other
kinds refuse writes, or, for MOVE, PostgreSQL rewrites the write onto the table and fires the
table's statement triggers, not the view's). Reads are counted only from pg_stat_statements where
it is installed (usage.py says what cannot be measured)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from ple import governance
from ple.catalog import TableInfo
from ple.errors import PlanRejected
from ple.reorg import merge_mapping, reconcile, usage
from ple.reorg.actions import fold_sql
from ple.reorg.context import Context, Statement
from ple.sqlutil import qualified, raw_template

MARK = "ple_ctb compat view"
WRITES_MARK = "ple_ctb compat writes"  # a FOLD view's table of written rows (catalog/tables.sql leaves it out too)
KINDS = ("MOVE", "ARCHIVE", "MERGE", "FOLD")
PLACEHOLDER = re.compile(r"%\((\w+)\)s|%%")
# the privileges aclexplode() names on a table, each a keyword GRANT takes as it is
PRIVILEGES = frozenset({"SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER"})


@dataclass
class Compat:
    """One compatibility object: the view at `name` over `over`, and what makes and removes it."""

    name: str
    kind: str
    over: str
    statements: list[Statement] = field(default_factory=list)
    drop: list[Statement] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    tables: list[str] = field(default_factory=list)  # tables it creates (registered with the owner first)


def wanted(ctx: Context, source: str) -> bool:
    return source not in ctx.no_compat


def planned(ctx: Context, step) -> list[Compat]:
    """The compatibility objects the step leaves, from the catalog as it stands before the step."""
    if step.kind not in KINDS:
        return []
    result = []
    for action in step.actions:
        if not wanted(ctx, action.source):
            continue
        source = ctx.catalog.get(action.source)
        destination = reconcile.destination(ctx.plan, action)
        if source is None or destination is None:
            continue
        if step.kind == "MERGE":
            result.append(_merge(ctx, step, action, source))
        elif step.kind == "MOVE":
            result.append(_same_table(ctx, "MOVE", action.source, destination, source, None))
        elif step.kind == "ARCHIVE":
            refusal = f"{action.source} was archived to {destination}; nothing writes there"
            result.append(_same_table(ctx, "ARCHIVE", action.source, destination, source, refusal))
        else:
            result.append(_fold(ctx, step, action, source, destination))
    return result


def _comment(kind: str, name: str, over: str) -> Statement:
    return Statement(
        f"mark {name} as the reorganization's compatibility view",
        sql.SQL("COMMENT ON VIEW {} IS {}").format(
            qualified(name), sql.Literal(f"{MARK}: {kind} {name} -> {over}; removed by ctb_contract after its grace")
        ),
    )


def _acl(
    conn: psycopg.Connection, oid: int, view: str, *, same_owner: bool, kind: str = "VIEW", only: str | None = None
) -> tuple[list[Statement], list[str]]:
    """The old table's grants (and owner, where asked and allowed) on the view (or `kind` TABLE;
    `only`: that privilege alone, e.g. SELECT on the table of rows written through a FOLD view,
    which only its trigger writes)."""
    owner, member = conn.execute(
        "SELECT pg_get_userbyid(relowner), pg_has_role(relowner, 'MEMBER') FROM pg_class WHERE oid = %s", (oid,)
    ).fetchone()
    result, notes = [], []
    if same_owner and member:
        result.append(
            Statement(
                f"{view} owned by {owner}, as the table was",
                sql.SQL("ALTER {} {} OWNER TO {}").format(sql.SQL(kind), qualified(view), sql.Identifier(owner)),
            )
        )
    elif same_owner:
        notes.append(f"{view}: owned by the tool's role (it is not a member of {owner}, the table's owner)")
    grants = conn.execute(
        "SELECT CASE WHEN a.grantee = 0 THEN NULL ELSE pg_get_userbyid(a.grantee) END, a.privilege_type, a.is_grantable "
        "FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) a WHERE c.oid = %s AND a.grantee <> c.relowner "
        "ORDER BY 1 NULLS FIRST, 2",
        (oid,),
    ).fetchall()
    for grantee, privilege, grantable in grants:
        if only is not None and privilege != only:
            continue
        if privilege not in PRIVILEGES:
            notes.append(f"{view}: {privilege} to {grantee or 'PUBLIC'} on the table is not a privilege a view takes")
            continue
        result.append(
            Statement(
                f"grant {privilege} to {grantee or 'PUBLIC'}, as on the table",
                sql.SQL("GRANT {} ON {} TO {}{}").format(
                    sql.SQL(privilege),
                    qualified(view),
                    sql.Identifier(grantee) if grantee else sql.SQL("PUBLIC"),
                    sql.SQL(" WITH GRANT OPTION") if grantable else sql.SQL(""),
                ),
            )
        )
    return result, notes


def _refuse(view: str, message: str) -> Statement:
    return Statement(
        f"writes through {view} refused, naming where the rows are",
        sql.SQL(
            "CREATE TRIGGER ple_compat_refuse INSTEAD OF INSERT OR UPDATE OR DELETE ON {} "
            "FOR EACH ROW EXECUTE FUNCTION ple_ops.compat_refuse({})"
        ).format(qualified(view), sql.Literal(message)),
    )


def _counted(view: str) -> Statement:
    return Statement(
        f"count who writes through {view} (ple_ops.compat_use)",
        sql.SQL(
            "CREATE TRIGGER ple_compat_used AFTER INSERT OR UPDATE OR DELETE ON {} "
            "FOR EACH STATEMENT EXECUTE FUNCTION ple_ops.compat_used({})"
        ).format(qualified(view), sql.Literal(view)),
    )


def _same_table(ctx: Context, kind: str, name: str, over: str, source: TableInfo, refusal: str | None) -> Compat:
    """A view over the very table that was `name` (moved, archived, or a fold's archived side)."""
    columns = sql.SQL(", ").join(sql.Identifier(c) for c in source.column_names)
    statements = [
        Statement(
            f"{name} keeps working as a view over {over}",
            sql.SQL("CREATE VIEW {} WITH (security_invoker = true) AS SELECT {} FROM {}").format(
                qualified(name), columns, qualified(over)
            ),
        ),
        _comment(kind, name, over),
    ]
    if refusal:
        statements.append(_refuse(name, refusal))
    grants, notes = _acl(ctx.conn, source.oid, name, same_owner=True)
    drop = [Statement(f"drop the compatibility view {name}", sql.SQL("DROP VIEW {}").format(qualified(name)))]
    return Compat(name, kind, over, statements + grants, drop, notes)


def function_name(view: str) -> str:
    """ple_ops.<function> of a MERGE or FOLD view's INSTEAD OF INSERT trigger (unique, at most 63 bytes)."""
    name = "compat_insert_" + view.replace(".", "_")
    if len(name) > 63:
        name = name[:54] + "_" + hashlib.sha1(view.encode()).hexdigest()[:8]
    return name


def literal_text(conn: psycopg.Connection, statement: Statement) -> str:
    """The statement as text with its parameters as SQL literals (for a function body: a trigger
    runs it without parameters)."""
    text = statement.query.as_string(conn)

    def value(match: re.Match) -> str:
        if match.group(0) == "%%":
            return "%"
        return sql.Literal(statement.params[match.group(1)]).as_string(conn)

    return PLACEHOLDER.sub(value, text)


def _merge(ctx: Context, step, action, source: TableInfo) -> Compat:

    spec = ctx.plan.merge_targets[action.target]
    target = ctx.catalog.get(action.target)
    archived = ctx.plan.archive_name(action.source)
    name = action.source
    notes = []
    view = Statement(
        f"{name} keeps working as a view over {action.target} (ctb_source_table = {name}), "
        "its rows as the source had them (ctb_source_row)",
        sql.SQL(
            "CREATE VIEW {view} AS SELECT {columns} FROM {target} AS t "
            "CROSS JOIN LATERAL jsonb_populate_record(NULL::{archived}, t.ctb_source_row) AS r "
            "WHERE t.ctb_source_table = {source}"
        ).format(
            view=qualified(name),
            columns=sql.SQL(", ").join(sql.SQL("r.{}").format(sql.Identifier(c)) for c in source.column_names),
            target=qualified(action.target),
            archived=qualified(archived),
            source=sql.Literal(action.source),
        ),
    )
    statements = [view, _comment("MERGE", name, action.target)]
    if target is None or target.column("ctb_source_table") is None:
        notes.append(
            f"{name}: the target {action.target} has no provenance columns yet (plan mode before the preflight)"
        )
        insert_body = "-- the INSERT the merge makes, for NEW, once the preflight gave the target its columns"
    else:
        plan = merge_mapping.mapping(action, spec, source, target, ctx.catalog)
        plan.params["compat_run"] = f"compat:{name}"
        discriminator = target.column(spec.discriminator_column)
        key = (
            sql.SQL("concat_ws('|', {})").format(
                sql.SQL(", ").join(sql.SQL("(j.s).{}::text").format(sql.Identifier(c)) for c in source.primary_key)
            )
            if source.primary_key
            else sql.SQL("md5(to_jsonb(j.s)::text) || '#compat-' || gen_random_uuid()::text")
        )
        insert = Statement(
            "",
            sql.SQL(
                "INSERT INTO {target} ({columns}, {disc}, ctb_source_table, ctb_source_key, ctb_source_row, ctb_run_id, ctb_merged_at) "
                "SELECT {values}, {disc_value}, %(source_table)s, k.ctb_key, k.ctb_row, %(compat_run)s, now() "
                "FROM (SELECT j.s, to_jsonb(j.s) AS ctb_row, {key} AS ctb_key "
                "FROM (SELECT ROW(NEW.*)::{archived} AS s) AS j) AS k"
            ).format(
                target=qualified(action.target),
                columns=sql.SQL(", ").join(sql.Identifier(f.column) for f in plan.fills),
                disc=sql.Identifier(spec.discriminator_column),
                values=sql.SQL(", ").join(f.expression for f in plan.fills),
                disc_value=merge_mapping.cast_to(sql.Placeholder("discriminator"), discriminator)
                if discriminator
                else sql.Placeholder("discriminator"),
                key=key,
                archived=qualified(archived),
            ),
            plan.params,
        )
        insert_body = literal_text(ctx.conn, insert) + ";"
    made, drop, more = _insert_path(
        ctx.conn,
        name,
        source.oid,
        f"BEGIN\n{insert_body}\nRETURN NEW;\nEND",
        f"lands in {action.target} with its discriminator and provenance",
        f"{name} was merged into {action.target} ({spec.discriminator_column} = {action.value}); change those rows there",
        same_owner=False,
        rls=f"{name}: its row-level security policies do not follow to the view ({action.target}'s apply)",
    )
    return Compat(
        name, "MERGE", action.target, statements + _defaults(ctx.conn, source.oid, name) + made, drop, notes + more
    )


def _defaults(conn: psycopg.Connection, oid: int, view: str) -> list[Statement]:
    """The old table's column defaults on the view (an identity column's: the next value of its
    sequence): an INSERT through a view with an INSTEAD OF trigger gets NULL for a column it
    leaves out, unless the view has the default itself. A sequence is named by its OID: the step
    moves the table, and the sequences it owns move with it (include/sql/ops/compat_defaults.sql)."""
    return [
        Statement(
            f"{view}.{column} defaults to {default}, as on the table",
            sql.SQL("ALTER VIEW {} ALTER COLUMN {} SET DEFAULT {}").format(
                qualified(view), sql.Identifier(column), sql.SQL(default)
            ),
        )
        for column, default in conn.execute(raw_template("ops/compat_defaults"), (oid,)).fetchall()
    ]


def _insert_path(
    conn: psycopg.Connection,
    name: str,
    oid: int,
    body: str,
    lands: str,
    refusal: str,
    *,
    same_owner: bool,
    rls: str,
) -> tuple[list[Statement], list[Statement], list[str]]:
    """What a MERGE or FOLD view takes writes with: (statements, drop statements, notes): its
    INSTEAD OF INSERT function (`body`) and trigger, the refusal of UPDATE and DELETE, the
    statement counter, the old table's grants; `rls`: the note where the table had row-level security."""
    function = sql.Identifier("ple_ops", function_name(name))
    grants, notes = _acl(conn, oid, name, same_owner=same_owner)
    if conn.execute("SELECT relrowsecurity FROM pg_class WHERE oid = %s", (oid,)).fetchone()[0]:
        notes.append(rls)
    drop = [
        Statement(f"drop the compatibility view {name}", sql.SQL("DROP VIEW {}").format(qualified(name))),
        Statement("drop its insert function", sql.SQL("DROP FUNCTION {}()").format(function)),
    ]
    return _insert_trigger(name, function, body, lands, refusal) + grants, drop, notes


def _insert_trigger(name: str, function: sql.Identifier, body: str, lands: str, refusal: str) -> list[Statement]:
    """A MERGE or FOLD view's INSTEAD OF INSERT function and trigger, the refusal of UPDATE and
    DELETE, and the statement counter."""
    return [
        Statement(
            f"an INSERT through {name} {lands}",
            sql.SQL(
                "CREATE FUNCTION {}() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog "
                "AS {}"
            ).format(function, sql.Literal(body)),
        ),
        Statement(
            f"INSERT through {name}",
            sql.SQL(
                "CREATE TRIGGER ple_compat_insert INSTEAD OF INSERT ON {} FOR EACH ROW EXECUTE FUNCTION {}()"
            ).format(qualified(name), function),
        ),
        Statement(
            f"UPDATE and DELETE through {name} refused (no data is deleted through an old name)",
            sql.SQL(
                "CREATE TRIGGER ple_compat_refuse INSTEAD OF UPDATE OR DELETE ON {} "
                "FOR EACH ROW EXECUTE FUNCTION ple_ops.compat_refuse({})"
            ).format(qualified(name), sql.Literal(refusal)),
        ),
        _counted(name),
        Statement(
            f"only the tool's role runs {function_name(name)} directly",
            sql.SQL("REVOKE ALL ON FUNCTION {}() FROM PUBLIC").format(function),
        ),
    ]


def _keys(conn: psycopg.Connection, oid: int) -> list[tuple[str, str, list[str], str | None, list[str]]]:
    """The table's unique indexes on plain columns (its primary key and unique constraints among
    them: kind p or u) and its foreign keys (kind f): (name, kind, columns, referenced table,
    referenced columns). Unique indexes on expressions or with a WHERE clause are not among them
    (their check is not emulated: docs/compatibility.md)."""
    return conn.execute(raw_template("ops/compat_keys"), {"oid": oid}).fetchall()


def _unique_unreturned(conn: psycopg.Connection, source: TableInfo, writes: str) -> list[Statement]:
    """The side table's keys, unique among the written rows not yet returned (a revert returns
    them into the side table, where the keys are unique)."""
    result = []
    for name, kind, columns, _, _ in _keys(conn, source.oid):
        if kind not in ("p", "u"):
            continue
        index = f"{writes.split('.', 1)[1][:40]}_{hashlib.sha1(name.encode()).hexdigest()[:8]}_key"
        result.append(
            Statement(
                f"{name} holds among the rows written through the old name",
                sql.SQL("CREATE UNIQUE INDEX IF NOT EXISTS {} ON {} ({}) WHERE {} IS NULL").format(
                    sql.Identifier(index),
                    qualified(writes),
                    sql.SQL(", ").join(map(sql.Identifier, columns)),
                    sql.Identifier(fold_sql.RETURNED_AT),
                ),
            )
        )
    return result


def _constraint_checks(
    conn: psycopg.Connection, source: TableInfo, name: str, archive: str, writes: str
) -> list[sql.Composable]:
    """What the side table refused, refused through its old name too: a key its archived rows
    have (unique among the written rows: `_unique_unreturned`), and a reference to a row its
    foreign keys' tables do not have (the archive's foreign keys are detached at the freeze, and
    the writes table has none, so that neither constrains live tables)."""
    checks = []
    for constraint, kind, columns, parent, parent_columns in _keys(conn, source.oid):
        new = [sql.SQL("NEW.{}").format(sql.Identifier(c)) for c in columns]
        if kind in ("p", "u"):
            checks.append(
                sql.SQL(
                    "IF EXISTS (SELECT 1 FROM {archive} AS a WHERE {match}) THEN RAISE EXCEPTION USING MESSAGE = {message}, "
                    "ERRCODE = 'unique_violation'; END IF;\n"
                ).format(
                    archive=qualified(archive),
                    match=sql.SQL(" AND ").join(
                        sql.SQL("a.{} = {}").format(sql.Identifier(c), v) for c, v in zip(columns, new, strict=True)
                    ),
                    message=sql.Literal(
                        f"duplicate key value violates unique constraint {constraint} of {name}: ({', '.join(columns)}) "
                        f"exists in {archive}"
                    ),
                )
            )
        else:
            checks.append(
                sql.SQL(
                    "IF {present} AND NOT EXISTS (SELECT 1 FROM {parent} AS p WHERE {match}) THEN "
                    "RAISE EXCEPTION USING MESSAGE = {message}, ERRCODE = 'foreign_key_violation'; END IF;\n"
                ).format(
                    present=sql.SQL(" AND ").join(sql.SQL("{} IS NOT NULL").format(v) for v in new),
                    parent=qualified(parent),
                    match=sql.SQL(" AND ").join(
                        sql.SQL("p.{} = {}").format(sql.Identifier(c), v)
                        for c, v in zip(parent_columns, new, strict=True)
                    ),
                    message=sql.Literal(
                        f"insert through {name} violates foreign key constraint {constraint}: "
                        f"({', '.join(columns)}) is not present in {parent}"
                    ),
                )
            )
    return checks


def _fold(ctx: Context, step, action, source: TableInfo, archive: str) -> Compat:
    """The side table's old name over its side rows (the archive's and those written since); an
    INSERT keeps the whole row in the writes table and folds the canonical rows its key names
    again, with the aggregate verify recomputes (restricted to those keys). The canonical rows
    are locked first, so that the aggregate (a new snapshot, read committed) sees every
    concurrent INSERT that committed before it: two writers of one key cannot leave the value of
    the first to commit."""
    name, writes, columns = action.source, fold_sql.writes_table(archive), source.column_names
    listed = sql.SQL(", ").join(map(sql.Identifier, columns))
    rows = fold_sql.side_rows(columns, archive, writes)
    keys_text = fold_sql.keys_as_text(ctx, step.target, step.actions)
    params: dict = {}
    side = fold_sql.side_for(
        ctx, action, 0, params, archive, fold_sql.order_of(source), keys_text=keys_text, rows=rows, table=source
    )
    statements = [
        Statement(
            f"rows written through {name} are kept whole in {writes}, with who wrote them and when",
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {w} (LIKE {a} INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING GENERATED, "
                "{at} timestamptz NOT NULL DEFAULT now(), "
                "{by} text NOT NULL DEFAULT session_user, {rat} timestamptz, {rby} text)"
            ).format(
                w=qualified(writes),
                a=qualified(archive),
                at=sql.Identifier(fold_sql.WRITTEN_AT),
                by=sql.Identifier(fold_sql.WRITTEN_BY),
                rat=sql.Identifier(fold_sql.RETURNED_AT),
                rby=sql.Identifier(fold_sql.RETURNED_BY),
            ),
        ),
        Statement(
            f"mark {writes} as the compatibility view's rows",
            sql.SQL("COMMENT ON TABLE {} IS {}").format(
                qualified(writes),
                sql.Literal(
                    f"{WRITES_MARK}: rows written through {name} (folded into {step.target}); a revert returns them"
                ),
            ),
        ),
    ]
    statements.append(  # a column the side table gained since the writes table was made (a re-apply)
        Statement(
            f"{writes} has every column {name} has",
            sql.SQL("ALTER TABLE {} {}").format(
                qualified(writes),
                sql.SQL(", ").join(
                    sql.SQL("ADD COLUMN IF NOT EXISTS {} {}").format(sql.Identifier(c.name), sql.SQL(c.type))
                    for c in source.columns
                ),
            ),
        )
    )
    statements += _unique_unreturned(ctx.conn, source, writes)
    owner_and_grants, notes = _acl(ctx.conn, source.oid, writes, same_owner=True, kind="TABLE", only="SELECT")
    statements += owner_and_grants
    statements += [
        Statement(
            f"{name} keeps working as a view over {archive} and the rows written through it since",
            sql.SQL("CREATE VIEW {} WITH (security_invoker = true) AS SELECT {} FROM {} AS s").format(
                qualified(name), listed, rows
            ),
        ),
        _comment("FOLD", name, archive),
        *_defaults(ctx.conn, source.oid, name),
    ]
    new_row = sql.SQL("(SELECT {}) AS s").format(
        sql.SQL(", ").join(sql.SQL("NEW.{c} AS {c}").format(c=sql.Identifier(c)) for c in columns)
    )
    if side.bridge_on is not None:
        new_row = sql.SQL("{} JOIN {} AS b ON {}").format(new_row, qualified(action.join.via_table), side.bridge_on)
    computed = fold_sql.computed_columns(ctx.conn, source.oid)
    written = [c for c in columns if c not in computed]  # a stored generated column computes itself there
    refold = Statement(
        "",
        sql.SQL(
            "{checks}"
            "INSERT INTO {writes} ({columns}) VALUES ({values});\n"
            "SELECT array_agg(k) INTO keys FROM (SELECT {mapped} AS k FROM {new_row}) AS named WHERE k IS NOT NULL;\n"
            "IF keys IS NOT NULL THEN\n"
            "PERFORM 1 FROM {target} AS t WHERE {tk} = ANY (keys) FOR UPDATE;\n"
            "UPDATE {target} AS t SET {sets} FROM ({select}) AS side WHERE side.k = ANY (keys) AND side.k = {tk};\n"
            "END IF"
        ).format(
            checks=sql.SQL("").join(_constraint_checks(ctx.conn, source, name, archive, writes)),
            writes=qualified(writes),
            columns=sql.SQL(", ").join(map(sql.Identifier, written)),
            values=sql.SQL(", ").join(sql.SQL("NEW.{}").format(sql.Identifier(c)) for c in written),
            mapped=side.mapped_key,
            new_row=new_row,
            target=qualified(step.target),
            sets=sql.SQL(", ").join(sql.SQL("{c} = side.{c}").format(c=sql.Identifier(n)) for n, _ in side.new_columns),
            select=side.select,
            tk=fold_sql.canonical_key(ctx, step),
        ),
        params,
    )
    key_type = fold_sql.side_key_type(ctx, action, source, keys_text).as_string(ctx.conn)
    made, drop, more = _insert_path(
        ctx.conn,
        name,
        source.oid,
        f"DECLARE keys {key_type}[];\nBEGIN\n{literal_text(ctx.conn, refold)};\nRETURN NEW;\nEND",
        f"is kept in {writes} and folded into {step.target} again",
        f"{name} was folded into {step.target} (its rows: {archive}, {writes}); INSERT adds a row, nothing changes one",
        same_owner=True,
        rls=f"{writes}: {name}'s row-level security policies do not follow to it",
    )
    return Compat(name, "FOLD", archive, statements + made, drop, notes + more, tables=[writes])


WHAT_WORKS = {
    "MOVE": "reads and writes work (the view forwards them to the moved table)",
    "ARCHIVE": "reads work (the archived rows); writes are refused",
    "MERGE": "reads work (the merged rows); INSERT lands in the target; UPDATE and DELETE are refused",
    "FOLD": "reads work (the archived side rows and those written since); INSERT is kept and folded; "
    "UPDATE and DELETE are refused",
}


def readers(ctx: Context, phase, functions: list[tuple[str, str]], views: list[tuple[str, str]]) -> list[str]:
    """Plan text: each function body and view naming a table the phase takes away, and whether
    the compatibility object keeps it working. Views follow the table by OID; a function body
    names it as text, resolved when it runs: the view at the old name answers it, or nothing."""
    kinds = {a.source: (s.kind, reconcile.destination(ctx.plan, a)) for s in phase.steps for a in s.actions}
    lines = []
    for function, table in functions:
        kind, _ = kinds.get(table, (None, None))
        if kind not in KINDS:
            continue
        if wanted(ctx, table):
            lines.append(
                f"  {function} names {table}: keeps working through the compatibility view; {WHAT_WORKS[kind]}"
            )
        else:
            lines.append(
                f"  {function} names {table}: BREAKS (compat: none decided for {table}); edit it after the phase"
            )
    for view, table in views:
        kind, destination = kinds.get(table, (None, None))
        if kind in KINDS:
            lines.append(f"  view {view} reads {table}: keeps working, it follows the table by OID to {destination}")
    return lines


def render(conn: psycopg.Connection, objects: list[Compat]) -> list[str]:
    return [f"-- {s.purpose}\n{s.render(conn)};" for c in objects for s in c.statements] + [
        f"-- NOTE: {n}" for c in objects for n in c.notes
    ]


def expand(ctx: Context, step) -> list[str]:
    """In the step's transaction, after the names are free: each compatibility object registered
    (the owner's registry, where it exists), made, and recorded. `objects` come from the catalog
    read before the step (the source's columns and grants). Returns the names made."""
    made = []
    for item in ctx.compat_planned.get(step.step_id, []):
        if ctx.conn.execute("SELECT to_regclass(%s) IS NOT NULL", (item.name,)).fetchone()[0]:
            continue  # the name is taken: a view made earlier, or a table someone created since
        governance.register_before_create(
            ctx.conn, item.name, "DEPRECATED", f"compatibility view of {step.kind.lower()}", step.step_id
        )
        for table in item.tables:
            _refuse_foreign(ctx.conn, table, item.name)
            governance.register_before_create(
                ctx.conn, table, "DEPRECATED", f"rows written through the compatibility view {item.name}", step.step_id
            )
        for statement in item.statements:
            ctx.execute(statement)
        ctx.conn.execute(
            "INSERT INTO ple_ops.compat_object (name, kind, over_table, step_id, phase, ddl, drop_ddl) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (name) DO UPDATE SET kind = EXCLUDED.kind, "
            "over_table = EXCLUDED.over_table, step_id = EXCLUDED.step_id, phase = EXCLUDED.phase, "
            "ddl = EXCLUDED.ddl, drop_ddl = EXCLUDED.drop_ddl, created_at = now(), removed_at = NULL, removed_by = NULL",
            (
                item.name,
                item.kind,
                item.over,
                step.step_id,
                step.phase,
                ";\n".join(s.render(ctx.conn) for s in item.statements) + ";",
                ";\n".join(s.render(ctx.conn) for s in item.drop) + ";",
            ),
        )
        usage.baseline(ctx.conn, item.name)
        made.append(item.name)
    return made


def _refuse_foreign(conn: psycopg.Connection, table: str, view: str) -> None:
    """A table at the name the compatibility object's rows go to that the tool did not make is
    someone else's: refused (it would be written to, and left out of the catalog), with the fix."""
    found = conn.execute(
        "SELECT coalesce(obj_description(oid, 'pg_class'), '') FROM pg_class WHERE oid = to_regclass(%s)", (table,)
    ).fetchone()
    if found is not None and not found[0].startswith(WRITES_MARK):
        raise PlanRejected(
            f"{table} exists and is not the table of rows written through {view} the tool makes: rename it, "
            f"or decide `compat: none` for {view}, then run the step again"
        )


def live(conn: psycopg.Connection, step_id: str | None = None) -> list[tuple[str, str, str, str]]:
    """(name, kind, over, drop_ddl) of the compatibility objects standing (of one step)."""
    if conn.execute("SELECT to_regclass('ple_ops.compat_object') IS NULL").fetchone()[0]:
        return []
    return conn.execute(
        "SELECT name, kind, over_table, drop_ddl FROM ple_ops.compat_object "
        "WHERE removed_at IS NULL AND (%(step)s::text IS NULL OR step_id = %(step)s) ORDER BY name",
        {"step": step_id},
    ).fetchall()


def remove(conn: psycopg.Connection, name: str, drop_ddl: str, by: str) -> bool:
    """Drop one compatibility object (in the caller's transaction); its row and DDL stay."""
    exists = conn.execute(
        "SELECT 1 FROM pg_class WHERE oid = to_regclass(%s) AND obj_description(oid, 'pg_class') LIKE %s",
        (name, MARK + "%"),
    ).fetchone()
    if exists:
        conn.execute(drop_ddl)
    conn.execute(
        "UPDATE ple_ops.compat_object SET removed_at = now(), removed_by = %s WHERE name = %s AND removed_at IS NULL",
        (by, name),
    )
    return bool(exists)


def restore(conn: psycopg.Connection, name: str) -> bool:
    """Make a removed compatibility object again from its recorded DDL (the contract's revert)."""
    row = conn.execute(
        "SELECT ddl, over_table FROM ple_ops.compat_object WHERE name = %s AND removed_at IS NOT NULL", (name,)
    ).fetchone()
    if row is None:
        return False
    if conn.execute("SELECT to_regclass(%s) IS NOT NULL OR to_regclass(%s) IS NULL", (name, row[1])).fetchone()[0]:
        return False  # the name is taken again, or what it read is gone: nothing to make it over
    conn.execute(row[0])
    conn.execute("UPDATE ple_ops.compat_object SET removed_at = NULL, removed_by = NULL WHERE name = %s", (name,))
    return True


def revert_step(ctx: Context, step) -> tuple[list[str], list[str]]:
    """First in a step's revert: its compatibility objects dropped (the names go back to the
    tables). Rows an application wrote through a MERGE view stay in the target (they are the
    application's rows, not copies of the source's): counted and named. Returns (dropped, notes)."""
    dropped, notes = [], []
    for name, kind, over, drop_ddl in live(ctx.conn, step.step_id):
        if remove(ctx.conn, name, drop_ddl, f"revert {ctx.run_id}"):
            dropped.append(name)
        if kind == "MERGE" and ctx.conn.execute("SELECT to_regclass(%s) IS NOT NULL", (over,)).fetchone()[0]:
            written = ctx.conn.execute(
                sql.SQL("SELECT count(*) FROM {} WHERE ctb_source_table = %s AND ctb_run_id = %s").format(
                    qualified(over)
                ),
                (name, f"compat:{name}"),
            ).fetchone()[0]
            if written:
                notes.append(
                    f"{written} rows written through the compatibility view {name} stay in {over} "
                    f"(ctb_source_table = {name!r}, ctb_run_id = 'compat:{name}')"
                )
    return dropped, notes
