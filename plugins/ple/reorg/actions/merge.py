"""MERGE: copy every row of a source table into a target with a discriminator, then archive the
source unchanged.

One set-based INSERT ... SELECT. Columns with the same name and an assignable type are copied;
required target columns are filled by the plan's `fill` rules; the whole source row is kept in
`ctb_source_row` (JSONB) with `ctb_source_table` and `ctb_source_key`, so nothing is lost when the
shapes differ. A partial unique index on (ctb_source_table, ctb_source_key) makes a repeated
insert a no-op. The source is locked against writes for the transaction, so the rows copied are
exactly the rows archived.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from psycopg import sql

from ple.catalog import Catalog, ColumnInfo, TableInfo
from ple.errors import PlanRejected, VerificationFailed
from ple.reorg.actions import relocate
from ple.reorg.context import Context, Outcome, State, Statement
from ple.reorg.plan import Action, MergeTarget
from ple.reorg.proof import PROVENANCE_COLUMNS, provenance_fingerprint
from ple.sqlutil import identifiers, qualified, split_qualified

PROVENANCE_DDL = (
    ("ctb_source_table", "text"),
    ("ctb_source_key", "text"),
    ("ctb_source_row", "jsonb"),
    ("ctb_run_id", "text"),
    ("ctb_merged_at", "timestamptz"),
)
DISCRIMINATOR_TYPES = {
    "text": "text",
    "varchar(50)": "varchar(50)",
    "varchar(100)": "varchar(100)",
    "varchar(255)": "varchar(255)",
}


@dataclass
class ColumnFill:
    column: str
    expression: sql.Composable
    how: str  # copy, fill, discriminator


@dataclass
class Mapping:
    fills: list[ColumnFill] = field(default_factory=list)
    params: dict = field(default_factory=dict)
    provenance_only: list[str] = field(default_factory=list)  # source columns kept only in ctb_source_row
    uncovered: list[str] = field(default_factory=list)  # required target columns nothing fills
    nullable_copies: list[tuple[str, str]] = field(
        default_factory=list
    )  # (source col, target col) NOT NULL target, nullable source


def _cast(expression: sql.Composable, column: ColumnInfo) -> sql.Composable:
    return sql.SQL("CAST({} AS {})").format(expression, column.type_identifier)


def source_key(source: TableInfo) -> sql.Composable:
    """The provenance key of a source row: its primary key, else its content hash and ordinal
    (identical rows of a keyless table are told apart by number, so none is dropped)."""
    if source.primary_key:
        return sql.SQL("concat_ws('|', {})").format(
            sql.SQL(", ").join(sql.SQL("s.{}::text").format(sql.Identifier(c)) for c in source.primary_key)
        )
    return sql.SQL("md5(to_jsonb(s)::text) || '#' || row_number() OVER (PARTITION BY md5(to_jsonb(s)::text))")


def mapping(action: Action, spec: MergeTarget, source: TableInfo, target: TableInfo, catalog: Catalog) -> Mapping:
    """How each target column is filled from this source (pure: catalog data in, SQL parts out)."""
    result = Mapping()
    result.params["discriminator"] = action.value
    result.params["source_table"] = action.source
    relaxed = set(spec.relax_not_null)
    source_columns = {c.name: c for c in source.columns}
    used: set[str] = set()

    def fallback(rule: dict, column: ColumnInfo) -> sql.Composable | None:
        if "value" in rule:
            name = f"value_{column.name}"
            result.params[name] = rule["value"]
            return _cast(sql.Placeholder(name), column)
        if rule.get("discriminator"):
            return _cast(sql.Placeholder("discriminator"), column)
        if rule.get("generate") == "uuid":  # deterministic: a retried merge makes the same ids
            return sql.SQL("md5(%(source_table)s || ':' || k.ctb_key)::uuid")
        if rule.get("generate") == "merged_at":
            return sql.SQL("now()")
        if rule.get("generate") == "source_row":
            return _cast(sql.SQL("k.ctb_row"), column)
        return None

    for column in target.columns:
        if column.name in PROVENANCE_COLUMNS or column.name == spec.discriminator_column or column.generated:
            continue
        rule = spec.fill.get(column.name)
        expression = None
        how = "fill"
        if rule is not None:
            present = [c for c in rule.get("from", []) if c in source_columns]
            used.update(present)
            parts = [_cast(sql.SQL("(k.s).{}").format(sql.Identifier(c)), column) for c in present]
            last = fallback(rule, column)
            if last is not None:
                parts.append(last)
            if parts:
                expression = parts[0] if len(parts) == 1 else sql.SQL("COALESCE({})").format(sql.SQL(", ").join(parts))
        elif column.name in source_columns and catalog.assignable(source_columns[column.name], column):
            expression = sql.SQL("(k.s).{}").format(sql.Identifier(column.name))
            used.add(column.name)
            how = "copy"
            if column.not_null and not source_columns[column.name].not_null and not column.has_default:
                result.nullable_copies.append((column.name, column.name))
        if expression is not None:
            result.fills.append(ColumnFill(column.name, expression, how))
        elif column.not_null and not column.has_default and column.name not in relaxed:
            result.uncovered.append(column.name)
    result.provenance_only = [c for c in source_columns if c not in used]
    return result


def _tables(ctx: Context, action: Action) -> tuple[MergeTarget, TableInfo, TableInfo]:
    spec = ctx.plan.merge_targets.get(action.target)
    if spec is None:
        raise PlanRejected(f"{action.target} is a MERGE target without an entry in merge_targets")
    source, target = ctx.catalog.get(action.source), ctx.catalog.get(action.target)
    if source is None or target is None:
        raise PlanRejected(
            f"MERGE {action.source} -> {action.target}: {'source' if source is None else 'target'} missing"
        )
    return spec, source, target


def target_key_match(spec: MergeTarget, target: TableInfo, fills: list[ColumnFill]) -> sql.Composable | None:
    """`target.pk = <expression of the row being merged>`, to find rows whose key the target has."""
    if not target.primary_key:
        return None
    by_column = {f.column: f.expression for f in fills}
    if not all(c in by_column for c in target.primary_key):
        return None
    return sql.SQL(" AND ").join(
        sql.SQL("x.{} = {}").format(sql.Identifier(c), by_column[c]) for c in target.primary_key
    )


def insert_statement(ctx: Context, action: Action) -> tuple[Statement, Mapping, sql.Composable | None]:
    spec, source, target = _tables(ctx, action)
    plan = mapping(action, spec, source, target, ctx.catalog)
    if plan.uncovered:
        raise PlanRejected(
            f"MERGE {action.source} -> {action.target}: required target columns {plan.uncovered} have no value "
            "(add a fill rule or relax_not_null in merge_targets)"
        )
    plan.params["run_id"] = ctx.run_id
    key_match = target_key_match(spec, target, plan.fills)
    conflict_filter = sql.SQL("")
    if key_match is not None and spec.on_key_conflict == "keep_target":
        conflict_filter = sql.SQL("WHERE NOT EXISTS (SELECT 1 FROM {} AS x WHERE {})").format(
            qualified(action.target), key_match
        )
    discriminator = target.column(spec.discriminator_column)
    query = sql.SQL(
        "INSERT INTO {target} ({columns}, {disc}, ctb_source_table, ctb_source_key, ctb_source_row, ctb_run_id, ctb_merged_at) "
        "SELECT {values}, {disc_value}, %(source_table)s, k.ctb_key, k.ctb_row, %(run_id)s, now() "
        "FROM (SELECT s, to_jsonb(s) AS ctb_row, {key} AS ctb_key FROM {source} AS s) AS k {filter} "
        "ON CONFLICT (ctb_source_table, ctb_source_key) WHERE ctb_source_table IS NOT NULL DO NOTHING"
    ).format(
        target=qualified(action.target),
        columns=identifiers(f.column for f in plan.fills),
        disc=sql.Identifier(spec.discriminator_column),
        values=sql.SQL(", ").join(f.expression for f in plan.fills),
        disc_value=_cast(sql.Placeholder("discriminator"), discriminator)
        if discriminator
        else sql.Placeholder("discriminator"),
        key=source_key(source),
        source=qualified(action.source),
        filter=conflict_filter,
    )
    return (
        Statement(
            f"copy {action.source} into {action.target} as {spec.discriminator_column}={action.value}",
            query,
            plan.params,
        ),
        plan,
        key_match,
    )


def _merge_set(
    ctx: Context, relation: str, key_match, spec: MergeTarget, params: dict, *, negate: bool = False
) -> tuple[int, int]:
    """(rows, JSON checksum) of the rows of `relation` (the source, or its archive) that are merged
    into the target, or with `negate` the rows whose key the target already had (kept in archive)."""
    if key_match is None or spec.on_key_conflict != "keep_target":
        where = sql.SQL("WHERE false") if negate else sql.SQL("")
    else:
        others = (
            sql.SQL("AND x.ctb_source_table IS DISTINCT FROM %(source_table)s")
            if ctx.catalog.get(spec.table).column("ctb_source_table")
            else sql.SQL("")
        )
        where = sql.SQL("WHERE {} EXISTS (SELECT 1 FROM {} AS x WHERE {} {})").format(
            sql.SQL("") if negate else sql.SQL("NOT"), qualified(spec.table), key_match, others
        )
    row = ctx.conn.execute(
        sql.SQL(
            "SELECT count(*), coalesce(sum(hashtextextended(k.ctb_row::text, 0)::numeric), 0) "
            "FROM (SELECT s, to_jsonb(s) AS ctb_row, {key} AS ctb_key FROM {relation} AS s) AS k {where}"
        ).format(key=source_key(ctx.catalog.get(relation)), relation=qualified(relation), where=where),
        params,
    ).fetchone()
    return int(row[0]), int(row[1])


def prepare_target(ctx: Context, target_name: str) -> list[Statement]:
    """Preflight DDL for a merge target: discriminator and provenance columns, relaxed NOT NULLs.
    All metadata-only (nullable columns without defaults), idempotent."""
    spec = ctx.plan.merge_targets[target_name]
    target = ctx.catalog.get(target_name)
    result = []
    columns = [(spec.discriminator_column, DISCRIMINATOR_TYPES[spec.discriminator_type]), *PROVENANCE_DDL]
    for name, column_type in columns:
        if target.column(name) is None:
            result.append(
                Statement(
                    f"add column {target_name}.{name}",
                    sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} {}").format(
                        qualified(target_name), sql.Identifier(name), sql.SQL(column_type)
                    ),
                )
            )
    for name in spec.relax_not_null:
        column = target.column(name)
        if column is not None and column.not_null:
            result.append(
                Statement(
                    f"relax NOT NULL on {target_name}.{name}",
                    sql.SQL("ALTER TABLE {} ALTER COLUMN {} DROP NOT NULL").format(
                        qualified(target_name), sql.Identifier(name)
                    ),
                )
            )
    return result


def provenance_index(target_name: str) -> Statement:
    """Built CONCURRENTLY (outside a transaction), so the target stays writable meanwhile."""
    table = split_qualified(target_name)[1]
    return Statement(
        f"unique provenance index on {target_name}",
        sql.SQL(
            "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS {} ON {} (ctb_source_table, ctb_source_key) "
            "WHERE ctb_source_table IS NOT NULL"
        ).format(sql.Identifier(f"{table}_ctb_provenance"[:63]), qualified(target_name)),
    )


def check(ctx: Context, step) -> State:
    return relocate.check(ctx.catalog, step.action.source, ctx.plan.archive_name(step.action.source))


def statements(ctx: Context, step) -> list[Statement]:
    action = step.action
    insert, _, _ = insert_statement(ctx, action)
    lock = Statement(
        f"block writes to {action.source} for the transaction",
        sql.SQL("LOCK TABLE {} IN EXCLUSIVE MODE").format(qualified(action.source)),
    )
    return [
        lock,
        insert,
        *relocate.statements(ctx.conn, ctx.catalog, action.source, ctx.plan.archive_name(action.source)),
    ]


def preview(ctx: Context, step) -> dict:
    action = step.action
    spec, _, _ = _tables(ctx, action)
    _, plan, key_match = insert_statement(ctx, action)
    merged, _ = _merge_set(ctx, action.source, key_match, spec, plan.params)
    kept, _ = _merge_set(ctx, action.source, key_match, spec, plan.params, negate=True)
    return {
        "rows": merged + kept,
        "rows_to_merge": merged,
        "key_conflicts_kept_in_archive": kept,
        "provenance_only_columns": plan.provenance_only,
    }


def apply(ctx: Context, step) -> Outcome:
    action = step.action
    spec, _, _ = _tables(ctx, action)
    lock, insert, *_archive = statements(ctx, step)
    ctx.execute(lock)
    _, plan, key_match = insert_statement(ctx, action)
    merge_rows, merge_checksum = _merge_set(ctx, action.source, key_match, spec, plan.params)
    kept_rows, _ = _merge_set(ctx, action.source, key_match, spec, plan.params, negate=True)
    if kept_rows and spec.on_key_conflict != "keep_target":
        raise PlanRejected(
            f"MERGE {action.source} -> {action.target}: {kept_rows} rows collide with the target's primary key"
        )
    inserted = ctx.execute(insert).rowcount
    merged = provenance_fingerprint(ctx.conn, action.target, action.source)
    if inserted != merge_rows or merged != (merge_rows, merge_checksum):
        raise VerificationFailed(
            f"MERGE {action.source} -> {action.target}: inserted {inserted}, provenance {merged}, "
            f"expected {merge_rows} rows with checksum {merge_checksum}"
        )
    relocate.apply(ctx.conn, ctx.catalog, action.source, ctx.plan.archive_name(action.source))
    return Outcome(
        step,
        "applied",
        rows_before={action.source: merge_rows + kept_rows},
        rows_after={action.target: inserted, ctx.plan.archive_name(action.source): merge_rows + kept_rows},
        checksums_before={action.source: str(merge_checksum)},
        checksums_after={f"{action.target}[{spec.discriminator_column}={action.value}]": str(merged[1])},
        details={
            "discriminator": {spec.discriminator_column: action.value},
            "key_conflicts_kept_in_archive": kept_rows,
            "provenance_only_columns": plan.provenance_only,
            "archived_as": ctx.plan.archive_name(action.source),
        },
    )


def verify(ctx: Context, step, located: dict) -> list[str]:
    """Archived source = rows merged (by provenance checksum) + rows whose key the target kept."""
    action = step.action
    archived = ctx.plan.archive_name(action.source)
    if located.get(action.source) != archived:
        return [f"{action.source} should now be {archived}, found {located.get(action.source)}"]
    spec = ctx.plan.merge_targets[action.target]
    plan = mapping(action, spec, ctx.catalog.get(archived), ctx.catalog.get(action.target), ctx.catalog)
    key_match = target_key_match(spec, ctx.catalog.get(action.target), plan.fills)
    total = _merge_set(ctx, archived, None, spec, plan.params)
    kept = _merge_set(ctx, archived, key_match, spec, plan.params, negate=True)
    merged = provenance_fingerprint(ctx.conn, action.target, action.source)
    if (merged[0] + kept[0], merged[1] + kept[1]) != total:
        return [
            f"{action.target}: {merged[0]} rows from {action.source} + {kept[0]} kept by key != {total[0]} rows in "
            f"{archived}, or their content checksums differ"
        ]
    return []


def revert(ctx: Context, step) -> Outcome:
    """Put the source back and take its copies out of the target (the originals are the source)."""
    action = step.action
    archived = ctx.plan.archive_name(action.source)
    if relocate.check(ctx.catalog, archived, action.source) != State.PENDING:
        return Outcome(step, "already_done")
    removed = ctx.conn.execute(
        sql.SQL("DELETE FROM {} WHERE ctb_source_table = %s").format(qualified(action.target)), (action.source,)
    ).rowcount
    relocate.apply(ctx.conn, ctx.catalog, archived, action.source)
    return Outcome(step, "reverted", details={"copies_removed_from_target": removed})
