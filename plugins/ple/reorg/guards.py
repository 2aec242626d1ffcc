"""Guards: what the database itself does to the tool's statements, read before the first write.

A real database carries guards the plan never mentions. For every table a step writes (a merge
target: INSERT; a fold target: UPDATE; an ADD_PK table: UPDATE, the low-lock path's backfill), reads (merge and fold sources: their rows are copied and
proven) or relocates (archived, moved, merged or folded sources), this module reads:

  trigger   what each would do to the tool's statement. A trigger that rewrites a column on
            UPDATE (updated_at) or writes into other tables (a sync fanning rows out) is disabled
            for the step's own transaction only (handled: a fold must not change existing values,
            and merged history rows are not new events); a trigger that raises (append-only,
            write-once, read-only) blocks, unless a person accepts disabling it for the step;
  rls       row-level security that applies to the connecting role: it would copy and prove only
            the rows a policy shows. Blocks; the fix is the role (owner or BYPASSRLS);
  check     every rule of a merge target evaluated over the rows as the INSERT writes them
  enum      (fills, the discriminator, DEFAULTs, generated columns: _mapped_rows): CHECKs of any
  not-null  shape, enum labels, NOT NULL (of the column or its domain), foreign keys, lengths,
  fk        conversions. Blocks, counted with example rows, with a proposal where one is lossless;
  unique    unique indexes beyond the key (keys, expressions, predicates) against the target's
            rows and within the merged rows. Blocks, with a proposal where a key column can stay
            NULL (the value stays in ctb_source_row), else skipping the action;
  fk        foreign keys of live tables into what becomes a frozen archive. Handled: the archive
            keeps every key and refuses deletes, so no ON DELETE rule ever fires;
  view      views reading a relocated table. Handled: they follow it by OID;
  function  function bodies naming a relocated table (qualified, quoted, dynamic, or through a
            search_path). A trigger function of a live table blocks (its writes would fail),
            unless accepted; other functions are reported;
  governance where the owner's DDL gate exists (ple/governance.py): a table the step alters that
            the owner's registry freezes or does not list blocks, unless accepted (unfrozen
            inside the step's transactions only, or registered first).

Each finding carries a key; `guards.accept.<key>` in the decisions file records a person's
acceptance. Read-only, except `bypassed_triggers`, which names the triggers run_step disables.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import psycopg
from psycopg import sql

from ple import governance
from ple.catalog import Catalog, dependent_views
from ple.reorg import gate, merge_mapping
from ple.reorg.plan import Plan, Step
from ple.sqlutil import qualified, raw_template

ROW, BEFORE, INSERT, DELETE, UPDATE = 1, 2, 4, 8, 16
LITERAL = re.compile(r"'((?:[^']|'')*)'")
PREFERRED_FALLBACKS = ("legacy", "other", "unknown", "validation", "manual")


@dataclass(frozen=True)
class Guard:
    kind: str
    key: str  # stable name: decisions' guards.accept uses it
    step_id: str
    table: str
    message: str
    handling: str  # what the tool does about it, or the fix
    blocks: bool = False
    proposal: tuple | None = None  # (section, name, entry) for the decisions file
    bypass: bool = False  # disable this trigger in the step's transaction

    def line(self) -> str:
        state = "BLOCKS" if self.blocks else "handled"
        return f"[{self.kind}] {self.key} ({self.step_id}): {self.message}; {state}: {self.handling}"


def _writes(step: Step) -> tuple[str, int] | None:
    """The table a step changes row by row and the trigger event it fires."""
    if step.kind == "MERGE":
        return step.action.target, INSERT
    if step.kind == "FOLD":
        return step.target, UPDATE
    if step.kind == "ADD_PK":  # the low-lock path backfills a new key column with UPDATEs
        return step.action.source, UPDATE
    return None


def _reads(step: Step) -> list[str]:
    if step.kind == "MERGE":
        return [step.action.source]
    if step.kind == "FOLD":
        return [a.source for a in step.actions] + [a.join.via_table for a in step.actions if a.join.via_table]
    return []


def _relocates(step: Step) -> list[str]:
    return [a.source for a in step.actions] if step.kind in ("ARCHIVE", "MOVE", "MERGE", "FOLD") else []


def _archived(plan: Plan, step: Step) -> list[str]:
    if step.kind == "ARCHIVE":
        return [step.action.source]
    if step.kind in ("MERGE", "FOLD"):
        return [a.source for a in step.actions]
    return []


def inspect(
    conn: psycopg.Connection,
    plan: Plan,
    catalog: Catalog,
    decisions,
    phases: list[str] | None = None,
    steps: list[Step] | None = None,
) -> list[Guard]:
    """Every guard on every table the (decided) plan's steps write, read or relocate."""
    accepted = decisions.accepted if decisions is not None else {}
    if steps is None:
        selected = [plan.phase(p) for p in phases] if phases else list(plan.phases)
        steps = [s for phase in selected for s in phase.steps]
    found: list[Guard] = []
    owner_gate = governance.detect(conn)
    for step in steps:
        if owner_gate:
            found += [
                Guard("governance", key, step.step_id, table, message, handling, blocks=blocks, proposal=proposal)
                for key, table, message, handling, blocks, proposal in gate.guards(conn, plan, catalog, step, accepted)
            ]
        write = _writes(step)
        if write and catalog.exists(write[0]):
            found += _triggers(conn, step, write[0], write[1], accepted)
        found += _row_security(
            conn, step, [t for t in _reads(step) + ([write[0]] if write else []) if catalog.exists(t)]
        )
        if step.kind == "MERGE" and catalog.exists(step.action.target) and catalog.exists(step.action.source):
            found += _merge_values(conn, plan, catalog, step)
        relocated = [t for t in _relocates(step) if catalog.exists(t)]
        found += _foreign_keys_into(conn, step, [t for t in _archived(plan, step) if catalog.exists(t)], relocated)
        found += _views_and_functions(conn, step, relocated, accepted)
    return found


