"""
# ctb_approve_plan

Records, in the target database (`ple_ops.approval`), that the signed-in user who triggers the
run approved the exact CTB plan file (its SHA-256 is prefilled in the trigger form) together
with the engine code that will carry it out. The form asks no name: an approval is always the
triggering user's; where nobody is signed in (`airflow dags test ctb_approve_plan -c
'{"approver": "<name>", "plan_sha256": "<sha>"}'`) the conf's `approver` names them. Editing the plan or the engine voids the approval; `apply` runs of the phase
DAGs refuse without one.
Command-line equivalent: `make approve APPROVER=<name>`. Airflow DAG, manual trigger only.
"""

from ple.orchestration.reorg_dags import build_approval_dag

dag = build_approval_dag(doc_md=__doc__)
