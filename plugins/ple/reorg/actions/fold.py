"""FOLD (MERGE_JSONB and MERGE_COLS): fold side tables into their canonical table by join key.

All side tables of one canonical table in a phase go in a single UPDATE (each extra pass over a
table writes a new version of every row it touches). Several side rows per key are aggregated,
never dropped: JSONB arrays keep them all, pivots keep the latest value per pivot key. Side rows
that match no canonical row are counted and stay in the archived side table.

The proof is on the rows that moved: every folded value equals the aggregate of its side rows
(recomputed from the side tables, joined by key), the UPDATE touched exactly the canonical rows
those keys name, and every matched side row is in the JSONB it was folded into. The UPDATE sets
only the columns this step adds (recorded as the tool's own in ple_ops.tool_change), so the
table's own columns are untouched by construction, without a scan of the whole table. "Latest"
orders put NULL timestamps last and break ties on the side table's key (on the whole row if it has
none), so a recomputation always picks the same value; the key and the columns the fold ordered by
are recorded with it, so a key or a column later added to or dropped from the archive does not
change what verify recomputes (a column the recomputation reads that is gone is a named problem).
Revert drops a folded column only while every value in it is still what the side tables give (the side tables go back, so those values are restorable); otherwise the column stays,
and the revert says why.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

from ple.catalog import built_on, read_catalog
from ple.db import transaction, with_lock_retry
from ple.errors import PlanRejected, VerificationFailed
from ple.reorg import compat, ledger, tool_changes
from ple.reorg.actions import fold_sql, relocate
from ple.reorg.actions.fold_sql import Side, canonical_key, keys_as_text, order_of, side_for, target_key
from ple.reorg.context import Context, Outcome, State, Statement
from ple.reorg.plan import Action, new_column_names
from ple.sqlutil import qualified


def _sides(ctx: Context, step) -> tuple[list[Side], dict]:
    """From the live side tables, ordered by their keys now."""
    params: dict = {}
    keys_text = keys_as_text(ctx, step.target, step.actions)
    return [side_for(ctx, action, i, params, keys_text=keys_text) for i, action in enumerate(step.actions)], params


def _needed_columns(action: Action, order: dict) -> set[str]:
    """The side table's columns the recomputation reads."""
    needed = {action.join.source, *order["key"]}
    if action.kind == "MERGE_JSONB":
        needed |= {action.order_by} if action.order_by else set()
    elif action.pivot:
        needed |= {action.pivot["value"], action.pivot["key"], action.pivot["latest_by"]}
    else:
        needed |= {source_column for _, source_column in action.columns}
    return needed