def revert_bypass(conn: psycopg.Connection, step: Step, decisions, target: str | None) -> list[tuple[str, str]]:
    """(table, trigger) a merge's revert disables while it takes the copies out of `target`: the
    DELETE side of what the merge bypassed on INSERT. The copies were never events, so a sync must
    not fan their removal out (it would undo the application's own rows elsewhere); a trigger that
    raises on DELETE stays on (the revert stops, nothing lost) unless a person accepted it."""
    if step.kind != "MERGE" or target is None:
        return []
    accepted = decisions.accepted if decisions is not None else {}
    return [(g.table, g.key.rsplit(".", 1)[1]) for g in _triggers(conn, step, target, DELETE, accepted) if g.bypass]


def blocking(guards: list[Guard]) -> list[Guard]:
    return [g for g in guards if g.blocks]


def bypassed_triggers(guards: list[Guard], step_id: str) -> list[tuple[str, str]]:
    """(table, trigger) the step disables for its own transaction (and enables again before commit)."""
    return [(g.table, g.key.rsplit(".", 1)[1]) for g in guards if g.step_id == step_id and g.bypass]


def render(guards: list[Guard]) -> str:
    if not guards:
        return "guards: none on the tables this plan writes, reads or moves"
    blocked = len(blocking(guards))
    return "\n".join([f"guards: {len(guards)} ({blocked} block apply)", *("  " + g.line() for g in guards)])


# ---------------------------------------------------------------------- triggers
def _events(tgtype: int) -> str:
    names = [n for bit, n in ((INSERT, "INSERT"), (UPDATE, "UPDATE"), (DELETE, "DELETE")) if tgtype & bit]
    return ("BEFORE " if tgtype & BEFORE else "AFTER ") + "/".join(names) + (" row" if tgtype & ROW else " statement")


def _triggers(conn, step: Step, table: str, event: int, accepted: dict) -> list[Guard]:
    result = []
    statement = {"MERGE": "INSERT (merge)", "FOLD": "UPDATE (fold)"}.get(step.kind, "UPDATE (key backfill)")
    for table_name, name, tgtype, enabled, function, body in conn.execute(
        raw_template("guards/triggers"), {"tables": [table]}
    ):
        if enabled in ("D", "R") or not tgtype & event:  # R: fires only for replication, not for the tool
            continue
        key = f"{table_name}.{name}"
        text = (body or "").lower()
        raises = re.search(r"raise\s+exception", text) is not None
        setting = re.search(r"current_setting\(\s*'([^']+)'", text)
        rewrites = re.findall(r"new\.([a-z_][a-z0-9_]*)\s*:?=", text)
        fans_out = re.search(r"\b(insert\s+into|update\s+[a-z_\".]+\s+set|delete\s+from)\b", text) is not None
        what = f"{_events(tgtype)} trigger {name} ({function}) fires on the tool's {statement}"
        if raises:
            guard = f"raises{' unless ' + setting.group(1) + ' is set' if setting else ''} (a write guard)"
            reason = accepted.get(key)
            if reason:
                result.append(
                    Guard(
                        "trigger",
                        key,
                        step.step_id,
                        table_name,
                        f"{what}; it {guard}",
                        f"accepted ({reason}): disabled for this step's transaction only",
                        bypass=True,
                    )
                )
            else:
                result.append(
                    Guard(
                        "trigger",
                        key,
                        step.step_id,
                        table_name,
                        f"{what}; it {guard}",
                        "the step would fail. Fix: accept disabling it for the step's own transaction (the "
                        + {
                            "FOLD": "fold only adds columns; its checksum proof shows no existing value changes)",
                            "MERGE": "merge only inserts copies of rows that exist elsewhere, proven by checksum)",
                        }.get(step.kind, "key backfill only fills the new key column, in batches)")
                        + ", or skip the action",
                        blocks=True,
                        proposal=(
                            "accept",
                            key,
                            f"{step.step_id} writes only what its proof shows; {name} is disabled "
                            "for that transaction only and enabled again before it commits",
                        ),
                    )
                )
        elif rewrites and event == UPDATE:
            result.append(
                Guard(
                    "trigger",
                    key,
                    step.step_id,
                    table_name,
                    f"{what}; it rewrites {sorted(set(rewrites))} in every updated row",
                    "disabled for the step's own transactions only: a fold or a key backfill must not change existing values",
                    bypass=True,
                )
            )
        elif fans_out:
            result.append(
                Guard(
                    "trigger",
                    key,
                    step.step_id,
                    table_name,
                    f"{what}; it writes into other tables (a sync)",
                    "disabled for the step's transaction only: merged and folded rows are copies of existing rows, "
                    "not new events to fan out",
                    bypass=True,
                )
            )
        elif rewrites:
            result.append(
                Guard(
                    "trigger",
                    key,
                    step.step_id,
                    table_name,
                    f"{what}; it sets {sorted(set(rewrites))} on new rows",
                    "left enabled: it only fills columns of the new rows; each source row stays whole in ctb_source_row",
                )
            )
        else:
            result.append(
                Guard(
                    "trigger",
                    key,
                    step.step_id,
                    table_name,
                    f"{what}",
                    "left enabled: it neither raises, rewrites values nor writes elsewhere; rehearse runs it",
                )
            )
    return result


