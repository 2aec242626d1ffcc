"""
# ctb_revoke_approval

Revokes one approval (or rejection) recorded in `ple_ops.approval`, under the name of the
signed-in user who triggers it. A revoked approval authorises nothing from the next transaction
that re-checks it (a run under way stops before its next write); a revoked rejection no longer
vetoes its scope. The console's Approvals table lists every approval and rejection with its number.
Command-line equivalent: `python -m ple.cli approve --revoke <number> --approver <name>`.
Airflow DAG, manual trigger only.
"""

from ple.orchestration.reorg_dags import build_revoke_dag

dag = build_revoke_dag(doc_md=__doc__)