def update_statement(ctx: Context, step, *, proving: bool = False) -> Statement:
    """One UPDATE of the target from every side table's aggregate. `proving`: the statement also
    returns, in the same pass, the rows updated and per side table the rows whose stored values
    (as written, after any trigger) differ from the aggregate they were set from."""
    sides, params = _sides(ctx, step)
    ctes = [sql.SQL("{} AS ({})").format(sql.Identifier(side.alias), side.select) for side in sides]
    keys = sql.SQL(" UNION ").join(sql.SQL("SELECT k FROM {}").format(sql.Identifier(side.alias)) for side in sides)
    joins = sql.SQL(" ").join(
        sql.SQL("LEFT JOIN {a} ON {a}.k = keys.k").format(a=sql.Identifier(side.alias)) for side in sides
    )
    sets = sql.SQL(", ").join(
        sql.SQL("{col} = {a}.{col}").format(col=sql.Identifier(name), a=sql.Identifier(side.alias))
        for side in sides
        for name, _ in side.new_columns
    )
    update = sql.SQL("UPDATE {target} AS t SET {sets} FROM keys {joins} WHERE {tk} = keys.k").format(
        target=qualified(step.target), sets=sets, joins=joins, tk=canonical_key(ctx, step)
    )
    names = ", ".join(a.source for a in step.actions)
    if not proving:
        query = sql.SQL("WITH {ctes}, keys AS ({keys}) {update}").format(
            ctes=sql.SQL(", ").join(ctes), keys=keys, update=update
        )
        return Statement(f"fold {names} into {step.target} in one UPDATE", query, params)
    differs = [
        sql.SQL("ROW({ours}, NULL) IS DISTINCT FROM ROW({theirs}, NULL) AS {flag}").format(
            ours=sql.SQL(", ").join(sql.SQL("t.{}").format(sql.Identifier(n)) for n, _ in side.new_columns),
            theirs=sql.SQL(", ").join(
                sql.SQL("{}.{}").format(sql.Identifier(side.alias), sql.Identifier(n)) for n, _ in side.new_columns
            ),
            flag=sql.Identifier(f"differs_{side.alias}"),
        )
        for side in sides
    ]
    counts = [sql.SQL("count(*)")] + [
        sql.SQL("count(*) FILTER (WHERE u.{})").format(sql.Identifier(f"differs_{side.alias}")) for side in sides
    ]
    query = sql.SQL("WITH {ctes}, keys AS ({keys}), u AS ({update} RETURNING {differs}) SELECT {counts} FROM u").format(
        ctes=sql.SQL(", ").join(ctes),
        keys=keys,
        update=update,
        differs=sql.SQL(", ").join(differs),
        counts=sql.SQL(", ").join(counts),
    )
    return Statement(f"fold {names} into {step.target} in one UPDATE, proven as written", query, params)


def add_column_statements(ctx: Context, step) -> list[Statement]:
    sides, _ = _sides(ctx, step)
    return [
        Statement(
            f"add column {step.target}.{name}",
            sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} {}").format(
                qualified(step.target), sql.Identifier(name), col_type
            ),
        )
        for side in sides
        for name, col_type in side.new_columns
    ]


def check(ctx: Context, step) -> State:
    states = {relocate.check(ctx.catalog, a.source, ctx.plan.archive_name(a.source)) for a in step.actions}
    if len(states) > 1:
        raise PlanRejected(
            f"{step.step_id}: some side tables are archived and some are not; fold them one step at a time"
        )
    return states.pop()


def _locks(step) -> list[Statement]:
    """Writes to the canonical and side tables wait for the fold; reads go on."""
    return [
        Statement(
            f"block writes to {step.target}",
            sql.SQL("LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE").format(qualified(step.target)),
        )
    ] + [
        Statement(f"block writes to {a.source}", sql.SQL("LOCK TABLE {} IN EXCLUSIVE MODE").format(qualified(a.source)))
        for a in step.actions
    ]


def statements(ctx: Context, step) -> list[Statement]:
    archives = [
        s
        for a in step.actions
        for s in relocate.statements(ctx.conn, ctx.catalog, a.source, ctx.plan.archive_name(a.source))
    ]
    return [*_locks(step), *add_column_statements(ctx, step), update_statement(ctx, step), *archives]


def side_counts(ctx: Context, step) -> dict[str, dict]:
    """Per side table: rows, and rows that match no canonical row (they stay in the archive)."""
    sides, _ = _sides(ctx, step)
    canonical = canonical_key(ctx, step)
    counts = {}
    for side in sides:
        total, unmatched = ctx.conn.execute(
            sql.SQL(
                "SELECT count(*), count(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM {t} AS t WHERE {tk} = {key})) FROM {src}"
            ).format(t=qualified(step.target), tk=canonical, key=side.mapped_key, src=_raw_from(side)),
        ).fetchone()
        counts[side.action.source] = {"rows": total, "unmatched": unmatched}
    return counts


def _raw_from(side: Side) -> sql.Composable:
    """Raw side rows, keeping those the bridge cannot map (they count as unmatched)."""
    if side.bridge_on is None:
        return side.source_from
    return sql.SQL("{} AS s LEFT JOIN {} AS b ON {}").format(
        qualified(side.action.source), qualified(side.action.join.via_table), side.bridge_on
    )