# ---------------------------------------------------------------------- row-level security
def _row_security(conn, step: Step, tables: list[str]) -> list[Guard]:
    result = []
    if not tables:
        return result
    for table, _enabled, forced, active, policies, role in conn.execute(
        raw_template("guards/row_security"), {"tables": tables}
    ):
        described = f"row-level security{' (forced)' if forced else ''}, policies {', '.join(policies) or 'none'}"
        if active:
            result.append(
                Guard(
                    "rls",
                    f"{table}.rls",
                    step.step_id,
                    table,
                    f"{described} applies to the connecting role {role}: the step would copy and prove only the rows "
                    "a policy shows",
                    f"connect as the owner of {table} (without FORCE ROW LEVEL SECURITY) or as a role with BYPASSRLS",
                    blocks=True,
                )
            )
        else:
            result.append(
                Guard(
                    "rls",
                    f"{table}.rls",
                    step.step_id,
                    table,
                    f"{described}; the role {role} is not subject to it",
                    "every row is read and written",
                )
            )
    return result


# ---------------------------------------------------------------------- constants vs CHECK and enum
def allowed_values(definition: str) -> list[str] | None:
    """The values of a `col = ANY (ARRAY[...])` / `col IN (...)` CHECK, or None (another shape)."""
    definition = re.sub(r"\s+NOT VALID$", "", definition)
    if not re.search(r"(?<![<>!])=\s*any\s*\(|\sin\s*\(", definition, re.IGNORECASE):
        return None
    if re.search(r"\b(and|or|not|like|~)\b", definition.split("CHECK", 1)[-1], re.IGNORECASE):
        return None
    return [v.replace("''", "'") for v in LITERAL.findall(definition)]


def _fallback(allowed: list[str]) -> str:
    for word in PREFERRED_FALLBACKS:
        for value in allowed:
            if word in value.lower():
                return value
    return allowed[0]


def _constants(plan: Plan, step: Step, source_columns: set[str]) -> dict[str, str]:
    """Column -> the constant a merge writes into every row (discriminator, fill values). A rule
    that reads a column the source has writes per-row values: those are judged on the rows
    themselves (_mapped_rows), never by the rule's fallback."""
    spec = plan.merge_targets[step.action.target]
    values = {spec.discriminator_column: step.action.value}
    for column, rule in spec.fill.items():
        if any(c in source_columns for c in rule.get("from", [])):
            continue
        if "value" in rule and isinstance(rule["value"], str):
            values.setdefault(column, rule["value"])
        elif rule.get("discriminator"):
            values.setdefault(column, step.action.value)
    return values


