"""How a MERGE maps a source row onto its target: which columns copy (and whether a cast would lose
information), how the plan's fill rules and the discriminator fill the rest, the source key and
whole-row provenance, and how a target row is matched to its source. Pure over the catalog: the
merge action renders it into SQL; the guards, the reconcile table and the compatibility views read
the same mapping without importing the action.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from psycopg import sql

from ple.catalog import Catalog, ColumnInfo, TableInfo
from ple.reorg.plan import Action, MergeTarget
from ple.reorg.proof import PROVENANCE_COLUMNS
from ple.sqlutil import qualified

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
    per_row: bool = False  # reads k.ctb_key or k.ctb_row: the source's provenance key or its JSON


@dataclass
class Mapping:
    fills: list[ColumnFill] = field(default_factory=list)
    params: dict = field(default_factory=dict)
    provenance_only: list[str] = field(default_factory=list)  # source columns kept only in ctb_source_row
    uncovered: list[str] = field(default_factory=list)  # required target columns nothing fills
    nullable_copies: list[tuple[str, str]] = field(
        default_factory=list
    )  # (source col, target col) NOT NULL target, nullable source
    lossy: list[tuple[str, str, str]] = field(default_factory=list)  # (source col, target col, why) refused
    narrowed: list[tuple[str, str, int]] = field(default_factory=list)  # (source col, target col, limit)


INTEGER_TYPES = {"int2": 2, "int4": 4, "int8": 8}
EXACT_NUMBERS = {"numeric"}
FLOATS = {"float4": 4, "float8": 8}


def lossycast_to(source: ColumnInfo, target: ColumnInfo) -> str | None:
    """Why converting `source` into `target` would lose information silently, or None."""
    s, t = source.type_name, target.type_name
    if t in INTEGER_TYPES and (s in EXACT_NUMBERS or s in FLOATS):
        return f"{source.type} into {target.type} rounds away fractions (627.49 -> 627)"
    if t in FLOATS and (s in EXACT_NUMBERS or s == "int8" or FLOATS.get(s, 0) > FLOATS[t]):
        return f"{source.type} into {target.type} loses precision"
    if s == "timestamp" and t == "timestamptz":
        return f"{source.type} into {target.type} depends on a time zone (the merge reads it as UTC)"
    if s == "timestamptz" and t in ("timestamp", "date", "time"):
        return f"{source.type} into {target.type} drops the time zone"
    if s in ("timestamp", "timestamptz") and t == "date":
        return f"{source.type} into {target.type} drops the time of day"
    return None


def narrowing(source: ColumnInfo, target: ColumnInfo) -> bool:
    """A value of `source` may be longer than the `target` varchar allows (then the lint counts
    the rows that are: without an acceptance the INSERT would fail on them half way)."""
    if target.type_category != "S" or target.max_length is None:
        return False
    return source.type_category != "S" or source.max_length is None or source.max_length > target.max_length


def cast_to(expression: sql.Composable, column: ColumnInfo, *, to_length: bool = False) -> sql.Composable:
    """An explicit cast to the column's base type; `to_length` keeps a varchar's limit (an
    explicit cast cuts longer values: only where the plan accepted that)."""
    if to_length and column.max_length is not None:
        return sql.SQL("CAST({} AS {}({}))").format(expression, column.type_identifier, sql.Literal(column.max_length))
    return sql.SQL("CAST({} AS {})").format(expression, column.type_identifier)


def _primary_key_text(source: TableInfo, row: str) -> sql.Composable:
    """A keyed source row's provenance key: its primary key's values joined by '|' (row: `s.` or `(j.s).`)."""
    return sql.SQL("concat_ws('|', {})").format(
        sql.SQL(", ").join(sql.SQL(row + "{}::text").format(sql.Identifier(c)) for c in source.primary_key)
    )


def source_key(source: TableInfo) -> sql.Composable:
    """The provenance key of a source row: its primary key, else its content hash and ordinal
    (identical rows of a keyless table are told apart by number, so none is dropped)."""
    if source.primary_key:
        return _primary_key_text(source, "s.")
    return sql.SQL("md5(to_jsonb(s.*)::text) || '#' || row_number() OVER (PARTITION BY md5(to_jsonb(s.*)::text))")


def whole_row(source: TableInfo) -> sql.Composable:
    """The row of `s` as a value of the source's row type. `s.*` (not `s`) so that a source column
    named s cannot stand in for the row: PostgreSQL resolves a bare `s` to a column first."""
    return sql.SQL("ROW(s.*)::{}").format(qualified(source.name))


def keyed_source(
    source: TableInfo, *, json: bool = True, key: bool = True, rows: sql.Composable | None = None
) -> sql.Composable:
    """The source's rows as `(...) AS k`: each row as `s`, its JSON `ctb_row`, a 64-bit hash of
    that JSON's text `ctb_digest` and its provenance key `ctb_key` (source_key). `to_jsonb` of a
    wide row is the expensive part, so it is computed once per row (OFFSET 0 keeps the planner from
    copying the expression into the key, the sort and the hash). Without `json` no JSON is made
    for a keyed source; without `json` and `key` (a count that reads only the row's columns) none is
    made for a keyless one either, whose key is a hash of that JSON. `rows`: a WHERE clause on `s`."""
    relation = sql.SQL("{} AS s {}").format(qualified(source.name), rows or sql.SQL(""))
    if not json and not (key and not source.primary_key):
        key_text = _primary_key_text(source, "(j.s).") if source.primary_key and key else sql.SQL("NULL::text")
        return sql.SQL(
            "(SELECT j.s, NULL::jsonb AS ctb_row, NULL::numeric AS ctb_digest, {key} AS ctb_key "
            "FROM (SELECT {row} AS s FROM {relation}) AS j) AS k"
        ).format(key=key_text, row=whole_row(source), relation=relation)
    with_json = sql.SQL(
        "SELECT j.s, j.ctb_row, hashtextextended(j.ctb_text, 0)::numeric AS ctb_digest{hashed} "
        "FROM (SELECT i.s, i.ctb_row, i.ctb_row::text AS ctb_text "
        "FROM (SELECT {row} AS s, to_jsonb(s.*) AS ctb_row FROM {relation} OFFSET 0) AS i OFFSET 0) AS j"
    )
    if source.primary_key:
        return sql.SQL(
            "(SELECT j.s, j.ctb_row, j.ctb_digest, {key} AS ctb_key FROM ({rows} OFFSET 0) AS j) AS k"
        ).format(
            key=_primary_key_text(source, "(j.s)."),
            rows=with_json.format(hashed=sql.SQL(""), row=whole_row(source), relation=relation),
        )
    return sql.SQL(
        "(SELECT j.s, j.ctb_row, j.ctb_digest, j.h || '#' || row_number() OVER (PARTITION BY j.h) AS ctb_key "
        "FROM ({rows} OFFSET 0) AS j) AS k"
    ).format(rows=with_json.format(hashed=sql.SQL(", md5(j.ctb_text) AS h"), row=whole_row(source), relation=relation))


def mapping(action: Action, spec: MergeTarget, source: TableInfo, target: TableInfo, catalog: Catalog) -> Mapping:
    """How each target column is filled from this source (pure: catalog data in, SQL parts out)."""
    result = Mapping()
    result.params["discriminator"] = action.value
    result.params["source_table"] = action.source
    relaxed = set(spec.relax_not_null)
    source_columns = {c.name: c for c in source.columns}
    used: set[str] = set()

    def loses(source_column: str, column: ColumnInfo) -> bool:
        """Records a refused lossy cast; True where the plan accepts cutting to the column's length."""
        accepted = column.name in spec.accept_lossy_casts
        why = lossycast_to(source_columns[source_column], column)
        if why and not accepted:
            result.lossy.append((source_column, column.name, why))
        if narrowing(source_columns[source_column], column) and not accepted:
            result.narrowed.append((source_column, column.name, column.max_length))
        return accepted

    def fallback(rule: dict, column: ColumnInfo) -> sql.Composable | None:
        if "value" in rule:
            name = f"value_{column.name}"
            result.params[name] = rule["value"]
            return cast_to(sql.Placeholder(name), column)
        if rule.get("discriminator"):
            return cast_to(sql.Placeholder("discriminator"), column)
        if rule.get("generate") == "uuid":  # deterministic: a retried merge makes the same ids
            return sql.SQL("md5(%(source_table)s || ':' || k.ctb_key)::uuid")
        if rule.get("generate") == "merged_at":
            return sql.SQL("now()")
        if rule.get("generate") == "source_row":
            return cast_to(sql.SQL("k.ctb_row"), column)
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
            parts = [
                cast_to(sql.SQL("(k.s).{}").format(sql.Identifier(c)), column, to_length=loses(c, column))
                for c in present
            ]
            if "only" in rule:  # a value outside the list is not written: the next part is
                result.params[f"only_{column.name}"] = [str(v) for v in rule["only"]]
                parts = [
                    sql.SQL("CASE WHEN {part}::text = ANY({only}) THEN {part} END").format(
                        part=part, only=sql.Placeholder(f"only_{column.name}")
                    )
                    for part in parts
                ]
            last = fallback(rule, column)
            if last is not None:
                parts.append(last)
            if parts:
                expression = parts[0] if len(parts) == 1 else sql.SQL("COALESCE({})").format(sql.SQL(", ").join(parts))
        elif column.name in source_columns and catalog.assignable(source_columns[column.name], column):
            expression = sql.SQL("(k.s).{}").format(sql.Identifier(column.name))
            if loses(column.name, column):
                expression = cast_to(expression, column, to_length=True)
            used.add(column.name)
            how = "copy"
            if column.not_null and not source_columns[column.name].not_null and not column.has_default:
                result.nullable_copies.append((column.name, column.name))
        if expression is not None:
            per_row = rule is not None and rule.get("generate") in ("uuid", "source_row")
            result.fills.append(ColumnFill(column.name, expression, how, per_row))
        elif column.not_null and not column.has_default and column.name not in relaxed:
            result.uncovered.append(column.name)
    result.provenance_only = [c for c in source_columns if c not in used]
    return result


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


def key_reads_row(target: TableInfo, fills: list[ColumnFill]) -> bool:
    """Whether the target-key expression of target_key_match needs the source row's provenance key
    or JSON (a generated key): a count that only matches keys can skip making them otherwise."""
    return any(f.per_row for f in fills if f.column in target.primary_key)
