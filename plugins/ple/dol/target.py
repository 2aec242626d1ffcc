"""The table a DOL file lands in, as it really stands, and the file's mapping onto it.

The importer adopts whatever DOL table exists: the real ones (a `filing_id uuid` key with a
default, a unique `ack_id`, `varchar` columns, NOT NULL alias columns beside the raw ones, guard
triggers, row-level security) as well as the ones this project creates on a fresh database. So
nothing here is assumed: columns, types, NOT NULLs, defaults, generated columns, triggers and
policies are read from the catalog, and the file's header is mapped onto them by name.

Only when a dataset's table does not exist at all is it created (from the layouts, as on a fresh
database); an existing table is never altered unless the caller asks for the columns a file adds
(`add_columns`), and then with one `ALTER TABLE` under a lock timeout.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from psycopg import sql

from ple.dol.layouts import Dataset, union_fields
from ple.errors import BadInput
from ple.sqlutil import qualified, raw_template, split_qualified

log = logging.getLogger(__name__)

# Alias columns of the live tables and the file column each one repeats (the owner's schema keeps
# both, and `sponsor_dfe_ein`/`sponsor_dfe_name` are NOT NULL). An alias is filled only when the
# table has it as an ordinary column and the file does not carry a header of that name itself.
ALIAS_SOURCES: dict[str, dict[str, str]] = {
    "F_5500": {
        "sponsor_dfe_ein": "spons_dfe_ein",
        "sponsor_dfe_name": "sponsor_dfe_name",
        "plan_number": "spons_dfe_pn",
        "tot_partcp_eoy_cnt": "tot_act_rtd_sep_benef_cnt",
    },
    "F_5500_SF": {
        "sponsor_dfe_ein": "sf_spons_ein",
        "sponsor_dfe_name": "sf_sponsor_name",
        "plan_number": "sf_plan_num",
    },
    "F_SCH_A": {
        "insurance_company_name": "ins_carrier_name",
        "covered_lives": "ins_prsn_covered_eoy_cnt",
    },
}
# Columns the import fills itself when the table has them (never from a file header).
FORM_YEAR, EXTRAS, SOURCE_IMPORT, UPDATED_AT = "form_year", "extras", "source_import_id", "updated_at"


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # format_type(), for messages only: never spliced into SQL
    not_null: bool
    has_default: bool
    generated: bool  # GENERATED ... STORED or GENERATED ALWAYS AS IDENTITY: the table fills it


@dataclass
class LiveTable:
    name: str
    columns: dict[str, Column]
    rls: bool
    force_rls: bool
    owner: str

    def writable(self, column: str) -> bool:
        c = self.columns.get(column)
        return c is not None and not c.generated

    def has(self, column: str) -> bool:
        return column in self.columns


def inspect(conn, table: str) -> LiveTable | None:
    """The live table from the catalog, or None when it does not exist."""
    row = conn.execute(raw_template("dol/table"), {"table": table}).fetchone()
    if row is None:
        return None
    columns = {
        name: Column(name, type_, not_null, has_default, generated)
        for name, type_, not_null, has_default, generated in conn.execute(
            raw_template("dol/columns"), {"table": table}
        ).fetchall()
    }
    return LiveTable(table, columns, rls=row[0], force_rls=row[1], owner=row[2])


@dataclass
class Mapping:
    """A file's header against the live table.

    Every header position gets a column in the typed staging table, so that COPY takes the file
    as it is: headers the table has are typed as the table declares them; the others are text and
    end in the row's `extras` (when the table has that column) or are dropped from the load
    (reported in the ledger and the log).
    """

    header: list[str]  # the file's header names, trimmed, upper-case
    staging: list[str]  # staging column of each header position
    loaded: list[str] = field(default_factory=list)  # live columns filled from the file, same name
    extras: list[tuple[str, str]] = field(default_factory=list)  # (header name, staging column) kept as JSONB
    dropped: list[str] = field(default_factory=list)  # header names the table lacks, not loaded
    aliases: list[tuple[str, str]] = field(default_factory=list)  # (live alias column, staging source column)
    missing: list[str] = field(default_factory=list)  # header names the live table lacks (extras or dropped)


def header_names(header: list[str]) -> list[str]:
    return [h.strip().lstrip("\ufeff").upper() for h in header]


def map_header(dataset: Dataset, live: LiveTable, header: list[str]) -> Mapping:
    names = header_names(header)
    mapping = Mapping(names, [])
    seen: set[str] = set()
    for position, name in enumerate(names):
        column = name.lower()
        if live.writable(column) and column not in seen and plain_column(column):
            mapping.staging.append(column)
            mapping.loaded.append(column)
            seen.add(column)
            continue
        mapping.staging.append(f"file_column_{position + 1}")
        mapping.missing.append(name)
        if live.columns.get(EXTRAS) and not live.columns[EXTRAS].generated:
            mapping.extras.append((name, f"file_column_{position + 1}"))
        else:
            mapping.dropped.append(name)
    for alias, source in ALIAS_SOURCES.get(dataset.name, {}).items():
        if alias in seen or not live.writable(alias):
            continue
        if source in seen:
            mapping.aliases.append((alias, source))
    for key in dataset.natural_key:
        if key not in seen:
            raise BadInput(
                f"{live.name}: the file has no {key.upper()} column (or the table lacks it); the natural key "
                f"{'+'.join(k.upper() for k in dataset.natural_key)} is needed to upsert without duplicates"
            )
    return mapping


def plain_column(column: str) -> bool:
    try:
        split_qualified(f"x.{column}")
        return True
    except ValueError:
        return False


def unfed_required(live: LiveTable, mapping: Mapping, managed: set[str]) -> list[str]:
    """NOT NULL columns without a default that nothing fills: an INSERT would fail on each row."""
    fed = set(mapping.loaded) | {a for a, _ in mapping.aliases} | managed
    return [
        c.name
        for c in live.columns.values()
        if c.not_null and not c.has_default and not c.generated and c.name not in fed
    ]


def layout_type(dataset: Dataset, header_name: str) -> str | None:
    """The canonical type of a layout field (for columns added on request), None if unknown."""
    for f in union_fields(dataset.name):
        if f.name == header_name:
            return f.sql_type
    return None


def add_columns(conn, live: LiveTable, wanted: list[tuple[str, str]], superseded: str | None) -> list[str]:
    """The approved additions (column, type) the live table still lacks: one ALTER TABLE, run under
    the caller's lock timeout; the superseded table gets them too, so a superseded row keeps every
    column. The types come from the layouts (or `text`), never from a file."""
    wanted = [(c, t) for c, t in wanted if plain_column(c) and c not in live.columns]
    if not wanted:
        return []
    targets = [live.name] + ([superseded] if superseded else [])
    for target in targets:
        conn.execute(
            sql.SQL("ALTER TABLE {} {}").format(
                qualified(target),
                sql.SQL(", ").join(
                    sql.SQL("ADD COLUMN IF NOT EXISTS {} {}").format(sql.Identifier(c), sql.SQL(t)) for c, t in wanted
                ),
            )
        )
    log.warning("%s: added columns %s (approved add_columns)", live.name, ", ".join(c for c, _ in wanted))
    return [c for c, _ in wanted]


# ------------------------------------------------------------------------------------- guards
def check_rls(conn, live: LiveTable, commands: tuple[str, ...]) -> None:
    """Stop before writing when row-level security would refuse (or silently skip) the import's
    writes: a role needs a policy for every command the import runs, unless it owns the table
    (without FORCE), is a superuser or has BYPASSRLS. The message names the role and the policies."""
    problems = []
    rows = conn.execute(raw_template("dol/write_rights"), {"table": live.name, "commands": list(commands)}).fetchall()
    role = None
    for command, role_name, privileged, rls_bypass, policies, allowing in rows:
        role = role_name
        if not privileged:
            problems.append(
                f"role {role_name} has no {command} privilege on {live.name} (GRANT {command} ON {live.name} TO {role_name})"
            )
        elif live.rls and not rls_bypass and not allowing:
            problems.append(
                f"row-level security on {live.name} has no policy allowing {command} for role {role_name} "
                f"(policies: {policies or 'none'})"
            )
    if problems:
        raise BadInput(
            f"the DOL import stopped before writing as role {role}: "
            + "; ".join(problems)
            + f". Import as the table owner ({live.owner}) or a role with BYPASSRLS, or add the missing policy for {role}"
        )


def disabled_triggers(conn, tables: list[str]) -> list[str]:
    """Triggers on the DOL tables that are disabled: the guards must be enabled after every run."""
    return [
        f"{t}.{name}" for t, name in conn.execute(raw_template("dol/disabled_triggers"), {"tables": tables}).fetchall()
    ]