def _merge_values(conn, plan: Plan, catalog: Catalog, step: Step) -> list[Guard]:
    target = catalog.get(step.action.target)
    spec = plan.merge_targets.get(step.action.target)
    if spec is None:
        return []
    result = []
    source_columns = set(catalog.get(step.action.source).column_names)
    constants = {c: v for c, v in _constants(plan, step, source_columns).items() if target.column(c) is not None}
    for column, kind, name, definition, labels in conn.execute(
        raw_template("guards/column_checks"), {"table": target.name}
    ):
        if column not in constants:
            continue
        value = constants[column]
        allowed = labels if kind == "enum" else allowed_values(definition)
        key = f"{target.name}.{name}"
        if allowed is None:
            result.append(
                Guard(
                    "check",
                    key,
                    step.step_id,
                    target.name,
                    f"CHECK {definition} on {column}, which gets {value!r}",
                    "not a list of values: evaluated on the rows the merge would write",
                )
            )
            continue
        if value in allowed:
            result.append(
                Guard(
                    kind,
                    key,
                    step.step_id,
                    target.name,
                    f"{column} gets {value!r}, which {name} allows",
                    "nothing to do",
                )
            )
            continue
        if column == spec.discriminator_column:
            proposal = (
                "targets",
                target.name,
                {
                    "discriminator": {"column": "ctb_merge_source", "type": "text"},
                    "fill": {column: {"value": _fallback(allowed)}},
                },
            )
            fix = (
                f"write the discriminator into a new column ctb_merge_source and {column} = {_fallback(allowed)!r} "
                "(each row's own value stays in ctb_source_row)"
            )
        else:
            proposal = ("targets", target.name, {"fill": {column: {"value": _fallback(allowed)}}})
            fix = f"fill {column} with {_fallback(allowed)!r}, an allowed value (the row's own stays in ctb_source_row)"
        result.append(
            Guard(
                kind,
                key,
                step.step_id,
                target.name,
                f"{column} would get {value!r}, which {kind} {name} forbids (allowed: {', '.join(allowed)})",
                f"the merge would fail. Proposal: {fix}",
                blocks=True,
                proposal=proposal,
            )
        )
    column = target.column(spec.discriminator_column)
    if column is not None and column.type_category != "S":
        result.append(
            Guard(
                "check",
                f"{target.name}.{column.name}.type",
                step.step_id,
                target.name,
                f"the discriminator column {column.name} is {column.type}, not a string",
                "Proposal: write the discriminator into a new text column ctb_merge_source",
                blocks=True,
                proposal=("targets", target.name, {"discriminator": {"column": "ctb_merge_source", "type": "text"}}),
            )
        )
    result += _mapped_rows(conn, plan, catalog, step)
    return result


@dataclass
class _Test:
    """One rule evaluated over the mapped rows: `failing` is true for a row the rule refuses."""

    kind: str
    name: str
    description: str
    failing: sql.Composable
    column: str | None = None
    expression: str | None = None  # a CHECK's own text (for its proposal)
    shown: sql.Composable | None = None  # how an example row is named (default: key = column)
    proposal: tuple | None = None
    fix: str | None = None  # set with `proposal` where the rule's finding says its own fix


@dataclass
class _Unwritten:
    """What the INSERT gives the target columns it does not name: DEFAULTs (evaluated like the
    INSERT does), generation expressions (computed from the mapped row), and the columns no
    read-only pass can compute (an identity or a sequence: nextval would advance it)."""

    generated: dict  # column -> generation expression
    unevaluable: dict  # column -> why
    not_null_domains: dict  # column -> the domain that refuses NULL


def _unwritten(conn, target, values: dict) -> _Unwritten:
    result = _Unwritten({}, {}, {})
    rows = conn.execute(raw_template("guards/target_columns"), {"table": target.name}).fetchall()

    for name, default, generation, reads, identity, domain, base_schema, base_name in rows:
        column = target.column(name)
        if domain:
            result.not_null_domains[name] = domain
        if column is None or name in values:
            continue
        if generation is not None:
            result.generated[name] = (generation, reads)
        elif identity:
            result.unevaluable[name] = "an identity column"
        elif default is not None and "nextval(" in default:
            result.unevaluable[name] = f"a sequence's next value ({default})"
        elif default is not None:  # the INSERT writes the DEFAULT, converted to the column's type
            values[name] = merge_mapping.cast_to(sql.SQL("({})").format(sql.SQL(default)), column)
        else:  # NULL, cast under the column's domains so that a NOT NULL domain is counted, not raised
            values[name] = sql.SQL("CAST(NULL AS {})").format(sql.Identifier(base_schema, base_name))
    for name, (_, reads) in list(result.generated.items()):
        missing = [c for c in reads if c not in values]
        if missing:
            del result.generated[name]
            result.unevaluable[name] = f"a generated column reading {missing}"
    return result