def preview(ctx: Context, step) -> dict:
    return {
        "side_tables": side_counts(ctx, step),
        "target_rows": ctx.conn.execute(sql.SQL("SELECT count(*) FROM {}").format(qualified(step.target))).fetchone()[
            0
        ],
    }


def transactional(ctx: Context, step) -> bool:
    """Two transactions: adding the columns needs ACCESS EXCLUSIVE on the canonical table, which
    would block its readers for as long as the fold takes if held to the end; alone, it is
    metadata only and over at once. The fold then blocks only writers (SHARE ROW EXCLUSIVE)."""
    return False


def _transaction(ctx: Context, work):
    def attempt():
        with transaction(
            ctx.conn, lock_timeout=ctx.settings.lock_timeout, statement_timeout=ctx.settings.statement_timeout
        ):
            ctx.hold()
            return work()

    return with_lock_retry(attempt, attempts=ctx.settings.lock_retries)


def apply(ctx: Context, step) -> Outcome:
    """The executor calls this outside a transaction (see `transactional`)."""

    def add_columns() -> None:
        with ctx.bypassing_triggers():  # a frozen canonical table a person let the fold alter
            for statement in add_column_statements(ctx, step):
                ctx.execute(statement)
        for name in [n for a in step.actions for n in new_column_names(a)]:
            tool_changes.record(
                ctx.conn, step.target, name, tool_changes.CREATED_COLUMN, step_id=step.step_id, run_id=ctx.run_id
            )

    def fold() -> Outcome:
        names = {step.target} | {n for a in step.actions for n in (a.source, ctx.plan.archive_name(a.source))}
        names |= {a.join.via_table for a in step.actions if a.join is not None and a.join.via_table}
        ctx.catalog = read_catalog(ctx.conn, sorted({n.split(".", 1)[0] for n in names}))
        if check(ctx, step) == State.DONE:
            return Outcome(step, "already_done")
        with ctx.bypassing_triggers():
            return _fold(ctx, step)

    _transaction(ctx, add_columns)
    return _transaction(ctx, fold)


def _fold(ctx: Context, step) -> Outcome:
    for lock in _locks(step):
        ctx.execute(lock)
    counts = side_counts(ctx, step)
    expected = _rows_named(ctx, step)
    updated, *differ = ctx.execute(update_statement(ctx, step, proving=True)).fetchone()
    if updated != expected:
        raise VerificationFailed(f"fold into {step.target}: updated {updated} rows, the side tables name {expected}")
    differing = {a.source: n for a, n in zip(step.actions, differ, strict=True)}
    if any(differing.values()):
        raise VerificationFailed(f"fold into {step.target}: folded values differ from their side rows: {differing}")
    _prove_json_folds(ctx, step, counts)
    for action in step.actions:
        relocate.apply(ctx.conn, ctx.catalog, action.source, ctx.plan.archive_name(action.source))
    made = compat.expand(ctx, step)
    return Outcome(
        step,
        "applied",
        rows_before={a.source: counts[a.source]["rows"] for a in step.actions},
        rows_after={step.target: updated}
        | {ctx.plan.archive_name(a.source): counts[a.source]["rows"] for a in step.actions},
        details={
            "target_rows_updated": updated,
            "side_tables": counts,
            "new_columns": [n for a in step.actions for n in new_column_names(a)],
            "archived_as": {a.source: ctx.plan.archive_name(a.source) for a in step.actions},
            "order": {a.source: order_of(ctx.catalog.get(a.source)) for a in step.actions},
            "proof": "every folded value equals its side rows' aggregate; rows updated = rows the keys name",
        }
        | ({"compat_views": made} if made else {}),
    )


