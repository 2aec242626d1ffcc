"""
# ctb_phase_2c_data_quality

The Phase 2C data-quality cleanup of the PLE database (connection `ctb_postgres`), an Airflow DAG
triggered by hand: the audit, then the plan's five cleanup steps, then the audit again.

1. backfill NULL spine domains from CL; 2. export duplicate domains for manual merge (a CSV per
run, path in the log and in `ple_ops.cleanup_ledger`); 3. attach orphan people by email-domain
match; 4. de-duplicate emails in `people.people_master` and move their slots to the surviving
person; 5. archive and remove orphan slots.

`mode=plan` (default) shows how many rows each step would touch and writes nothing. `mode=apply`
asks for an approval of exactly that preview in Required Actions (unless `make cleanup-approve`
recorded one), then first copies every row it changes or removes to
`archive.<schema>_<table>_2c` with the run id, so `python -m ple.cli cleanup-undo --run-id <run id>`
puts it back. A second apply changes nothing.
"""

from ple.orchestration.cleanup_dags import build_cleanup_dag

dag = build_cleanup_dag(doc_md=__doc__)