def _mapped_rows(conn, plan: Plan, catalog: Catalog, step: Step) -> list[Guard]:
    """Every rule of the target evaluated in one read-only pass over the rows exactly as the
    merge would write them (the plan's fill rules with their fallbacks, casts and the
    discriminator, the DEFAULTs of the columns it leaves out, generated columns computed from
    them, rows the target keeps left out): CHECKs of any shape (a whole-row CHECK on the row as a
    value of the target's type), foreign keys, NOT NULL (of the column or of its domain), length
    limits, unique indexes (against the target's rows and within the merged rows), and every
    conversion (a domain's CHECK, a generation expression that fails). Only a column the pass
    cannot compute read-only (an identity, a sequence) is left out, named: rehearse runs it."""

    action = step.action
    spec = plan.merge_targets[action.target]
    source, target = catalog.get(action.source), catalog.get(action.target)
    mapping = merge_mapping.mapping(action, spec, source, target, catalog)
    if mapping.uncovered:
        return []  # the merge refuses the plan itself before any write (lint reports it)
    values = {f.column: f.expression for f in mapping.fills}
    discriminator = target.column(spec.discriminator_column)
    if discriminator is not None:
        values[discriminator.name] = merge_mapping.cast_to(sql.Placeholder("discriminator"), discriminator)
    values |= {  # what the INSERT writes into the provenance columns
        "ctb_source_table": sql.Placeholder("source_table"),
        "ctb_source_key": sql.SQL("k.ctb_key"),
        "ctb_source_row": sql.SQL("k.ctb_row"),
        "ctb_run_id": sql.Placeholder("run_id"),
        "ctb_merged_at": sql.SQL("now()"),
    }
    unwritten = _unwritten(conn, target, values)
    available = set(values) | set(unwritten.generated)
    checks = conn.execute(raw_template("guards/check_constraints"), {"table": target.name}).fetchall()
    foreign_keys = conn.execute(raw_template("guards/foreign_keys_of"), {"table": target.name}).fetchall()
    indexes = conn.execute(raw_template("guards/unique_indexes"), {"table": target.name}).fetchall()
    relaxed = set(spec.relax_not_null)
    tests: list[_Test] = []
    result = []
    for name, expression, columns, whole_row in checks:
        missing = [c for c in columns if c not in available]
        if missing and not whole_row:
            result.append(
                Guard(
                    "check",
                    f"{target.name}.{name}",
                    step.step_id,
                    target.name,
                    f"CHECK {name} ({expression}) reads {missing}: "
                    + "; ".join(f"{c} is {unwritten.unevaluable[c]}" for c in missing),
                    "not evaluated before apply (a read-only pass cannot draw its values): rehearse runs the merge "
                    "against it",
                )
            )
            continue
        failing = sql.SQL("NOT ({})").format(sql.SQL(expression))
        if whole_row:  # the row as a value of the target's type, named as the CHECK names it
            failing = sql.SQL("NOT (SELECT ({}) FROM unnest(ARRAY[CAST(ROW({}) AS {})]) AS {})").format(
                sql.SQL(expression),
                sql.SQL(", ").join(
                    sql.SQL("m.{}").format(sql.Identifier(c.name))
                    if c.name in available
                    else merge_mapping.cast_to(sql.SQL("NULL"), c)
                    for c in target.columns
                ),
                qualified(target.name),
                sql.Identifier(target.name.split(".", 1)[1]),
            )
        column = columns[0] if len(columns) == 1 and not whole_row else None
        tests.append(_Test("check", name, f"CHECK {name} ({expression})", failing, column, expression))
    for name, columns, referenced, referenced_columns, match_full in foreign_keys:
        if not all(c in available for c in columns):
            continue  # an identity or a sequence: rehearse runs the merge against it
        mixed = sql.SQL("")
        if match_full and len(columns) > 1:  # MATCH FULL refuses a key only partly NULL
            mixed = sql.SQL(" OR (({}) AND NOT ({}))").format(
                sql.SQL(" OR ").join(sql.SQL("{} IS NULL").format(sql.Identifier(c)) for c in columns),
                sql.SQL(" AND ").join(sql.SQL("{} IS NULL").format(sql.Identifier(c)) for c in columns),
            )
        missing = sql.SQL("({set}) AND NOT EXISTS (SELECT 1 FROM {ref} AS r WHERE {match}){mixed}").format(
            mixed=mixed,
            set=sql.SQL(" AND ").join(sql.SQL("{} IS NOT NULL").format(sql.Identifier(c)) for c in columns),
            ref=qualified(referenced),
            match=sql.SQL(" AND ").join(
                sql.SQL("r.{} = m.{}").format(sql.Identifier(r), sql.Identifier(c))
                for c, r in zip(columns, referenced_columns, strict=True)
            ),
        )
        about = f"FOREIGN KEY {name} ({', '.join(columns)}) into {referenced}"
        tests.append(_Test("fk", name, about, missing, columns[0] if len(columns) == 1 else None))
    for column in target.columns:  # a constant or discriminator longer than the column: assignment refuses it
        if column.max_length is not None and column.name in available and column.type_category == "S":
            tests.append(
                _Test(
                    "length",
                    f"{column.name}.length",
                    f"the length limit of {column.name} ({column.type})",
                    sql.SQL("length({}::text) > {}").format(
                        sql.Identifier(column.name), sql.Literal(column.max_length)
                    ),
                    column.name,
                )
            )
    for column in target.columns:
        domain = unwritten.not_null_domains.get(column.name)
        if column.name not in available or not (domain or (column.not_null and column.name not in relaxed)):
            continue
        tests.append(
            _Test(
                "not-null",
                f"{column.name}.not_null",
                f"NOT NULL of the domain {domain} on {column.name}" if domain else f"NOT NULL on {column.name}",
                sql.SQL("{} IS NULL").format(sql.Identifier(column.name)),
                column.name,
                fix=(
                    f"Give {column.name} a value in merge_targets.{target.name}.fill (its type, the domain {domain}, "
                    "refuses NULL: relax_not_null cannot lift that; each row's own values stay in ctb_source_row)"
                )
                if domain
                else None,
            )
        )
    windows, indexed = _unique_tests(step, spec, target, indexes, available, unwritten, tests)
    result += indexed
    # reads every mapped column, so that each value is converted as the INSERT would (a subquery's
    # column nothing reads is never computed): a value the cast refuses ends the pass with its error
    tests.append(_Test("convert", "every column", "every column", sql.SQL("(m.*)::text IS NULL")))
    key_match = merge_mapping.target_key_match(spec, target, mapping.fills)
    kept = (
        sql.SQL("WHERE NOT EXISTS (SELECT 1 FROM {} AS x WHERE {})").format(qualified(target.name), key_match)
        if key_match is not None and spec.on_key_conflict == "keep_target"
        else sql.SQL("")
    )
    # each source row made into JSON (and hashed, for a keyless source's provenance key) only where
    # a rule may read it: otherwise examples of a keyless source are named by their values alone
    read = {c for _, _, columns, _ in checks for c in columns} | {c for _, columns, *_ in foreign_keys for c in columns}
    read |= {c for _, reads in unwritten.generated.values() for c in reads} | {c for *_, r in indexes for c in r}
    needs_row = (  # a unique index's own-copy exclusion compares provenance keys
        any(f.per_row for f in mapping.fills)
        or bool({"ctb_source_row", "ctb_source_key"} & read)
        or any(whole for *_, whole in checks)
        or bool(indexes and target.column("ctb_source_key"))
    )
    rows = sql.SQL("SELECT {values} FROM {keyed} {kept}").format(
        values=sql.SQL(", ").join(sql.SQL("{} AS {}").format(e, sql.Identifier(c)) for c, e in values.items()),
        keyed=merge_mapping.keyed_source(source, json=needs_row, key=needs_row or bool(source.primary_key)),
        kept=kept,
    )
    if unwritten.generated:  # computed from the mapped row, as PostgreSQL computes a STORED column
        rows = sql.SQL("SELECT m0.*, {} FROM ({}) AS m0").format(
            sql.SQL(", ").join(
                sql.SQL("({}) AS {}").format(sql.SQL(e), sql.Identifier(c)) for c, (e, _) in unwritten.generated.items()
            ),
            rows,
        )
    if windows:
        rows = sql.SQL("SELECT m1.*, {} FROM ({}) AS m1").format(sql.SQL(", ").join(windows), rows)
    shown = [
        t.shown
        or (
            sql.SQL("coalesce(m.ctb_source_key, 'a row') || ' = ' || coalesce(m.{}::text, 'NULL')").format(
                sql.Identifier(t.column)
            )
            if t.column
            else sql.SQL("coalesce(m.ctb_source_key, 'a row')")
        )
        for t in tests
    ]
    query = sql.SQL("SELECT {aggregates} FROM ({rows}) AS m").format(
        aggregates=sql.SQL(", ").join(
            sql.SQL(
                "count(*) FILTER (WHERE {t}), (array_agg({s} ORDER BY m.ctb_source_key) FILTER (WHERE {t}))[1:3]"
            ).format(t=t.failing, s=s)
            for t, s in zip(tests, shown, strict=True)
        ),
        rows=rows,
    )
    params = dict(mapping.params) | {"run_id": "guards"}
    try:  # in a savepoint rolled back whatever happens: a value that cannot be converted must not end
        # the lint, and a CHECK's function with side effects must leave none
        with conn.transaction() as savepoint:
            row = conn.execute(query, params).fetchone()
            raise psycopg.Rollback(savepoint)
    except psycopg.errors.ReadOnlySqlTransaction:
        return [
            *result,
            Guard(
                "check",
                f"{target.name}.mapped_rows",
                step.step_id,
                target.name,
                f"a CHECK of {target.name} calls a function that writes: not evaluated in plan mode",
                "rehearse runs the merge against it",
            ),
        ]
    except (
        psycopg.errors.DataError,
        psycopg.errors.FeatureNotSupported,
        psycopg.errors.IntegrityError,
    ) as exc:  # e.g. numeric Infinity into an integer, a domain's CHECK, a generation expression
        failed = _failing_columns(conn, rows, params, [*values, *unwritten.generated])
        what = f"rows of {action.source} cannot be converted into {target.name}'s columns"
        if failed:
            what += ": " + "; ".join(f"{c} ({error})" for c, error in failed)
        generated = [c for c, _ in failed if c in unwritten.generated]
        if generated:  # the target's own expression: what the merge controls is the columns it reads
            fix = "; ".join(
                f"the generated column {c} computes {' '.join(unwritten.generated[c][0].split())} from the merged "
                f"row: fill {', '.join(unwritten.generated[c][1])} with values it accepts (each row's own values "
                "stay in ctb_source_row), change the expression, or skip the action"
                for c in generated
            )
        else:
            fix = (
                f"Fix the plan's fill rules for {', '.join(c for c, _ in failed) or 'that column'} (or skip the action)"
            )
        return [*result, _unevaluated(step, target.name, what, exc, fix)]
    except psycopg.Error as exc:  # e.g. the role may not use a column's type: the INSERT could not either
        what = f"the rows of {action.source} as the merge maps them cannot be read"
        return [*result, _unevaluated(step, target.name, what, exc, "Run as the role that owns the tables")]
    for index, test in enumerate(tests):
        failing, examples = row[2 * index], row[2 * index + 1]
        if not failing:
            continue
        if test.fix is not None:
            proposal, fix = test.proposal, test.fix
        else:
            proposal, fix = _proposal_for(spec, target, test.kind, test.name, test.expression, test.column)
        result.append(
            Guard(
                test.kind,
                f"{target.name}.{test.name}",
                step.step_id,
                target.name,
                f"{failing} rows of {action.source} would break {test.description} as the merge maps them "
                f"(e.g. {'; '.join(examples)})",
                f"the merge would fail half way. {fix}",
                blocks=True,
                proposal=proposal,
            )
        )
    return result


