"""
# dol_staging_import

Nightly import of the US Department of Labor's EFAST2 Form 5500 datasets (F_5500, F_5500_SF,
F_SCH_A) into the DOL spoke of the PLE database (connection `ctb_postgres`), by Airflow.

Every CSV in the landing folder (loose, or inside the zips DOL publishes) is streamed with COPY
into its all-text staging table, validated set-based (bad rows go to `ple_ops.dol_import_error`
with the reason and the line; the good rows still land), proven with Great Expectations, upserted
into `dol.form_5500` / `dol.form_5500_sf` / `dol.schedule_a` (unchanged rows are not rewritten;
amended filings replace their originals, which move to `<table>_superseded`), and recorded in
`ple_ops.dol_import` by the SHA-256 of its bytes: the same file imported again is a no-op.

Publishes an Asset per canonical table it changed, for data-aware downstream DAGs.
Schedule: `PLE_DOL_IMPORT_SCHEDULE` (cron), default 02:00 UTC.
"""

from ple.orchestration.dol_dags import build_dol_import_dag

dag = build_dol_import_dag(doc_md=__doc__)
