"""
# ctb_nightly_audit

Nightly Phase 2C data-quality audit of the PLE database (connection `ctb_postgres`): NULL and
duplicate domains on the spine, orphan slots, duplicate emails in `people.people_master`, orphan
people, and the alignment check "CL claimed = spine", with the plan's post-cleanup counts.

Schedule: `PLE_AUDIT_SCHEDULE` (cron), default 03:00 UTC. Airflow DAG built by
`ple.orchestration.audit_dags`.
"""

from ple.orchestration.audit_dags import build_nightly_audit_dag

dag = build_nightly_audit_dag(doc_md=__doc__)