def _failing_columns(conn, rows: sql.Composable, params: dict, columns: list[str]) -> list[tuple[str, str]]:
    """The columns whose value the pass could not compute, each with its error: each one computed
    alone over every row (in a savepoint rolled back), so that a finding names what to fix."""
    failed = []
    for column in columns:
        try:
            with conn.transaction() as savepoint:
                conn.execute(
                    sql.SQL("SELECT count({}) FROM ({}) AS m").format(sql.Identifier(column), rows), params
                ).fetchone()
                raise psycopg.Rollback(savepoint)
        except psycopg.Error as exc:
            failed.append((column, exc.diag.message_primary or str(exc)))
    return failed


def _unique_tests(
    step: Step, spec, target, indexes, available: set, unwritten: _Unwritten, tests: list[_Test]
) -> tuple[list[sql.Composable], list[Guard]]:
    """Each unique index as a test over the mapped rows, its keys computed as the index computes
    them (columns, expressions, a partial index's predicate): a row collides with a row of the
    target (not its own earlier copy: the INSERT skips those) or with another merged row. Returns
    the window columns the mapped rows need and notes on indexes not evaluated."""
    windows: list[sql.Composable] = []
    notes = []
    for number, (index, keys, predicate, nulls_not_distinct, reads) in enumerate(indexes):
        missing = [c for c in reads if c not in available]
        if missing:
            notes.append(
                Guard(
                    "unique",
                    f"{target.name}.{index}",
                    step.step_id,
                    target.name,
                    f"unique index {index} ({', '.join(keys)}) reads "
                    + "; ".join(f"{c}, {unwritten.unevaluable.get(c, 'not written')}" for c in missing),
                    "not evaluated before apply (a read-only pass cannot draw its values): rehearse runs the merge "
                    "against it",
                )
            )
            continue
        key_names = [sql.Identifier(f"ctb_guard_u{number}_{k}") for k in range(len(keys))]
        keyed = [sql.SQL("({})").format(sql.SQL(k)) for k in keys]
        where = sql.SQL("({})").format(sql.SQL(predicate)) if predicate else sql.SQL("true")
        inside = sql.Identifier(f"ctb_guard_u{number}_in")
        count = sql.Identifier(f"ctb_guard_u{number}_n")
        windows += [sql.SQL("{} AS {}").format(e, n) for e, n in zip(keyed, key_names, strict=True)]
        windows.append(sql.SQL("coalesce({}, false) AS {}").format(where, inside))
        windows.append(
            sql.SQL("count(*) OVER (PARTITION BY {}, coalesce({}, false)) AS {}").format(
                sql.SQL(", ").join(keyed), where, count
            )
        )
        equal = sql.SQL(" IS NOT DISTINCT FROM ") if nulls_not_distinct else sql.SQL(" = ")
        own = (
            sql.SQL(
                " AND (x.ctb_source_table IS DISTINCT FROM %(source_table)s "
                "OR x.ctb_source_key IS DISTINCT FROM m.ctb_source_key)"
            )
            if target.column("ctb_source_table") and target.column("ctb_source_key")
            else sql.SQL("")
        )
        existing = sql.SQL("EXISTS (SELECT 1 FROM {t} AS x WHERE {where} AND {match}{own})").format(
            t=qualified(target.name),
            where=where,
            match=sql.SQL(" AND ").join(
                sql.SQL("{}{}m.{}").format(e, equal, n) for e, n in zip(keyed, key_names, strict=True)
            ),
            own=own,
        )
        set_ = (
            sql.SQL("true")
            if nulls_not_distinct
            else sql.SQL(" AND ").join(sql.SQL("m.{} IS NOT NULL").format(n) for n in key_names)
        )
        failing = sql.SQL("m.{inside} AND {set} AND (m.{count} > 1 OR {existing})").format(
            inside=inside, set=set_, count=count, existing=existing
        )
        shown = sql.SQL("coalesce(m.ctb_source_key, 'a row') || ' = (' || concat_ws(', ', {}) || ')'").format(
            sql.SQL(", ").join(sql.SQL("coalesce(m.{}::text, 'NULL')").format(n) for n in key_names)
        )
        # lossless: a key column the merge may leave NULL (its value stays in ctb_source_row); never
        # the discriminator, preferring a column the source does not fill
        candidates = [
            c.name
            for c in (target.column(k) for k in keys)
            if c is not None
            and not c.not_null
            and c.name not in unwritten.not_null_domains
            and c.name != spec.discriminator_column
            and c.name not in unwritten.generated
        ]
        candidates.sort(key=lambda c: bool(spec.fill.get(c, {}).get("from")))
        if candidates and not nulls_not_distinct:
            column = candidates[0]
            # a column left out gets its DEFAULT: NULL is then written explicitly (`value: null`)
            rule = {"value": None} if target.column(column).has_default else {"from": []}
            proposal = ("targets", target.name, {"fill": {column: rule}})
            fix = (
                f"Proposal: leave {column} NULL in merged rows, which never collide (each row's own value stays "
                "in ctb_source_row)"
            )
        else:
            proposal = (
                "actions",
                step.action.source,
                {"skip": f"its rows collide on {index}; the table stays where it is, unchanged"},
            )
            fix = "No lossless default: skip the action (proposed), merge into another table, or change the index"
        tests.append(
            _Test(
                "unique",
                index,
                f"unique index {index} ({', '.join(keys)}{'; where ' + predicate if predicate else ''})",
                failing,
                shown=shown,
                proposal=proposal,
                fix=fix,
            )
        )
    return windows, notes


