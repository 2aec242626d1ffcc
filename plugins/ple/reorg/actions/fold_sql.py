"""The SQL of a fold: a side table's rows aggregated per canonical key (the value a folded
column holds), and how side keys and the canonical key are compared. Apart from the action's
steps (fold.py), as merge_sql.py is from merge.py; it imports only the engine's core, so the
compatibility view that takes INSERTs through a side table's old name (compat.py) folds a new
row with the very aggregate verify recomputes.

The side rows of a fold, once it is applied, are its archive's plus the rows an application
wrote through the old name since (the `writes` table next to the archive, `writes_table`), until
a revert returns them to the side table."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from psycopg import sql

from ple.catalog import TableInfo
from ple.errors import PlanRejected
from ple.reorg.context import Context
from ple.reorg.plan import Action
from ple.sqlutil import qualified


@dataclass
class Side:
    action: Action
    alias: str
    select: sql.Composable  # one row per key: k, <new columns>
    new_columns: list[tuple[str, sql.Composable]]  # (name, type)
    mapped_key: sql.Composable  # the key of a raw side row `s` (through the bridge, if any)
    source_from: sql.Composable  # FROM clause of raw side rows (with the bridge join)
    bridge_on: sql.Composable | None = None  # the bridge join's condition, if any


def side_for(
    ctx: Context,
    action: Action,
    index: int,
    params: dict,
    relation: str | None = None,
    recorded: dict | None = None,
    keys_text: bool = False,
    rows: sql.Composable | None = None,
    table: TableInfo | None = None,
) -> Side:
    """The side table's rows aggregated per key; from `relation` (its archive) if given. Ties are
    broken on the relation's primary key, or on the whole row where it has none; `recorded` (the
    fold's `order_of` the side table) replaces both with the key and the row's columns the fold
    saw, so columns or keys added to the archive later do not change the recomputation.
    `keys_text`: the step compares its keys as text (keys_as_text). `rows`: the side rows as a
    FROM item in place of `relation` (its archive and the rows written through the old name,
    `side_rows`); `table`: the relation's columns where the catalog does not have it yet."""
    relation = relation or action.source
    source: TableInfo = table or ctx.catalog.get(relation)
    if source is None:
        raise PlanRejected(f"{action.kind} source {relation} does not exist")
    join = action.join
    if join.via_table:
        bridge_on = sql.SQL("{} = {}").format(
            *comparable((ctx.catalog.get(join.via_table), "b", join.via_source), (source, "s", join.source))
        )
        source_from = sql.SQL("{} AS s JOIN {} AS b ON {}").format(
            rows if rows is not None else qualified(relation), qualified(join.via_table), bridge_on
        )
        mapped_key = sql.SQL("b.{}").format(sql.Identifier(join.via_target))
    else:
        bridge_on = None
        source_from = sql.SQL("{} AS s").format(rows if rows is not None else qualified(relation))
        mapped_key = sql.SQL("s.{}").format(sql.Identifier(join.source))
    if keys_text:
        canonical = ctx.catalog.get(action.target)
        key_column = canonical.column(join.target) if canonical else None
        # a uuid written as text may be upper case or padded: compared in uuid's own text form
        spelled = "lower(btrim(({})::text))" if key_column is not None and key_column.type == "uuid" else "({})::text"
        mapped_key = sql.SQL(spelled).format(mapped_key)
    key = source.primary_key if recorded is None else recorded["key"]
    tiebreak = [sql.SQL("s.{}").format(sql.Identifier(c)) for c in (key or [join.source])]
    if not key:  # a key orders the rows totally; without one, identical rows aside, one order every time
        added = [c for c in source.column_names if c not in recorded["row"]] if recorded else []
        if added:
            params[f"side_{index}_added"] = added
            tiebreak.append(
                sql.SQL("(to_jsonb(s.*) - {}::text[])::text").format(sql.Placeholder(f"side_{index}_added"))
            )
        else:
            tiebreak.append(sql.SQL("to_jsonb(s.*)::text"))
    alias = f"side_{index}"
    if action.kind == "MERGE_JSONB":
        order = [sql.SQL("s.{}").format(sql.Identifier(action.order_by))] if action.order_by else []
        aggregate = sql.SQL("jsonb_agg(to_jsonb(s.*) ORDER BY {})").format(sql.SQL(", ").join(order + tiebreak))
        value = aggregate if action.shape == "array" else sql.SQL("({}) -> 0").format(aggregate)
        select = sql.SQL(
            "SELECT {key} AS k, {value} AS {col}, count(*) AS side_rows FROM {src} WHERE {key} IS NOT NULL GROUP BY 1"
        ).format(key=mapped_key, value=value, col=sql.Identifier(action.column), src=source_from)
        new_columns = [(action.column, sql.SQL("jsonb"))]
    elif action.pivot:
        pivot = action.pivot
        value_column = source.column(pivot["value"])
        parts, new_columns = [], []
        for n, key in enumerate(pivot["keys"]):
            name = f"{key}{pivot['suffix']}"
            param = f"{alias}_pivot_{n}"
            params[param] = key
            parts.append(
                sql.SQL(
                    "(array_agg(s.{v} ORDER BY s.{latest} DESC NULLS LAST, {ties}) FILTER (WHERE s.{k} = {p}))[1] AS {name}"
                ).format(
                    v=sql.Identifier(pivot["value"]),
                    latest=sql.Identifier(pivot["latest_by"]),
                    ties=sql.SQL(", ").join(t + sql.SQL(" DESC") for t in tiebreak),
                    k=sql.Identifier(pivot["key"]),
                    p=sql.Placeholder(param),
                    name=sql.Identifier(name),
                )
            )
            new_columns.append((name, value_column.type_identifier))
        select = sql.SQL(
            "SELECT {key} AS k, {parts}, count(*) AS side_rows FROM {src} WHERE {key} IS NOT NULL GROUP BY 1"
        ).format(key=mapped_key, parts=sql.SQL(", ").join(parts), src=source_from)
    else:
        picks = [
            sql.SQL("(array_agg(s.{} ORDER BY {}))[1] AS {}").format(
                sql.Identifier(source_column),
                sql.SQL(", ").join(t + sql.SQL(" DESC") for t in tiebreak),
                sql.Identifier(name),
            )
            for name, source_column in action.columns
        ]
        new_columns = [(name, source.column(source_column).type_identifier) for name, source_column in action.columns]
        select = sql.SQL(
            "SELECT {key} AS k, {picks}, count(*) AS side_rows FROM {src} WHERE {key} IS NOT NULL GROUP BY 1"
        ).format(key=mapped_key, picks=sql.SQL(", ").join(picks), src=source_from)
    return Side(action, alias, select, new_columns, mapped_key, source_from, bridge_on)


