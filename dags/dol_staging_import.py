"""
# dol_staging_import

Nightly import of the US Department of Labor's EFAST2 Form 5500 datasets (F_5500, F_5500_SF,
F_SCH_A) into the DOL spoke of the PLE database (connection `ctb_postgres`), by Airflow.

Every CSV in the landing folder (loose, or inside the zips DOL publishes) is imported into the
DOL table that exists (`dol.form_5500` / `dol.form_5500_sf` / `dol.schedule_a`), adopted as it
stands: columns mapped by header name, alias columns filled, values typed as the table declares,
its defaults left to work; no DDL unless the `add_columns` Param asks for a file's new columns
and exactly those columns were approved (`python -m ple.cli approve --approver <name> --dol-columns <folder>`).
In one transaction per file, with the read-only guard's bypass (`guard_setting` = `guard_value`)
set transaction-locally: COPY into a typed temporary staging table, set-based validation (bad
rows go to `ple_ops.dol_import_error` with the reason and the line; the good rows still land),
upsert by the natural key (unchanged rows are not rewritten; amended filings replace their
originals, which move to `<table>_superseded`), and the proof that every data row is in the live,
the superseded or the errors table. A role that row-level security would stop is refused before
anything is written. `ple_ops.dol_import` records each file by the SHA-256 of its bytes: the same
file imported again is a no-op. Great Expectations proves the run's accounting once per run.

Publishes an Asset per canonical table it changed, for data-aware downstream DAGs.
Schedule: `PLE_DOL_IMPORT_SCHEDULE` (cron), default 02:00 UTC.
"""

from ple.orchestration.dol_dags import build_dol_import_dag

dag = build_dol_import_dag(doc_md=__doc__)