def _unevaluated(step: Step, table: str, what: str, exc: psycopg.Error, fix: str) -> Guard:
    return Guard(
        "check",
        f"{table}.mapped_rows",
        step.step_id,
        table,
        f"{what}: {exc.diag.message_primary or exc}",
        f"the merge would fail the same way. {fix}; nothing was written",
        blocks=True,
    )


def _proposal_for(spec, target, kind: str, name: str, expression: str | None, column: str | None):
    """A lossless way to write rows that break a constraint (each row's own values stay in
    ctb_source_row), or what to decide by hand: (proposal or None, the text)."""
    rule = spec.fill.get(column) if column else None
    if kind == "not-null":
        return None, (
            f"Give {column} a fallback value in merge_targets.{target.name}.fill, or list it under "
            "relax_not_null (each row's own values stay in ctb_source_row)"
        )
    if kind == "length":
        return None, (
            f"Fix: a value that fits in merge_targets.{target.name}.fill.{column} (or, for the discriminator, a new "
            "text column: discriminator {column: ctb_merge_source, type: text}); each row's own value stays in "
            "ctb_source_row"
        )
    if kind == "fk":
        info = target.column(column) if column else None
        if info is None or info.not_null:
            return None, "No lossless default: load the referenced rows first, or skip the action"
        return ("targets", target.name, {"fill": {column: {"from": []}}}), (
            f"Proposal: leave {column} NULL in merged rows (each row's own value stays in ctb_source_row)"
        )
    allowed = allowed_values(expression) if expression and rule is not None else None
    if allowed:  # write the source's value where the list has it, the fallback elsewhere
        value = rule.get("value") if rule.get("value") in allowed else _fallback(allowed)
        entry = {**rule, "only": allowed, "value": value}
        entry.pop("discriminator", None)
        return ("targets", target.name, {"fill": {column: entry}}), (
            f"Proposal: write the source's {column} only where {name} allows it, {value!r} elsewhere "
            "(each row's own value stays in ctb_source_row)"
        )
    return None, "No lossless default for this CHECK: change the plan's fill rules for its columns, or skip the action"


