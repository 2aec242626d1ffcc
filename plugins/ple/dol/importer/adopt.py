"""The inspect stage: what the file is (encoding, header, dataset, form year) and the live table
it goes into, adopted as it is.

The live table's columns, types, NOT NULLs and defaults come from the catalog, and the file's
header is mapped onto them by name (aliases filled, headers the table lacks kept in `extras` when
it has that column, else reported and dropped). No DDL on an existing table unless the caller asks
for the file's new columns; a missing table (fresh database) is created. Before anything is
written, the role's rights under row-level security are checked. This stage writes no rows.
"""

from __future__ import annotations

import logging

from ple import governance
from ple.db import transaction, with_lock_retry
from ple.dol import files, new_columns, target
from ple.dol.importer import ledger
from ple.dol.importer.state import FileImport, timed
from ple.dol.layouts import DATASETS, all_datasets
from ple.dol.tables import create_canonical_table, create_superseded_table, superseded_table
from ple.errors import BadInput, NotApproved

log = logging.getLogger(__name__)


def managed_columns(live: target.LiveTable, form_year) -> set[str]:
    return {c for c in (target.SOURCE_IMPORT,) + ((target.FORM_YEAR,) if form_year else ()) if live.writable(c)}


def inspect(f: FileImport) -> bool:
    """Fill the file's dataset, tables and mapping. False when the file is empty (its ledger row
    is then finished as such: nothing to import)."""
    conn, source, result = f.conn, f.source, f.result
    with timed(result, "inspect"):
        result.encoding = "utf-8" if f.scanned.utf8 else files.detect_encoding(source)
        header = files.read_header(source, result.encoding)
        if not header or header == [""]:
            result.status = "empty"
            result.message = "empty file: no header, no rows"
            with transaction(conn):
                ledger.finish(conn, f.import_id, result, "empty")
            return False
        dataset_name = files.detect_dataset(header)
        if dataset_name is None:
            raise BadInput(
                f"{source.name}: its header matches no known EFAST2 layout ({', '.join(all_datasets())}); the file is "
                f"left in place. The header: {files.describe_header(header)}"
            )
        dataset = f.dataset = all_datasets()[dataset_name]
        result.dataset = dataset.name
        result.form_year = source.form_year_from_name()
        adopt(f, header)
        live, mapping = f.live, f.mapping
        unfed = target.unfed_required(live, mapping, managed_columns(live, result.form_year or True))
        if unfed:
            raise BadInput(
                f"{source.name}: {dataset.table} requires {', '.join(unfed)} (NOT NULL, no default) and nothing in the "
                "file fills it; nothing was written"
            )
        # DELETE: superseded filings move out of the live table
        target.check_rls(conn, live, ("SELECT", "INSERT", "UPDATE") + (("DELETE",) if dataset.plan_identity else ()))
        if dataset.name in ("F_5500", "F_SCH_A"):
            schedule = target.inspect(conn, DATASETS["F_SCH_A"].table)
            if schedule is not None and schedule.has("filing_id"):
                target.check_rls(conn, schedule, ("SELECT", "UPDATE"))
    return True


def adopt(f: FileImport, header: list[str]) -> None:
    """The live table and the file's mapping onto it; creates the tables only on a database
    that has none (fresh), and alters nothing unless approved `add_columns` ask for it."""
    conn, dataset, result, add_columns = f.conn, f.dataset, f.result, f.add_columns
    live = target.inspect(conn, dataset.table)
    superseded_name = superseded_table(dataset)
    if live is None:
        with transaction(conn):
            governance.register_before_create(
                conn, dataset.table, "STAGING", "a DOL dataset the import keeps", "dol_import"
            )
            for statement in create_canonical_table(dataset):
                conn.execute(statement)
        live = target.inspect(conn, dataset.table)
        log.info("%s did not exist: created from the layouts", dataset.table)
    mapping = target.map_header(dataset, live, header)
    wanted = new_columns.additions(dataset, live, mapping.missing)
    if wanted and add_columns is not None:
        unlisted = [a.describe() for a in wanted if a not in add_columns]
        if unlisted:
            raise NotApproved(
                f"{result.name} would add {', '.join(unlisted)}, which the approved additions do not list; nothing was "
                f"written. Approve the columns of these files with {new_columns.APPROVE_HOW}, then run again"
            )
        new_columns.require(conn, add_columns)  # before anything is written
    if target.inspect(conn, superseded_name) is None:
        with transaction(conn):
            governance.register_before_create(
                conn, superseded_name, "ARCHIVE", f"filings amendments replaced in {dataset.table}", "dol_import"
            )
            for statement in create_superseded_table(dataset):
                conn.execute(statement)
        log.info("%s did not exist: created like %s", superseded_name, dataset.table)
    if wanted and add_columns is not None:
        approved = [(a.column, a.type) for a in add_columns if a.table == live.name]

        def alter() -> list[str]:
            with transaction(conn, lock_timeout="2s"):
                new_columns.require(conn, add_columns)  # in the transaction that runs the DDL
                return target.add_columns(conn, live, approved, superseded_name)

        result.added_columns = with_lock_retry(alter)
        live = target.inspect(conn, dataset.table)
        mapping = target.map_header(dataset, live, header)
    superseded = target.inspect(conn, superseded_name)
    lacking = [c for c in live.columns if c not in superseded.columns]
    if lacking:
        raise BadInput(
            f"{superseded_name} lacks {', '.join(lacking)} of {dataset.table}: a superseded filing would lose them. "
            f"Add the columns to {superseded_name} (or import with add_columns), then import again"
        )
    result.unknown_columns, result.dropped_columns = mapping.missing, mapping.dropped
    if mapping.dropped:
        log.warning(
            "%s: %s has no column for %s and no extras column: dropped from the load (add_columns, approved with "
            + new_columns.APPROVE_HOW
            + ", would add them)",
            result.name,
            dataset.table,
            ", ".join(mapping.dropped),
        )
    f.live, f.superseded, f.mapping = live, superseded, mapping