def _rows_named(ctx: Context, step) -> int:
    """Canonical rows whose key some side row names (what the UPDATE must touch)."""
    sides, params = _sides(ctx, step)
    keys = sql.SQL(" UNION ").join(
        sql.SQL("SELECT {} FROM {} WHERE {} IS NOT NULL").format(side.mapped_key, side.source_from, side.mapped_key)
        for side in sides
    )
    return ctx.conn.execute(
        sql.SQL("SELECT count(*) FROM {} AS t WHERE {} IN ({})").format(
            qualified(step.target), canonical_key(ctx, step), keys
        ),
        params,
    ).fetchone()[0]


def differences(ctx: Context, step, *, whole_table: bool = False, columns: dict | None = None) -> dict[str, int | str]:
    """Per side table: canonical rows whose folded columns differ from the aggregate of their
    archived side rows, recomputed now in the order the fold recorded (the archive's own key if it
    recorded none); or why they cannot be recomputed (a column the recomputation reads is gone).
    On the rows the keys name (proportional to what moved); `whole_table` also counts rows no side
    row names that hold a value (revert: values it could not restore). `columns`: the folded
    columns that exist (default: those the catalog shows)."""
    recorded = ledger.applied_details(ctx.conn, step.step_id).get("order", {})
    target = ctx.catalog.get(step.target)
    params: dict = {}
    result: dict[str, int | str] = {}
    for index, action in enumerate(step.actions):
        archive = ctx.plan.archive_name(action.source)
        archived = ctx.catalog.get(archive)
        if archived is None:
            result[action.source] = f"{archive} does not exist"
            continue
        order = recorded.get(action.source) or order_of(archived)
        gone = sorted(_needed_columns(action, order) - set(archived.column_names))
        if gone:
            result[action.source] = f"{archive} no longer has the columns {gone} (renamed or dropped since the fold)"
            continue
        side = side_for(
            ctx,
            action,
            index,
            params,
            archive,
            order,
            keys_text=keys_as_text(ctx, step.target, step.actions),
            rows=_written_since(ctx, archive, archived),
        )
        names = [
            n for n, _ in side.new_columns if (n in columns if columns is not None else target.column(n) is not None)
        ]
        if not names:
            continue
        ours = sql.SQL(", ").join(sql.SQL("t.{}").format(sql.Identifier(n)) for n in names)
        theirs = sql.SQL(", ").join(sql.SQL("side.{}").format(sql.Identifier(n)) for n in names)
        result[action.source] = ctx.conn.execute(
            sql.SQL(
                "SELECT count(*) FROM {t} AS t {join} ({select}) AS side ON side.k = {tk} "
                "WHERE ROW({ours}, NULL) IS DISTINCT FROM ROW({theirs}, NULL)"
            ).format(
                t=qualified(step.target),
                join=sql.SQL("LEFT JOIN" if whole_table else "JOIN"),
                select=side.select,
                tk=canonical_key(ctx, step),
                ours=ours,
                theirs=theirs,
            ),
            params,
        ).fetchone()[0]
    return result


def _written_since(ctx: Context, archive: str, archived) -> sql.Composable | None:
    """The side rows as the compatibility view at the old name has them (the archive's and those
    written through it since), where rows were ever written through it; else None (the archive)."""
    writes = fold_sql.writes_table(archive)
    written = fold_sql.writes_columns(ctx.conn, writes)
    if written is None:
        return None
    return fold_sql.side_rows([c for c in archived.column_names if c in written], archive, writes)