def order_of(table: TableInfo) -> dict:
    """What orders a side table's rows: its key, and its columns (the whole row, where it has no key)."""
    return {"key": table.primary_key, "row": table.column_names}


def key_type(ctx: Context, action: Action) -> str | None:
    """The type of the key a side row is folded by (the bridge's, through a bridge); None if the
    side table is gone (then its archive, which keeps the types, is read instead)."""
    join = action.join
    table, column = (join.via_table, join.via_target) if join.via_table else (action.source, join.source)
    info = ctx.catalog.get(table) or ctx.catalog.get(ctx.plan.archive_name(table))
    found = info.column(column) if info else None
    return found.type if found else None


def keys_as_text(ctx: Context, target: str, actions) -> bool:
    """Whether side keys and the canonical key are compared as text: where their types differ (an
    independently built database keeps company_unique_id as text on one side and uuid on the
    other). A side key that is no value of the canonical key's type then names no canonical row
    and stays in the archive, instead of failing the statement."""
    canonical = ctx.catalog.get(target)
    column = canonical.column(next(iter(actions)).join.target) if canonical else None
    return column is not None and any(key_type(ctx, a) not in (None, column.type) for a in actions)


def comparable(left: tuple, right: tuple) -> tuple[sql.Composable, sql.Composable]:
    """Two columns (table info, alias, column) as expressions PostgreSQL can compare: as they
    are where their types agree, as text where they differ."""
    (lt, la, lc), (rt, ra, rc) = left, right
    if lt is None or rt is None or lt.column(lc) is None or rt.column(rc) is None:
        types = (None, None)
    else:
        types = (lt.column(lc).type, rt.column(rc).type)
    sides = []
    for (alias, column), own, other in (((la, lc), types[0], types[1]), ((ra, rc), types[1], types[0])):
        spelled = "{}.{}"
        if own != other:  # as text; a uuid's text form is lower case, so the other side is too
            spelled = "lower(btrim({}.{}::text))" if other == "uuid" else "{}.{}::text"
        sides.append(sql.SQL(spelled).format(sql.Identifier(alias), sql.Identifier(column)))
    return sides[0], sides[1]