# ---------------------------------------------------------------------- relocations
def _foreign_keys_into(conn, step: Step, archived: list[str], relocated: list[str]) -> list[Guard]:
    if not archived:
        return []
    result = []
    for referencing, name, referenced, definition in conn.execute(
        raw_template("guards/foreign_keys_into"), {"tables": archived}
    ):
        if referencing in relocated:
            continue
        result.append(
            Guard(
                "fk",
                f"{referencing}.{name}",
                step.step_id,
                referenced,
                f"{referencing} references {referenced}, which becomes a frozen archive ({definition})",
                "kept: the archive holds every key the live rows point to and refuses deletes, so no ON DELETE "
                f"rule fires; new rows of {referencing} can only point at archived keys until the constraint is "
                "moved to the canonical table",
            )
        )
    return result


def _views_and_functions(conn, step: Step, relocated: list[str], accepted: dict) -> list[Guard]:
    if not relocated:
        return []
    result = [
        Guard("view", f"{view}", step.step_id, table, f"view {view} reads {table}", "it follows the table by OID")
        for view, table in dependent_views(conn, relocated)
    ]
    for function, table, form, live_trigger in conn.execute(
        raw_template("guards/functions_naming"), {"tables": relocated}
    ):
        key = f"{function}"
        message = f"{function} names {table} ({form}); a move does not rewrite function bodies"
        if live_trigger and key not in accepted:
            result.append(
                Guard(
                    "function",
                    key,
                    step.step_id,
                    table,
                    message + "; it serves a trigger of a table that stays live",
                    f"that table's writes would fail after the step. Fix: edit {function} to name the new place "
                    "(or accept, and edit it right after the phase)",
                    blocks=True,
                    proposal=("accept", key, f"edit {function} right after the phase: it names {table}"),
                )
            )
        else:
            note = f"accepted ({accepted[key]})" if key in accepted else "edit it after the phase"
            result.append(Guard("function", key, step.step_id, table, message, note))
    return result