def _return_written(ctx: Context, action: Action) -> int:
    """After the side table has its name back: the rows written through its compatibility view
    go back into it (the application's rows, in the application's table), each marked returned
    in the writes table (which keeps them, with who wrote them, as their history) in the same
    statement. Returns how many."""
    archive = ctx.plan.archive_name(action.source)
    writes = fold_sql.writes_table(archive)
    written = fold_sql.writes_columns(ctx.conn, writes)
    side = ctx.catalog.get(archive)
    if written is None or side is None:
        return 0
    computed = fold_sql.computed_columns(ctx.conn, side.oid)
    columns = sql.SQL(", ").join(sql.Identifier(c) for c in side.column_names if c in written and c not in computed)
    # the rows go back as they were written: the side table's own triggers (an updated_at stamp)
    # stay off for the statement, as for the rename that brought its rows back
    own = tuple(
        (action.source, name)
        for (name,) in ctx.conn.execute(
            "SELECT tgname FROM pg_trigger WHERE tgrelid = %s AND NOT tgisinternal AND tgenabled <> 'D'", (side.oid,)
        ).fetchall()
    )
    outer, ctx.bypass = ctx.bypass, own
    try:
        with ctx.conn.transaction(), ctx.bypassing_triggers(unfreeze=False):  # a savepoint: a named refusal below
            return _returned(ctx, writes, columns, action.source)
    except psycopg.errors.IntegrityError as exc:
        raise PlanRejected(
            f"the rows written through the compatibility view {action.source} cannot go back into it: "
            f"{str(exc).splitlines()[0]} (a row they name was deleted since, or a key was taken). Nothing was "
            f"changed; the rows are in {writes} (ctb_returned_at IS NULL): correct or remove those rows there "
            "(they are the application's), then run the revert again"
        ) from exc
    finally:
        ctx.bypass = outer


def _returned(ctx: Context, writes: str, columns: sql.Composable, side: str) -> int:
    return ctx.conn.execute(
        sql.SQL(
            "WITH returned AS (UPDATE {w} SET {rat} = now(), {rby} = %s WHERE {rat} IS NULL RETURNING {c}) "
            "INSERT INTO {side} ({c}) OVERRIDING SYSTEM VALUE SELECT {c} FROM returned"
        ).format(
            w=qualified(writes),
            rat=sql.Identifier(fold_sql.RETURNED_AT),
            rby=sql.Identifier(fold_sql.RETURNED_BY),
            c=columns,
            side=qualified(side),
        ),
        (f"revert {ctx.run_id}",),
    ).rowcount


def _prove_json_folds(ctx: Context, step, counts: dict) -> None:
    """Every matched side row appears once per key in the folded JSONB of that key."""
    key = target_key(step)
    for action in step.actions:
        if action.kind != "MERGE_JSONB":
            continue
        matched = counts[action.source]["rows"] - counts[action.source]["unmatched"]
        per_key = sql.SQL("jsonb_array_length(d.v)") if action.shape == "array" else sql.SQL("1")
        folded = ctx.conn.execute(
            sql.SQL(
                "SELECT coalesce(sum({per_key}), 0) FROM (SELECT DISTINCT ON ({tk}) {col} AS v FROM {t} WHERE {col} IS NOT NULL) AS d"
            ).format(
                per_key=per_key,
                tk=sql.Identifier(key),
                col=sql.Identifier(action.column),
                t=qualified(step.target),
            )
        ).fetchone()[0]
        if folded != matched:
            raise VerificationFailed(
                f"{action.source}: {matched} matched side rows but {folded} folded into {step.target}.{action.column}"
            )


def lint(ctx: Context, step) -> list:
    return relocate.lint(ctx, step)


def verify(ctx: Context, step, located: dict) -> list[str]:
    """The side tables are archived, the columns exist, and every folded value is still exactly
    the aggregate of its archived side rows (tool-owned values: no tolerance)."""
    problems = []
    for action in step.actions:
        archived = ctx.plan.archive_name(action.source)
        if located.get(action.source) != archived:
            problems.append(f"{action.source} should now be {archived}, found {located.get(action.source)}")
    target = ctx.catalog.get(step.target)
    missing = [n for a in step.actions for n in new_column_names(a) if target.column(n) is None]
    if missing:
        problems.append(f"{step.target} lacks the folded columns {missing}")
    if problems:
        return problems
    for source, n in differences(ctx, step).items():
        if isinstance(n, str):
            problems.append(f"the folded values of {source} in {step.target} cannot be proven: {n}")
        elif n:
            problems.append(
                f"{n} rows of {step.target} hold folded values of {source} that differ from its archived rows"
            )
    return problems