def canonical_key(ctx: Context, step) -> sql.Composable:
    """The canonical table's key as `t.<key>`, as text where side keys are compared as text."""
    key = sql.SQL("t.{}").format(sql.Identifier(target_key(step)))
    return sql.SQL("{}::text").format(key) if keys_as_text(ctx, step.target, step.actions) else key


def target_key(step) -> str:
    keys = {a.join.target for a in step.actions}
    if len(keys) != 1:
        raise PlanRejected(f"{step.step_id}: folds into one table must share its join column, got {sorted(keys)}")
    return keys.pop()


WRITTEN_AT, WRITTEN_BY, RETURNED_AT, RETURNED_BY = (
    "ctb_written_at",
    "ctb_written_by",
    "ctb_returned_at",
    "ctb_returned_by",
)


def writes_table(archive: str) -> str:
    """Where rows written through a folded side table's old name are kept: `<archive>_writes`
    (an archive is frozen, read-only for everyone; these rows are the application's)."""
    schema, name = archive.split(".", 1)
    table = f"{name}_writes"
    if len(table.encode()) > 63:
        table = f"{name[:46]}_{hashlib.sha1(name.encode()).hexdigest()[:8]}_writes"
    return f"{schema}.{table}"


def side_rows(columns: list[str], archive: str, writes: str) -> sql.Composable:
    """The side rows of an applied fold as one FROM item: the archive's, and those written through
    the old name that no revert has returned yet (`columns`: the side table's, both have them)."""
    listed = sql.SQL(", ").join(map(sql.Identifier, columns))
    return sql.SQL("(SELECT {c} FROM {a} UNION ALL SELECT {c} FROM {w} WHERE {returned} IS NULL)").format(
        c=listed, a=qualified(archive), w=qualified(writes), returned=sql.Identifier(RETURNED_AT)
    )


def side_key_type(ctx: Context, action: Action, side_table: TableInfo, keys_text: bool) -> sql.Composable:
    """The type of a side row's key as the fold compares it: the bridge's target key through a
    bridge, the side table's join column otherwise; text where keys are compared as text."""
    if keys_text:
        return sql.SQL("text")
    join = action.join
    table, column = (ctx.catalog.get(join.via_table), join.via_target) if join.via_table else (side_table, join.source)
    return table.column(column).type_identifier


def writes_columns(conn, writes: str) -> list[str] | None:
    """The columns of a writes table (None where there is none: no row was ever written through
    the old name, or no compatibility view was made)."""
    if conn.execute("SELECT to_regclass(%s) IS NULL", (writes,)).fetchone()[0]:
        return None
    return [
        name
        for (name,) in conn.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped "
            "ORDER BY attnum",
            (writes,),
        ).fetchall()
    ]


def computed_columns(conn, oid: int) -> set[str]:
    """A table's stored generated columns: never written, they compute themselves."""
    return {
        name
        for (name,) in conn.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = %s AND attgenerated <> '' AND NOT attisdropped", (oid,)
        ).fetchall()
    }