def revert_blockers(ctx: Context, step) -> list[str]:
    """What others built on the folded columns the tool created (`revert` drops each whose values
    are still its side rows'), read before the revert's first write: a view would stop the DROP
    half way through the phase, an index would go with it."""
    target = ctx.catalog.get(step.target)
    if target is None:
        return []
    problems = []
    for name in [n for a in step.actions for n in new_column_names(a)]:
        if target.column(name) is None or not tool_changes.recorded(
            ctx.conn, target.oid, name, tool_changes.CREATED_COLUMN
        ):
            continue
        found = built_on(ctx.conn, target.oid, [name])
        if found:
            problems.append(
                f"{step.target}: the folded column {name} the tool created, which the revert drops, has "
                f"{', '.join(found)} built on it"
            )
    return problems


def revert(ctx: Context, step) -> Outcome:
    """Put the side tables back; drop a folded column only if the tool created it and every value
    in it is still what the side tables give (so nothing is lost: the side rows are the values)."""
    target = ctx.catalog.get(step.target)
    if check(ctx, step) == State.PENDING:
        return _drop_empty_columns(ctx, step, target)
    differing = differences(ctx, step, whole_table=True)
    dropped, kept, notes = [], [], []
    for action in step.actions:
        for name in new_column_names(action):
            if target.column(name) is None:
                continue
            ours = tool_changes.recorded(ctx.conn, target.oid, name, tool_changes.CREATED_COLUMN)
            if ours and not differing.get(action.source):
                ctx.conn.execute(
                    sql.SQL("ALTER TABLE {} DROP COLUMN {}").format(qualified(step.target), sql.Identifier(name))
                )
                tool_changes.forget(ctx.conn, target.oid, name, tool_changes.CREATED_COLUMN)
                dropped.append(name)
            else:
                kept.append(name)
                why = "the tool did not create it"
                if ours:
                    n = differing[action.source]
                    why = n if isinstance(n, str) else f"{n} rows hold values its side rows do not give"
                notes.append(f"{step.target}.{name} kept: {why}")
    returned = {}
    for action in step.actions:
        relocate.apply(ctx.conn, ctx.catalog, ctx.plan.archive_name(action.source), action.source)
        returned[action.source] = _return_written(ctx, action)
        if returned[action.source]:
            notes.append(
                f"{returned[action.source]} rows written through the compatibility view {action.source} are back in it "
                f"(and kept, marked returned, in {fold_sql.writes_table(ctx.plan.archive_name(action.source))})"
            )
    details = {"dropped_columns": dropped, "kept_columns": kept}
    if any(returned.values()):
        details["returned_rows"] = returned
    return Outcome(step, "reverted", details=details, notes=notes)


def _drop_empty_columns(ctx: Context, step, target) -> Outcome:
    """The fold stopped after adding its columns: drop those the tool created that hold nothing."""
    dropped = []
    for name in [n for a in step.actions for n in new_column_names(a)]:
        if target.column(name) is None or not tool_changes.recorded(
            ctx.conn, target.oid, name, tool_changes.CREATED_COLUMN
        ):
            continue
        filled = ctx.conn.execute(
            sql.SQL("SELECT EXISTS (SELECT 1 FROM {} WHERE {} IS NOT NULL)").format(
                qualified(step.target), sql.Identifier(name)
            )
        ).fetchone()[0]
        if not filled:
            ctx.conn.execute(
                sql.SQL("ALTER TABLE {} DROP COLUMN {}").format(qualified(step.target), sql.Identifier(name))
            )
            tool_changes.forget(ctx.conn, target.oid, name, tool_changes.CREATED_COLUMN)
            dropped.append(name)
    return Outcome(step, "reverted" if dropped else "already_done", details={"dropped_columns": dropped})
